"""Silhouette check of the searched discrete structure against the train masks.

The structure search (:mod:`splat.search`) sees only the depth scan, where some discrete choices differ by
little (a solid back vs slats, 3 vs 4 slats, a thin seat). The masks see the gaps. After the search, each
active discrete parameter is tried at each of its other values (the rest of the assignment and the
placement kept) and scored by the silhouette error ``mean |alpha - mask|`` of the program covered with
small opaque Gaussians, rendered at reduced resolution in a few train views, plus the Chamfer-L1 to the
scan, each relative to the search winner's (so neither signal alone can overrule the other); a change
is kept when it lowers that sum by a clear margin. A change that activates other discrete parameters (Back Type 1
activates Slat Count) is tried with every value of those. Two sweeps (coordinate descent). Train
frames only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from splat.gaussians import InitSettings, init_gaussians
from splat.program import ShapeProgram
from splat.ops import ChamferSettings, chamfer_distance, sample_surface
from splat.render import RasterSettings, rasterize
from splat.train.data import TrainData


class SilhouetteScorer:
    """Silhouette error of a program assignment at a fixed placement, on ``num_views`` train views
    downscaled by ``downscale`` (masks by area averaging, thresholded at 0.5)."""

    def __init__(self, program: ShapeProgram, placement: torch.Tensor, data: TrainData, *, num_views: int = 6,
                 downscale: int = 2, num_gaussians: int = 5000, raster: RasterSettings | None = None,
                 seed: int = 0):
        self.program, self.placement = program, placement.to(torch.float32)
        v = data.num_views
        idx = torch.linspace(0, v - 1, min(num_views, v)).round().long().unique()
        m = data.masks[idx].float()[:, None]  # [V, 1, H, W]
        if downscale > 1:
            m = F.avg_pool2d(m, downscale, ceil_mode=True)
        self.masks = m[:, 0] > 0.5  # [V, h, w]
        K = data.Ks[idx].clone()
        K[:, :2] /= downscale
        self.Ks, self.viewmats = K, data.viewmats[idx]
        self.h, self.w = self.masks.shape[1:]
        self.num_gaussians, self.seed = num_gaussians, seed
        self.settings = RasterSettings() if raster is None else raster  # alphas only: any render_mode
        keep = torch.randperm(data.scan.shape[0], generator=torch.Generator().manual_seed(seed))[:8000]
        self.scan = data.scan[keep]

    @torch.no_grad()
    def __call__(self, assignment: dict[str, Any]) -> tuple[float, float]:
        """(silhouette error, Chamfer-L1 to the scan in metres) of ``assignment``."""
        geo = self.program.evaluate(assignment).transformed(self.placement[None])
        g = torch.Generator().manual_seed(self.seed)
        rm = geo.realize()
        pts = sample_surface(rm.verts, rm.faces, 3000, g, face_active=rm.face_active).points
        cham = float(chamfer_distance(pts, self.scan[None], settings=ChamferSettings(squared=False)).loss[0]) / 2
        model = init_gaussians(geo, InitSettings(num_init=self.num_gaussians, init_opacity=0.99, flatness=0.3,
                                                 color_mode="constant"), g)
        world = model.pushforward(geo)
        colors = torch.zeros(world.means.shape[0], 1)
        res = rasterize(world.means, world.opacities, colors, self.viewmats, self.Ks, self.w, self.h,
                        covars=world.covars, settings=self.settings)
        return float((res.alphas[..., 0] - self.masks.float()).abs().mean()), cham


def refine_structure(program: ShapeProgram, assignment: dict[str, Any], placement: torch.Tensor, data: TrainData, *,
                     sweeps: int = 2, margin: float = 0.03, raster: RasterSettings | None = None,
                     seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Coordinate descent over the discrete parameters on the silhouette error.

    Returns the (possibly changed) assignment and an info dict (errors before/after, changes made).
    A change must lower the error by ``margin`` (relative) to be kept. ``raster``: the run's rasterizer
    settings (None: the defaults).
    """
    if data.masks is None:
        return dict(assignment), {"skipped": "no masks"}
    space = program.space
    scorer = SilhouetteScorer(program, placement, data, raster=raster, seed=seed)
    best = dict(space.validate(dict(assignment)))
    sil0, cham0 = scorer(best)

    def combined(sil: float, cham: float) -> float:  # relative to the search's winner: 2.0 there
        return sil / max(sil0, 1e-9) + cham / max(cham0, 1e-9)

    best_err = combined(sil0, cham0)
    best_sil = sil0
    changes: list[str] = []
    tried = {tuple(sorted(best.items()))}
    by_name = {p.name: p for p in space.params}
    for _ in range(sweeps):
        improved = False
        for p in space.params:
            if p.type == "float" or not space.active(best)[p.name]:
                continue
            for value in p.values():
                if value == best[p.name]:
                    continue
                base = dict(best)
                base[p.name] = value
                # discrete parameters this change activates are tried at every value with it
                act_before, act_after = space.active(best), space.active(base)
                woken = [by_name[n] for n, a in act_after.items()
                         if a and not act_before[n] and by_name[n].type != "float"]
                combos: list[dict[str, Any]] = [{}]
                for q in woken:
                    combos = [dict(c, **{q.name: v}) for c in combos for v in q.values()]
                for extra in combos[:16]:
                    cand = dict(base, **extra)
                    key = tuple(sorted(cand.items()))
                    if key in tried:
                        continue
                    tried.add(key)
                    sil, cham = scorer(cand)
                    err = combined(sil, cham)
                    if err < best_err * (1.0 - margin):
                        changes.append(", ".join(f"{k}: {best[k]} -> {v}" for k, v in cand.items() if best[k] != v))
                        best, best_err, best_sil, improved = cand, err, sil, True
                        break
                if improved and best[p.name] == value:
                    break
        if not improved:
            break
    info = {"silhouette_error_before": sil0, "silhouette_error_after": best_sil, "combined_after": best_err,
            "structure_changes": len(changes), "candidates": len(tried)}
    if changes:
        info["changed"] = "; ".join(changes)
    return best, info
