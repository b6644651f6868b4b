"""The trainer: (a) structure search, (b) joint training, (c) evaluation, with checkpoints and resume.

``train(cfg)`` runs the stages in order inside the run folder (:mod:`splat.runs`). A checkpoint
(``checkpoints/latest.pt``) is written after the search and every ``log.checkpoint_every`` joint steps;
it holds the stage, the step, all parameters, optimizer and densifier states and the generator state,
so ``--resume`` continues a killed run where its last checkpoint left it and ends where an
uninterrupted run ends (up to floating-point noise of multi-threaded kernels). Stages (a) and (b) only
ever see :class:`splat.train.data.TrainData` (train frames); the held-out views are read by stage (c).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from splat.data import load_scene
from splat.gaussians import ProceduralGaussians, TrainViews, add_detail_gaussians, init_gaussians, surface_keys
from splat.program import ProgramFit
from splat.io import write_json_atomic
from splat.config import TrainConfig, load_config, save_config, validate_config
from splat.train.data import train_data
from splat.train.joint import JointTrainer, StepStats
from splat.runs import RunDir, load_checkpoint, resolve_run_dir, save_checkpoint
from splat.train.search_stage import SearchOutcome, choose_stage, search_stage
from splat.workspace import program_for, scene_dir, wants_program_choice


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    run_dir: RunDir
    metrics: dict[str, Any]
    seconds: float  # wall time of this invocation


def _rng_state(g: torch.Generator) -> torch.Tensor:
    return g.get_state().clone()


def train(cfg: TrainConfig, *, on_step: Callable[[JointTrainer, StepStats], None] | None = None) -> TrainResult:
    """Run (or, with ``cfg.resume``, continue) a training run; returns its folder and final metrics."""
    t0 = time.perf_counter()
    validate_config(cfg)
    rd = resolve_run_dir(cfg.output_dir, cfg.scene, cfg.run, resume=cfg.resume)
    ckpt = None
    if cfg.resume:
        saved = load_config(rd.config)
        cfg = dataclasses.replace(saved, resume=True, run=rd.root.name, output_dir=cfg.output_dir)
        ckpt = load_checkpoint(rd.checkpoints)
    rd.create()
    save_config(rd.config, dataclasses.replace(cfg, resume=False, run=rd.root.name))
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, rd, ckpt, on_step, t0)
    finally:
        torch.set_num_threads(threads_before)


def corrections_summary(trainer: JointTrainer, names: list[str]) -> dict[str, Any]:
    """The learned per-train-image corrections (``optim.lr_exposure`` / ``optim.lr_pose``), by frame name:
    colour ``[A | b]`` rows, pose rotation (degrees) and translation (cm) on the camera side, and the
    median/max sizes of the pose corrections."""
    out: dict[str, Any] = {"format": "splat.corrections/1", "frames": {n: {} for n in names}}
    if trainer.exposure is not None:
        for n, a in zip(names, trainer.exposure.detach().double().tolist()):
            out["frames"][n]["colour"] = [[round(x, 5) for x in row] for row in a]
    if trainer.pose is not None:
        d = trainer.pose.detach().double()
        rot_deg = d[:, :3].norm(dim=1) * (180.0 / math.pi)
        trans_cm = d[:, 3:].norm(dim=1) * 100.0
        for i, n in enumerate(names):
            out["frames"][n]["rotation_deg"] = [round(float(x) * 180.0 / math.pi, 4) for x in d[i, :3]]
            out["frames"][n]["translation_cm"] = [round(float(x) * 100.0, 3) for x in d[i, 3:]]
        out["pose"] = {"median_rotation_deg": float(rot_deg.median()), "max_rotation_deg": float(rot_deg.max()),
                       "median_translation_cm": float(trans_cm.median()), "max_translation_cm": float(trans_cm.max())}
    return out


def _train(cfg: TrainConfig, rd: RunDir, ckpt: dict[str, Any] | None,
           on_step: Callable[[JointTrainer, StepStats], None] | None, t0: float) -> TrainResult:

    scene = load_scene(scene_dir(cfg.scene))
    choose = ckpt is None and wants_program_choice(scene, cfg.program)  # --program auto (splat.search.choose)
    program = None if choose else program_for(scene, cfg.program)
    generator = torch.Generator().manual_seed(cfg.seed)
    data = train_data(scene, max_scan_points=cfg.scan.points, generator=generator,
                      background=cfg.background, device=cfg.device, scan_voxel=cfg.scan.voxel or None)

    # (a) structure search (restored from the checkpoint when it is past it)
    if ckpt is not None:
        generator.set_state(ckpt["rng"])
        outcome = SearchOutcome(dict(ckpt["search"]["assignment"]), ckpt["search"]["placement"].double(),
                                dict(ckpt["search"].get("info", {})))
    elif choose:
        program, outcome = choose_stage(data, cfg, rd.root / "choice.json")
        # the run's program from now on: --resume, export and evaluate read it from config.json
        cfg = dataclasses.replace(cfg, program=program.name)
        save_config(rd.config, dataclasses.replace(cfg, resume=False, run=rd.root.name))
    else:
        outcome = search_stage(program, data, cfg, generator)

    fit = ProgramFit(program, outcome.assignment, outcome.placement)
    geo = fit.geometry()
    if ckpt is not None and ckpt.get("joint") is not None:
        gaussians = ProceduralGaussians.from_state(ckpt["joint"]["gaussians"], surface_keys(geo))
    else:
        views = TrainViews(data.images, data.viewmats, data.Ks, data.depths, data.masks)
        gaussians = init_gaussians(geo, cfg.gaussians, generator, views)
        gaussians, _ = add_detail_gaussians(gaussians, geo, data.scan, cfg.gaussians, generator, views)
    trainer = JointTrainer(cfg, data, fit, gaussians, generator)
    if ckpt is not None and ckpt.get("joint") is not None:
        trainer.load_state(ckpt["joint"])
        generator.set_state(ckpt["rng"])

    def checkpoint() -> None:
        save_checkpoint(rd.checkpoints, {
            "stage": "joint" if trainer.step < cfg.optim.steps else "done",
            "step": trainer.step,
            "search": {"assignment": outcome.assignment, "placement": outcome.placement.clone(),
                       "info": outcome.info},
            "joint": trainer.state(),
            "rng": _rng_state(generator),
        })

    if ckpt is None:
        checkpoint()  # the search result survives a kill during the joint stage

    # (b) joint training
    from splat.train.logger import TrainLogger

    logger = TrainLogger(rd.tb, total=cfg.optim.steps, initial=trainer.step, progress=cfg.log.progress)
    try:
        if outcome.info:
            logger.scalars(0, {k: v for k, v in outcome.info.items() if isinstance(v, (int, float))}, prefix="search")
        trainer.run(on_step=on_step, logger=logger, checkpoint=checkpoint)
        checkpoint()
        if trainer.exposure is not None or trainer.pose is not None:
            names = [scene.names[i] for i in scene.split["train"]]
            write_json_atomic(rd.root / "corrections.json", corrections_summary(trainer, names))
        # (c) the editable assets, then the one evaluation (splat.evaluate, the same as `splat evaluate`)
        # of that asset on the held-out views: metrics.json has eval_metrics.json's schema and numbers
        from splat.evaluate import EvalOptions, evaluate_asset
        from splat.export.asset import write_assets

        asset = write_assets(rd.assets, program, fit.assignment(), gaussians, fit.placement().detach())
        options = EvalOptions(surface_samples=cfg.eval.surface_samples, seed=0, backend=cfg.raster.backend,
                              near_plane=cfg.raster.near_plane, background=cfg.background)
        report = evaluate_asset(asset, scene, options, run=rd.root,
                                renders_dir=rd.renders if cfg.eval.save_renders else None)
        metrics = report.as_dict()
        write_json_atomic(rd.metrics, metrics)
        flat = {"psnr": report.test.psnr, "ssim": report.test.ssim} if report.test.num_views else {}
        if report.geometry_vs_scan is not None:
            flat["chamfer_l2_scan"] = report.geometry_vs_scan.chamfer_l2
        logger.scalars(trainer.step, flat, prefix="eval")
    finally:
        logger.close()
    return TrainResult(rd, metrics, time.perf_counter() - t0)
