"""The unconstrained 3DGS baseline, trained by the joint stage's own code and scored by the run's evaluation.

What a run's held-out PSNR is worth is read against plain 3DGS given the same photos: the same train
views, steps, rasterizer settings, learning rates and Gaussian budget (``gaussians.num_init``,
``densify``), and no program. To keep the comparison honest the baseline is not a second trainer: it is
:class:`splat.train.joint.JointTrainer` itself, with the Gaussians owned by one pseudo-primitive whose
part is the identity (:func:`world_frame_program`: a unit cube at the origin, so ``A = M S = I`` and
canonical = world), initialised as 3DGS does from the fused train depth (``TrainData.scan`` subsampled to
``num_init`` points, colours from the train pixels, isotropic scales from nearest-neighbour distances:
:func:`splat.gaussians.init_point_gaussians`), and with what only a program gives switched off
(:func:`baseline_config`: program and placement learning rates 0, Chamfer and surface weights 0). Every
other loss of the config stays: photometric (with ``photometric_region``, ``mask_erode``,
``occlusion_margin``), per-image exposure (``lr_exposure``) and pose (``lr_pose``) corrections, mask,
depth and scale losses. The held-out views are scored by :func:`splat.evaluate.image_scores`, the code
behind a run's ``metrics.json`` ``test`` section (PSNR/SSIM over the whole image; masked and
colour-corrected masked variants where the scene has masks).

    result = train_baseline(cfg)            # cfg: the scene's TrainConfig (a preset)
    result.test.psnr, result.num_gaussians
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from splat.config import TrainConfig, validate_config
from splat.data import load_scene
from splat.evaluate import EvalOptions, ImageScores, image_scores
from splat.gaussians import TrainViews, init_point_gaussians
from splat.io import write_json_atomic
from splat.program import ProgramFit, ShapeProgram
from splat.train.data import train_data
from splat.train.joint import JointTrainer, StepStats
from splat.workspace import scene_dir

FORMAT = "splat.baseline/1"
"""The ``format`` of ``baseline_metrics.json``."""


def world_frame_program() -> ShapeProgram:
    """A program of one unit cube at the origin and no parameters: its one part's pushforward is the
    identity (``S = diag(1, 1, 1)``, ``M = I``), so Gaussians it owns are plain world Gaussians."""
    graph = {
        "format": "splat.geonodes/1",
        "main": "WorldFrame",
        "trees": {"WorldFrame": {
            "interface": {"inputs": [], "outputs": [{"name": "Geometry", "type": "GEOMETRY"}]},
            "nodes": {
                "Group Output": {"type": "NodeGroupOutput"},
                "Frame": {"type": "GeometryNodeMeshCube",
                          "inputs": {"Size": [1.0, 1.0, 1.0], "Vertices X": 2, "Vertices Y": 2, "Vertices Z": 2}},
            },
            "links": [{"from_node": "Frame", "from_socket": "Mesh", "to_node": "Group Output",
                       "to_socket": "Geometry"}],
        }},
    }
    return ShapeProgram.from_dict({"format": "splat.program/1", "name": "world_frame", "graph": graph,
                                   "params": {"format": "splat.params/1", "params": []}})


def baseline_config(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` without what needs a program: program/placement learning rates 0 (nothing to move),
    Chamfer and surface-regulariser weights 0 (no program surface). Everything else is ``cfg``'s."""
    r = dataclasses.replace
    return r(cfg, optim=r(cfg.optim, lr_program=0.0, lr_placement=0.0),
             loss=r(cfg.loss, chamfer=0.0, surface=0.0))


@dataclass(frozen=True)
class BaselineResult:
    """What a baseline run measured."""

    scene: str  # the scene folder (absolute)
    test: ImageScores  # held-out views, :func:`splat.evaluate.image_scores`
    num_gaussians: int  # Gaussians at the end (<= densify.max_gaussians)
    num_init: int  # Gaussians at the start (scan points kept, <= gaussians.num_init)
    steps: int
    first_loss: float  # mean loss of the first 10% of the steps (at least one)
    last_loss: float  # mean loss of the last 10% of the steps
    seconds: float  # wall time: data, training and evaluation

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``baseline_metrics.json``; non-finite numbers are ``null``)."""
        return {"format": FORMAT, "scene": self.scene, "test": self.test.as_dict(),
                "num_gaussians": self.num_gaussians, "num_init": self.num_init, "steps": self.steps,
                "first_loss": _finite(self.first_loss), "last_loss": _finite(self.last_loss),
                "seconds": _finite(self.seconds)}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def train_baseline(cfg: TrainConfig, *, out_dir: str | Path | None = None,
                   on_step: Callable[[JointTrainer, StepStats], None] | None = None) -> BaselineResult:
    """Train unconstrained Gaussians on ``cfg``'s scene with ``cfg``'s settings and score the test views.

    Args:
        cfg: the procedural run's config (a preset); :func:`baseline_config` is applied to it. Its
            ``seed``, ``threads``, ``device``, ``background``, ``scan``, ``gaussians``, ``densify``,
            ``optim``, ``loss`` and ``raster`` sections are used; the search's and the run folder's are not.
        out_dir: if given, ``baseline_metrics.json`` (:meth:`BaselineResult.as_dict`) and, with
            ``cfg.eval.save_renders``, the test renders (``renders/``) are written there.
        on_step: called after every training step, as in :func:`splat.train.train`.
    """
    t0 = time.perf_counter()
    validate_config(cfg)
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train_baseline(baseline_config(cfg), None if out_dir is None else Path(out_dir), on_step, t0)
    finally:
        torch.set_num_threads(threads_before)


def _train_baseline(cfg: TrainConfig, out: Path | None,
                    on_step: Callable[[JointTrainer, StepStats], None] | None, t0: float) -> BaselineResult:
    scene = load_scene(scene_dir(cfg.scene))
    generator = torch.Generator().manual_seed(cfg.seed)
    data = train_data(scene, max_scan_points=cfg.scan.points, generator=generator,
                      background=cfg.background, device=cfg.device, scan_voxel=cfg.scan.voxel or None)
    fit = ProgramFit(world_frame_program(), {}, torch.eye(4, dtype=torch.float64))
    (part,) = fit.geometry().parts
    keep = torch.randperm(data.scan.shape[0], generator=generator)[: cfg.gaussians.num_init].sort().values
    views = TrainViews(data.images, data.viewmats, data.Ks, data.depths, data.masks)
    gaussians = init_point_gaussians(data.scan[keep], part.key, cfg.gaussians, views)
    num_init = len(gaussians)
    trainer = JointTrainer(cfg, data, fit, gaussians, generator)

    losses: list[float] = []

    def record(tr: JointTrainer, stats: StepStats) -> None:
        losses.append(stats.loss)
        if on_step is not None:
            on_step(tr, stats)

    trainer.run(on_step=record)
    options = EvalOptions(surface_samples=cfg.eval.surface_samples, seed=0, backend=cfg.raster.backend,
                          near_plane=cfg.raster.near_plane, background=cfg.background)
    with torch.no_grad():
        world = gaussians.pushforward(fit.geometry())
    renders = out / "renders" if (out is not None and cfg.eval.save_renders) else None
    test = image_scores(world, scene, options, renders_dir=renders)
    tail = max(1, len(losses) // 10)
    result = BaselineResult(str(scene.root), test, len(gaussians), num_init, trainer.step,
                            _mean(losses[:tail]), _mean(losses[-tail:]), time.perf_counter() - t0)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "baseline_metrics.json", result.as_dict())
    return result
