"""Stage (c): evaluation on the held-out test views, the only code of the trainer that reads them.

Image metrics (PSNR, SSIM over the whole image, rendered over the scene's background) on every test
view; geometry metrics (Chamfer-L2, F-score) of the fitted program's surface against the train-fused
scan and, when the scene ships one, the ground-truth mesh; parameter errors and discrete-structure
recovery when the scene has ground-truth parameters.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from splat.metrics import geometry_metrics, param_errors, psnr, ssim
from splat.ops import sample_surface
from splat.config import TrainConfig
from splat.train.joint import JointTrainer


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@torch.no_grad()
def evaluate(trainer: JointTrainer, scene: Any, cfg: TrainConfig, renders_dir: Path | None) -> dict[str, Any]:
    """Metrics of the trained model (dict ready for metrics.json)."""
    out: dict[str, Any] = {}
    test = list(scene.split["test"])
    geo = trainer.fit.geometry()
    if test:
        images = scene.images_tensor(test, device="cpu")
        vms = scene.viewmats_tensor(test, device="cpu")
        Ks = scene.Ks_tensor(test, device="cpu")
        ps, ss = [], []
        for j in range(len(test)):
            res, _ = trainer.render(vms[j], Ks[j], geo)
            pred = res.colors[0, ..., :3].clamp(0, 1)
            ps.append(float(psnr(pred, images[j])))
            ss.append(float(ssim(pred, images[j])))
            if renders_dir is not None:
                from splat.data.images import write_image

                renders_dir.mkdir(parents=True, exist_ok=True)
                name = scene.cameras[test[j]].name
                write_image(renders_dir / f"{name}.png", pred.numpy())
                write_image(renders_dir / f"{name}_target.png", images[j].numpy())
        out["test"] = {"num_views": len(test), "psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)),
                       "psnr_per_view": ps}
    else:
        out["test"] = {"num_views": 0}

    g = torch.Generator().manual_seed(cfg.seed + 1)
    rm = geo.realize()
    samples = sample_surface(rm.verts.double(), rm.faces, cfg.eval.surface_samples, g,
                             face_active=rm.face_active).points[0].numpy()
    taus = (cfg.eval.fscore_tau,)
    scan = trainer.data.scan.double().numpy()
    gm = geometry_metrics(samples, scan, taus=taus)
    out["geometry_vs_scan"] = {"chamfer_l2": gm.chamfer_l2, "chamfer_l1": gm.chamfer_l1,
                               f"fscore@{cfg.eval.fscore_tau:g}": gm.fscores[0].fscore}
    gt_mesh = scene.extra_path("gt_mesh")
    if gt_mesh is not None and gt_mesh.is_file():
        import trimesh

        mesh = trimesh.load(gt_mesh, force="mesh", process=False)
        gm = geometry_metrics(samples, (np.asarray(mesh.vertices), np.asarray(mesh.faces)), taus=taus,
                              num_samples=cfg.eval.surface_samples, generator=g)
        out["geometry_vs_gt_mesh"] = {"chamfer_l2": gm.chamfer_l2, "chamfer_l1": gm.chamfer_l1,
                                      f"fscore@{cfg.eval.fscore_tau:g}": gm.fscores[0].fscore}
    params = trainer.fit.assignment()
    out["params"] = params
    if scene.gt_params:
        space = trainer.fit.program.space
        gt = space.validate(dict(scene.gt_params))
        pe = param_errors(params, gt, space)
        active = space.active(gt)
        discrete_ok = all(params[p.name] == (bool(gt[p.name]) if p.type == "bool" else int(gt[p.name]))
                          for p in space.params if p.type != "float" and active[p.name])
        out["param_errors"] = {"continuous_mae_pct": _finite(pe.continuous_mae_pct),
                               "continuous_max_pct": max([v for k, v in pe.per_param.items()
                                                          if k in trainer.fit.float_names] or [0.0]),
                               "discrete_accuracy": _finite(pe.discrete_accuracy),
                               "discrete_structure_recovered": bool(discrete_ok),
                               "per_param": pe.per_param}
    out["num_gaussians"] = len(trainer.gaussians)
    return out
