"""Benchmark of the product's main job: ``python train.py --scene chair`` with the default preset.

Prints wall time (whole run, structure search, joint stage per step), held-out PSNR/SSIM, discrete-structure
recovery and continuous-parameter errors, each beside its goal (issue 6): <= 600 s on this 2-core machine,
PSNR >= 30 dB, ground-truth discrete structure, every continuous parameter within 2% of its range.

    python bench/bench_train.py [--scene chair] [--steps N] [--out DIR]

Other engineers' jobs share the 2 cores, so the times are noisy (the load average is printed with them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scene", default="chair")
    ap.add_argument("--steps", type=int, default=None, help="override optim.steps (default: the preset's)")
    ap.add_argument("--out", default=None, help="output dir (default: a temporary folder)")
    args = ap.parse_args()

    from splat import presets
    from splat.runs import load_checkpoint
    from splat.train import train

    cfg = presets.preset(args.scene)
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, steps=args.steps))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_train_"))
    cfg = dataclasses.replace(cfg, output_dir=out, run="bench", log=dataclasses.replace(cfg.log, progress=False))
    load0 = os.getloadavg()[0]
    step_times: list[float] = []
    last = [time.perf_counter()]

    def on_step(trainer, stats):
        now = time.perf_counter()
        step_times.append(now - last[0])
        last[0] = now

    t0 = time.perf_counter()
    res = train(cfg, on_step=on_step)
    total = time.perf_counter() - t0
    m = res.metrics  # the evaluation report (metrics.json, format splat.eval/1; docs/evaluation.md)

    def num(x) -> float:  # the report writes undefined values as null
        return float("nan") if x is None else x

    pe = m.get("param_errors") or {}
    gm = m.get("geometry_vs_gt_mesh") or {}
    # the search's own numbers are not evaluation: they stay in the checkpoint (and TensorBoard)
    search_s = num(((load_checkpoint(res.run_dir.checkpoints) or {}).get("search") or {}).get("info", {}).get("seconds"))
    psnr = num(m["test"].get("psnr"))
    max_pct = pe.get("continuous_max_pct")
    rows = [
        ("wall time, whole run (s)", f"{total:.1f}", "<= 600", total <= 600),
        ("  structure search (s)", f"{search_s:.1f}", "", None),
        ("  joint steps", f"{len(step_times)}", "", None),
        ("  joint s/step (median)", f"{sorted(step_times)[len(step_times) // 2]:.3f}" if step_times else "-", "", None),
        ("held-out PSNR (dB)", f"{psnr:.2f}", ">= 30", psnr >= 30),
        ("held-out SSIM", f"{num(m['test'].get('ssim')):.4f}", "", None),
        ("discrete structure recovered", str(pe.get("discrete_structure_recovered")), "True",
         bool(pe.get("discrete_structure_recovered"))),
        ("continuous param max err (% range)", f"{num(max_pct):.2f}", "<= 2",
         (1e9 if max_pct is None else max_pct) <= 2.0),
        ("continuous param MAE (% range)", f"{num(pe.get('continuous_mae_pct')):.2f}", "", None),
        ("Chamfer-L2 vs gt mesh (m^2)", f"{num(gm.get('chamfer_l2')):.2e}", "", None),
        ("Gaussians", str(m.get("num_gaussians")), "", None),
    ]
    print(f"bench_train: scene {args.scene}, run {res.run_dir.root}")
    print(f"load average at start {load0:.1f}, at end {os.getloadavg()[0]:.1f} (2 cores; other jobs share them)")
    print(f"{'metric':38s} {'value':>12s} {'goal':>8s}  met")
    for name, value, goal, ok in rows:
        print(f"{name:38s} {value:>12s} {goal:>8s}  {'' if ok is None else ('yes' if ok else 'NO')}")
    print("per-parameter errors:", json.dumps(pe.get("per_param", {})))


if __name__ == "__main__":
    main()
