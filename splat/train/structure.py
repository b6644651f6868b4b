"""Silhouette check of the searched discrete structure against the train masks.

The structure search (:mod:`splat.search`) sees only the depth scan, where some discrete choices differ by
little (a solid back vs slats, 3 vs 4 slats, a thin seat, square vs round legs). The masks see the gaps
and the outlines. After the search, each active discrete parameter is tried at each of its other values
(the rest of the assignment and the placement kept) and scored by the silhouette error
``mean |alpha - mask|`` of the program's *mesh* (its anti-aliased coverage from
:func:`splat.ops.mesh_raster.render_mesh`, against the masks' coverage, both at reduced resolution in a
few train views), plus the Chamfer-L1 to the scan, each relative to the search winner's (so neither
signal alone can overrule the other); a change is kept when it lowers that sum by a clear margin, or
lowers the silhouette error by the margin with the Chamfer no worse than a third of it (the scan of a
capture cannot tell a thin part's shape: square legs at their smallest size fit it as well as the true
round ones, while the outline is 4-6% better; the sum alone moved by 2-3%). A
change that activates other discrete parameters (Back Type 1 activates Slat Count) is tried with every
value of those; of a parameter's values that beat the current one, the first within the margin of the
best is taken (clear differences decided by the score, ties by the value order). Two sweeps (coordinate
descent). Train frames only.

Why the mesh and not Gaussians: a program covered with Gaussians has a silhouette wider than its
surface (each Gaussian blurs past the part's edge), so its error was mostly that halo, and the halo
shrinks with the outline's area: a variant with *less* area won whatever the masks showed (on the
Poly Haven stool, whose legs are square, round legs scored 0.034 against square's 0.046 with
Gaussians; the mesh scores square 0.018, round 0.026). The mesh's coverage ends where its faces end.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from splat.program import ShapeProgram
from splat.ops import ChamferSettings, chamfer_distance, sample_surface
from splat.ops.mesh_raster import render_mesh
from splat.train.data import TrainData


class SilhouetteScorer:
    """Silhouette error of a program assignment at a fixed placement, on ``num_views`` train views
    downscaled by ``downscale``: the program mesh's anti-aliased coverage against the masks' coverage
    (area fractions of the downscaled pixels)."""

    def __init__(self, program: ShapeProgram, placement: torch.Tensor, data: TrainData, *, num_views: int = 6,
                 downscale: int = 2, seed: int = 0):
        self.program, self.placement = program, placement.to(torch.float32)
        v = data.num_views
        idx = torch.linspace(0, v - 1, min(num_views, v)).round().long().unique()
        m = data.masks[idx].float()[:, None]  # [V, 1, H, W]
        if downscale > 1:
            m = F.avg_pool2d(m, downscale, ceil_mode=True)
        self.masks = m[:, 0]  # [V, h, w] coverage in [0, 1]
        K = data.Ks[idx].clone().float()
        K[:, :2] /= downscale
        self.Ks, self.viewmats = K, data.viewmats[idx].float()
        self.h, self.w = self.masks.shape[1:]
        self.seed = seed
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
        err = 0.0
        for i in range(self.Ks.shape[0]):
            alpha = render_mesh(rm.verts[0], rm.faces, rm.vert_part, rm.face_part, self.viewmats[i], self.Ks[i],
                                self.w, self.h, face_active=rm.face_active[0]).alpha
            err += float((alpha - self.masks[i]).abs().mean())
        return err / self.Ks.shape[0], cham


def refine_structure(program: ShapeProgram, assignment: dict[str, Any], placement: torch.Tensor, data: TrainData, *,
                     sweeps: int = 2, margin: float = 0.03, seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Coordinate descent over the discrete parameters on the silhouette error.

    Returns the (possibly changed) assignment and an info dict (errors before/after, changes made).
    A change must lower the error by ``margin`` (relative) to be kept.
    """
    if data.masks is None:
        return dict(assignment), {"skipped": "no masks"}
    space = program.space
    scorer = SilhouetteScorer(program, placement, data, seed=seed)
    best = dict(space.validate(dict(assignment)))
    sil0, cham0 = scorer(best)

    def combined(sil: float, cham: float) -> float:  # relative to the search's winner: 2.0 there
        return sil / max(sil0, 1e-9) + cham / max(cham0, 1e-9)

    best_err = combined(sil0, cham0)
    best_sil, best_cham = sil0, cham0
    changes: list[str] = []
    scores = {tuple(sorted(best.items())): (sil0, cham0)}  # every candidate scored, by its assignment
    by_name = {p.name: p for p in space.params}
    for _ in range(sweeps):
        improved = False
        for p in space.params:
            if p.type == "float" or not space.active(best)[p.name]:
                continue
            # every other value of p (with every value of what it wakes) is scored; of those that beat the
            # current one by the margin, the first (in value order) within the margin of the best is taken:
            # taking the first that beats the current one let the order decide between clearly different
            # fits (table, from a shelfless trestle: square legs, the first, over the round ones the masks
            # show), while values the margin cannot tell apart (a cabinet's drawer count seen from outside)
            # keep falling to the first
            found: list[tuple[float, float, float, dict[str, Any]]] = []
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
                    if key not in scores:
                        scores[key] = scorer(cand)
                    sil, cham = scores[key]
                    err = combined(sil, cham)
                    # a clear gain overall, or in the outline with the scan as well fitted (thin parts
                    # whose shapes the depth noise cannot tell apart: a capture's round legs)
                    if err < best_err * (1.0 - margin) or (sil < best_sil * (1.0 - margin)
                                                           and cham <= best_cham * (1.0 + margin / 3)):
                        found.append((err, sil, cham, cand))
            if found:
                lowest = min(f[0] for f in found)
                err, sil, cham, cand = next(f for f in found if f[0] * (1.0 - margin) <= lowest)
                changes.append(", ".join(f"{k}: {best[k]} -> {v}" for k, v in cand.items() if best[k] != v))
                best, best_err, best_sil, best_cham, improved = cand, err, sil, cham, True
        if not improved:
            break
    info = {"silhouette_error_before": sil0, "silhouette_error_after": best_sil, "combined_after": best_err,
            "structure_changes": len(changes), "candidates": len(scores)}
    if changes:
        info["changed"] = "; ".join(changes)
    return best, info
