"""Evaluate a finished run on its scene's held-out views: ``python -m splat.evaluate RUN_DIR``.

Loads the run's editable asset (:func:`splat.export.load_asset`: program, fitted parameters, placement,
Gaussians), renders it into the scene's test views over the scene's background, and scores it with
:mod:`splat.metrics` (no metric is computed here):

- images: PSNR / SSIM over the whole image, and masked to the object (scene masks), per view and mean;
- geometry: Chamfer-L1/L2, F-score@{1,2,5} cm and normal consistency of the program's surface against
  ``gt_mesh`` (when the scene names one) and against the scan (``scan.ply``, else the depth of the
  *train* frames fused by :func:`splat.data.fuse_depth` — the same scan the trainer fits);
- parameters (scenes with ``gt_params`` for the run's program): MAE of active continuous parameters in
  % of range, discrete accuracy, and whether the whole discrete structure was recovered.

Convention: distances in metres (Chamfer-L2 in m^2, F-score thresholds 0.01/0.02/0.05 m); images in
[0, 1]; the JSON has ``null`` for undefined values (e.g. normal consistency against a bare scan).
The trainer's own stage (c) (:mod:`splat.train.evaluate`) needs a live trainer; this entry point works
on any run folder, including one whose training was killed (read from its latest checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import tyro

from splat.errors import SplatError

TAUS = (0.01, 0.02, 0.05)


@dataclass(frozen=True)
class EvalSettings:
    """``python -m splat.evaluate RUN_DIR``: held-out metrics of a trained run."""

    run: tyro.conf.Positional[Path]
    """Run folder (outputs/<scene>/<run>) or its assets/ folder."""
    scene: Optional[Path] = None
    """Scene folder. Default: the scene named in the run's config.json."""
    out: Optional[Path] = None
    """Output JSON. Default: RUN_DIR/eval_metrics.json."""
    surface_samples: int = 20000
    """Surface samples per mesh for the geometry metrics."""
    seed: int = 0
    """Seed of the surface sampling."""
    backend: str = "auto"
    """Rasterizer backend (auto, cpu, torch, gsplat)."""


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _geometry_block(gm: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"chamfer_l1": gm.chamfer_l1, "chamfer_l2": gm.chamfer_l2,
                           "accuracy": gm.accuracy, "completeness": gm.completeness}
    for f in gm.fscores:
        out[f"fscore@{f.tau * 100:g}cm"] = f.fscore
    out["normal_consistency"] = _json_float(gm.normal_consistency)
    return out


def _image_metrics(asset: Any, scene: Any, backend: str) -> dict[str, Any]:
    from splat.metrics import psnr, ssim
    from splat.data import scene_background
    from splat.render.frames import ViewSettings, render_views

    idx = list(scene.split["test"])
    if not idx:
        return {"num_views": 0}
    vs = ViewSettings(background=scene_background(scene, None), backend=backend)
    views = render_views(asset.world_gaussians(), [scene.cameras[i] for i in idx], vs)
    per: dict[str, dict[str, float]] = {}
    for i, v in zip(idx, views):
        pred = torch.from_numpy(v.rgb).double()
        target = torch.from_numpy(np.asarray(scene.images[i])).double()
        row = {"psnr": float(psnr(pred, target)), "ssim": float(ssim(pred, target))}
        if scene.masks is not None and scene.masks[i] is not None and scene.masks[i].any():
            m = torch.from_numpy(np.asarray(scene.masks[i]))
            row["psnr_masked"] = float(psnr(pred, target, m))
            row["ssim_masked"] = float(ssim(pred, target, m))
        per[v.name] = row
    out: dict[str, Any] = {"num_views": len(per)}
    for key in ("psnr", "ssim", "psnr_masked", "ssim_masked"):
        vals = [r[key] for r in per.values() if key in r]
        if vals:
            out[key] = float(np.mean(vals))
    out["per_view"] = per
    return out


def evaluate_run(settings: EvalSettings) -> dict[str, Any]:
    """Metrics of the run in ``settings.run`` on its scene (a JSON-ready dict; see the module doc)."""
    import trimesh

    from splat.data import fuse_depth, load_scene, read_ply_points
    from splat.workspace import load_run, run_scene_dir
    from splat.metrics import geometry_metrics, param_errors

    asset = load_run(settings.run)
    scene_root = run_scene_dir(asset, settings.scene)
    scene = load_scene(scene_root)
    out: dict[str, Any] = {"run": str(asset.root), "scene": str(scene_root), "program": asset.program.name,
                           "test": _image_metrics(asset, scene, settings.backend)}

    rm = asset.geometry(dtype=torch.float64).realize()
    faces = rm.faces[rm.face_active[0]]
    if faces.shape[0] == 0:
        raise SplatError("the fitted program has no active surface to evaluate", file=asset.root, field="params")
    pred = (rm.verts[0].detach(), faces)
    g = torch.Generator().manual_seed(settings.seed)
    n = settings.surface_samples
    gt_mesh = scene.extra_path("gt_mesh")
    if gt_mesh is not None and gt_mesh.is_file():
        mesh = trimesh.load(gt_mesh, force="mesh", process=False)
        gm = geometry_metrics(pred, (np.asarray(mesh.vertices), np.asarray(mesh.faces)), taus=TAUS,
                              num_samples=n, generator=g)
        out["geometry_vs_gt_mesh"] = _geometry_block(gm)
    if scene.scan_path is not None:
        scan, scan_src = read_ply_points(scene.scan_path).double().numpy(), "scan.ply"
    elif scene.depths is not None and any(d is not None for d in scene.depths):
        scan, scan_src = fuse_depth(scene, "train", use_masks=True).double().numpy(), "train depth fused"
    else:
        scan, scan_src = None, None
    if scan is not None and len(scan):
        gm = geometry_metrics(pred, scan, taus=TAUS, num_samples=n, generator=g)
        out["geometry_vs_scan"] = {"source": scan_src, **_geometry_block(gm)}

    out["params"] = dict(asset.params)
    space = asset.program.space
    if scene.gt_params and set(scene.gt_params) <= set(space.names):
        gt = space.validate(dict(scene.gt_params))
        pe = param_errors(asset.params, gt, space)
        floats = [v for k, v in pe.per_param.items() if space[k].type == "float"]
        out["param_errors"] = {"continuous_mae_pct": _json_float(pe.continuous_mae_pct),
                               "continuous_max_pct": max(floats) if floats else None,
                               "discrete_accuracy": _json_float(pe.discrete_accuracy),
                               "discrete_structure_recovered": pe.n_discrete == 0 or pe.discrete_accuracy == 1.0,
                               "n_continuous": pe.n_continuous, "n_discrete": pe.n_discrete,
                               "per_param": pe.per_param}
    return out


def format_table(m: dict[str, Any]) -> str:
    """A short human-readable summary of :func:`evaluate_run`'s result."""
    def f(x: Any, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    t = m["test"]
    rows = [("test views", str(t["num_views"])),
            ("PSNR full / masked (dB)", f"{f(t.get('psnr'), '.2f')} / {f(t.get('psnr_masked'), '.2f')}"),
            ("SSIM full / masked", f"{f(t.get('ssim'), '.4f')} / {f(t.get('ssim_masked'), '.4f')}")]
    for key, label in (("geometry_vs_gt_mesh", "vs GT mesh"), ("geometry_vs_scan", "vs scan")):
        gmb = m.get(key)
        if gmb:
            rows.append((f"{label}: Chamfer-L1 (mm) / L2 (mm^2)",
                         f"{gmb['chamfer_l1'] * 1e3:.2f} / {gmb['chamfer_l2'] * 1e6:.2f}"))
            rows.append((f"{label}: F@1/2/5cm, NC",
                         f"{gmb['fscore@1cm']:.3f} / {gmb['fscore@2cm']:.3f} / {gmb['fscore@5cm']:.3f}, "
                         f"{f(gmb['normal_consistency'], '.3f')}"))
    pe = m.get("param_errors")
    if pe:
        rows.append(("params: MAE % range / max %", f"{f(pe['continuous_mae_pct'], '.2f')} / "
                                                     f"{f(pe['continuous_max_pct'], '.2f')}"))
        rows.append(("params: discrete accuracy", f(pe["discrete_accuracy"], ".3f")))
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)
