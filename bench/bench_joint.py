"""Cost of a joint step that refines the program, beside one that holds the geometry (issue 19's goal: <= 1.5x).

Before issue 19 every preset held the program's parameters and placement at the search's values (learning
rates 0); now they train against the program mesh's silhouette and depth (:mod:`splat.ops.mesh_raster`)
and the Chamfer term, with detail Gaussians, per-copy colour residuals and clones owned by one copy. This
benchmark runs the scene's search once, then two joint trainers from the same start: "held" (the presets
as they were: program and placement learning rates 0, no detail Gaussians, no residuals, shared clones)
and "refined" (the preset as it is, detail Gaussians seeded as the trainer seeds them), and times them interleaved in blocks of steps past ``optim.program_start`` (so both see the same
machine load), then prints ms per step of each, their ratio, and the split of the refined step's extra
time (mesh render, Chamfer term).

    python bench/bench_joint.py [--scene chair] [--blocks 8] [--block-steps 20] [--threads 0]

Other jobs share the cores: the ratio is the figure to read; the load average is printed beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_line() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scene", default="chair")
    ap.add_argument("--blocks", type=int, default=8, help="interleaved blocks per trainer")
    ap.add_argument("--block-steps", type=int, default=20, help="joint steps per block")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()

    import torch

    import splat.train.joint as joint
    from splat import presets
    from splat.data import load_scene
    from splat.gaussians import TrainViews, add_detail_gaussians, init_gaussians
    from splat.program import ProgramFit
    from splat.train.data import train_data
    from splat.train.search_stage import search_stage
    from splat.workspace import program_for, scene_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    r = dataclasses.replace
    cfg = presets.preset(args.scene)
    steps = cfg.optim.program_start + args.blocks * args.block_steps
    cfg = r(cfg, optim=r(cfg.optim, steps=max(steps, cfg.optim.steps)), log=r(cfg.log, progress=False))
    scene = load_scene(scene_dir(cfg.scene))
    program = program_for(scene, cfg.program)
    print(f"{args.scene}: search ... (load {load_line()}, threads {torch.get_num_threads()})", flush=True)
    g = torch.Generator().manual_seed(cfg.seed)
    data = train_data(scene, max_scan_points=cfg.scan.points, generator=g, background=cfg.background,
                      device=cfg.device, scan_voxel=cfg.scan.voxel or None)
    outcome = search_stage(program, data, cfg, g)
    views = TrainViews(data.images, data.viewmats, data.Ks, data.depths, data.masks)
    configs = {
        "held": r(cfg, optim=r(cfg.optim, lr_program=0.0, lr_placement=0.0),
                  gaussians=r(cfg.gaussians, detail_init=0, per_copy_residuals=False),
                  densify=r(cfg.densify, clone_per_copy=False)),
        "refined": cfg,
    }
    trainers = {}
    for name, c in configs.items():
        gen = torch.Generator().manual_seed(cfg.seed)
        fit = ProgramFit(program, outcome.assignment, outcome.placement)
        geo = fit.geometry()
        model = init_gaussians(geo, c.gaussians, gen, views)
        model, _ = add_detail_gaussians(model, geo, data.scan, c.gaussians, gen, views)
        trainers[name] = joint.JointTrainer(c, data, fit, model, gen)
    for t in trainers.values():  # up to program_start: the Gaussians settle, the geometry is still held
        while t.step < cfg.optim.program_start:
            t.train_step()

    # time the refined step's extra phases by wrapping the functions that do them
    extra = {"mesh render": 0.0, "Chamfer term": 0.0}
    originals = {n: getattr(joint, n) for n in ("render_mesh", "chamfer_loss", "sample_surface")}

    def timed(fn, phase):
        def inner(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                extra[phase] += time.perf_counter() - t0
        return inner

    joint.render_mesh = timed(originals["render_mesh"], "mesh render")
    joint.chamfer_loss = timed(originals["chamfer_loss"], "Chamfer term")
    joint.sample_surface = timed(originals["sample_surface"], "Chamfer term")
    seconds = {n: 0.0 for n in trainers}
    try:
        for _ in range(args.blocks):
            for name, t in trainers.items():
                t0 = time.perf_counter()
                for _ in range(args.block_steps):
                    t.train_step()
                seconds[name] += time.perf_counter() - t0
    finally:
        for n, fn in originals.items():
            setattr(joint, n, fn)
    n = args.blocks * args.block_steps
    ms = {k: 1e3 * v / n for k, v in seconds.items()}
    print(f"\n{args.scene}, {n} steps each after step {cfg.optim.program_start}, interleaved in blocks of "
          f"{args.block_steps}; load {load_line()}")
    print(f"held (program and placement learning rates 0, no details/residuals): {ms['held']:.1f} ms/step, "
          f"{len(trainers['held'].gaussians)} Gaussians")
    print(f"refined (the preset): {ms['refined']:.1f} ms/step, {len(trainers['refined'].gaussians)} Gaussians")
    print(f"ratio refined / held: {ms['refined'] / ms['held']:.2f} (goal <= 1.5)")
    for phase, s in extra.items():
        print(f"  refined step, {phase}: {1e3 * s / n:.1f} ms/step")


if __name__ == "__main__":
    main()
