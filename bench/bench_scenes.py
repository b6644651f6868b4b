"""Train every shipped scene and append one results table to ``bench/RESULTS.md`` (run over run).

For each scene in ``assets/scenes/`` with a preset in ``configs/`` the preset is trained through the
trainer's Python API (``splat.train.train``, as ``python train.py --scene X``); its stage (c) is the one
evaluation (``splat.evaluate.evaluate_asset``, the same as ``splat evaluate RUN``; schema in
docs/evaluation.md), whose report (``metrics.json``) gives the row: held-out PSNR / SSIM over the whole
image, Chamfer-L2 and F-score@1/2 cm against the ground-truth mesh, parameter MAE (% of range, active
continuous parameters) and discrete accuracy. The third-party ``stool`` (no program made it) is fitted
with the library's ``stool`` program by its preset; it has no ground-truth parameters, so those columns
are empty.

    python bench/bench_scenes.py [--scenes chair,table] [--quick] [--baseline] [--out DIR]
                                 [--results bench/RESULTS.md]

``--quick`` shrinks the search and the joint stage (a check that the pipeline runs, not quality numbers;
its rows are labelled quick). ``--baseline`` also trains, beside each scene's procedural run and with the
same config, the unconstrained 3DGS baseline (``splat.train.baseline.train_baseline``: the same
JointTrainer, rasterizer, train views, steps, learning rates and Gaussian budget, no program, scored on
the same test views by the same function) and adds a second table: procedural and baseline PSNR/SSIM
side by side, their difference in dB, the masked colour-corrected PSNR where the scene has masks, and
the wall time of each. Each run appends a section with the date, the machine (nproc, load
average) and the git commit; the file is rewritten atomically. Other jobs share the cores, so wall times
are noisy: compare them only with the load average beside them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from splat.workspace import SCENES_DIR  # noqa: E402

def shipped_scenes() -> list[str]:
    root = SCENES_DIR
    return sorted(p.name for p in root.iterdir() if (p / "transforms.json").is_file())


def scene_config(name: str, quick: bool):
    """(TrainConfig, program label) for a shipped scene, or (None, reason) when it cannot be trained."""
    from splat import presets

    scene_dir = SCENES_DIR / name
    if name not in presets.PRESETS:
        return None, "no preset"
    cfg = presets.preset(name)
    program = cfg.program or json.loads((scene_dir / "transforms.json").read_text()).get("program") or "?"
    program = Path(str(program)).stem
    if quick:
        cfg = quick_config(cfg)
    return cfg, program


def quick_config(cfg):
    """A shrunk config: small search, 150 joint steps, few Gaussians (minutes for all scenes)."""
    r = dataclasses.replace
    return r(cfg,
             search=r(cfg.search, population=12, generations=4, final_refine=r(cfg.search.final_refine, steps=20)),
             gaussians=r(cfg.gaussians, num_init=3000),
             optim=r(cfg.optim, steps=150),
             densify=r(cfg.densify, start=50, stop=120, every=50, max_gaussians=8000),
             log=r(cfg.log, image_every=0, checkpoint_every=0, progress=False),
             eval=r(cfg.eval, surface_samples=5000, save_renders=False))


def machine_line() -> str:
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return f"nproc {os.cpu_count()}, load average {load}"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def row(scene: str, program: str, quick: bool, seconds: float, m: dict) -> str:
    t = m.get("test", {})
    g = m.get("geometry_vs_gt_mesh") or {}
    pe = m.get("param_errors") or {}
    cl2 = g.get("chamfer_l2")
    cells = [scene + (" (quick)" if quick else ""), program, f"{seconds:.0f}",
             _fmt(t.get("psnr"), ".2f"), _fmt(t.get("ssim"), ".4f"),
             _fmt(None if cl2 is None else cl2 * 1e6, ".1f"),
             _fmt(g.get("fscore@1cm"), ".3f"), _fmt(g.get("fscore@2cm"), ".3f"),
             _fmt(pe.get("continuous_mae_pct"), ".2f"), _fmt(pe.get("discrete_accuracy"), ".3f")]
    return "| " + " | ".join(cells) + " |"


HEADER = ("| scene | program | wall s | PSNR dB | SSIM | Chamfer-L2 mm^2 | F@1cm | F@2cm | param MAE % | "
          "discrete acc |\n|---|---|---|---|---|---|---|---|---|---|")

PREAMBLE = """# Scene benchmark results

Written by `python bench/bench_scenes.py` (one section per run, newest last). Held-out test views;
PSNR/SSIM over the whole image on the scene background; Chamfer-L2 and F-score against the scene's
ground-truth mesh; parameter MAE in % of range over active continuous parameters. Wall time is the
whole training run (search + joint stage + the trainer's evaluation) on a shared machine: noisy.
"""


def baseline_row(scene: str, quick: bool, seconds: float, m: dict, base_seconds: float, b) -> str:
    """One row of the procedural-vs-baseline table: ``m`` the run's metrics.json, ``b`` a BaselineResult."""
    t = m.get("test", {})
    p, bp = t.get("psnr"), b.test.psnr
    diff = None if p is None or not math.isfinite(bp) else p - bp
    base = b.test.as_dict()
    cells = [scene + (" (quick)" if quick else ""),
             _fmt(p, ".2f"), _fmt(t.get("ssim"), ".4f"), _fmt(base["psnr"], ".2f"), _fmt(base["ssim"], ".4f"),
             _fmt(diff, "+.2f"), _fmt(t.get("psnr_masked_cc"), ".2f"), _fmt(base["psnr_masked_cc"], ".2f"),
             str(m.get("num_gaussians", "-")), str(b.num_gaussians), f"{seconds:.0f}", f"{base_seconds:.0f}"]
    return "| " + " | ".join(cells) + " |"


BASELINE_HEADER = ("| scene | procedural PSNR dB | procedural SSIM | baseline PSNR dB | baseline SSIM | "
                   "procedural - baseline dB | procedural masked-cc PSNR | baseline masked-cc PSNR | "
                   "procedural Gaussians | baseline Gaussians | procedural wall s | baseline wall s |\n"
                   "|---|---|---|---|---|---|---|---|---|---|---|---|")

BASELINE_NOTE = ("Baseline: unconstrained 3DGS (splat.train.baseline) with the scene's config: same "
                 "JointTrainer, rasterizer, train views, steps, learning rates, num_init and densify budget; "
                 "initialised from the fused train depth; no program, Chamfer or surface term. Same held-out "
                 "views and image metrics (splat.evaluate.image_scores). Procedural wall time includes the "
                 "structure search and the geometry evaluation, the baseline's does not.")


def search_vs_joint(run_root: Path, scene_name: str, m: dict, samples: int) -> tuple[list[str], str] | None:
    """Per continuous parameter: its error (% of range) after the search (the checkpoint's search result)
    and after the joint stage (metrics.json), and F-score@1cm to the ground-truth mesh of both programs.

    Returns (per-parameter lines, one summary row) or None without ground-truth parameters.
    """
    import torch

    from splat.data import load_scene
    from splat.evaluate import TAUS, load_gt_mesh
    from splat.metrics import geometry_metrics, param_errors, sample_mesh
    from splat.program import ProgramFit
    from splat.runs import RunDir, load_checkpoint
    from splat.workspace import program_for, scene_dir

    scene = load_scene(scene_dir(scene_name))
    program = program_for(scene, json.loads(RunDir(run_root).config.read_text()).get("program"))
    joint = (m.get("param_errors") or {}).get("per_param") or {}
    if not scene.gt_params or not joint:
        return None
    ckpt = load_checkpoint(RunDir(run_root).checkpoints)
    search = ProgramFit(program, dict(ckpt["search"]["assignment"]), ckpt["search"]["placement"].double())
    space = program.space
    gt = space.validate(dict(scene.gt_params))
    before = param_errors(search.assignment(), gt, space).per_param
    f1_before = "-"
    gt_mesh = scene.extra_path("gt_mesh")
    if gt_mesh is not None and gt_mesh.is_file():
        mesh = load_gt_mesh(gt_mesh)
        ref = sample_mesh((mesh.vertices, mesh.faces), samples, torch.Generator().manual_seed(0))
        rm = search.geometry().realize()
        pred = sample_mesh((rm.verts[0].detach().double(), rm.faces[rm.face_active[0]]), samples,
                           torch.Generator().manual_seed(0))
        f1_before = f"{geometry_metrics(pred, ref, taus=TAUS).as_dict()['fscore@1cm']:.3f}"
    lines, worse = [], []
    for name, after in joint.items():
        if space[name].type != "float" or name not in before:
            continue
        lines.append(f"{name} {before[name]:.3f} -> {after:.3f}")
        worse.append(after - before[name])
    floats = [v for k, v in joint.items() if space[k].type == "float"]
    f1_after = (m.get("geometry_vs_gt_mesh") or {}).get("fscore@1cm")
    summary = (f"| {scene_name} | {max(before[k] for k in joint if space[k].type == 'float'):.3f} | "
               f"{max(floats):.3f} | {max(worse):+.3f} | {f1_before} | {_fmt(f1_after, '.3f')} | "
               + "; ".join(lines) + " |")
    return lines, summary


SEARCH_JOINT_HEADER = ("| scene | max error after search % | max error after joint % | largest joint - search % | "
                       "F@1cm search | F@1cm joint | per parameter: search -> joint (% of range) |\n"
                       "|---|---|---|---|---|---|---|")


def append_section(results: Path, text: str) -> None:
    from splat.io import write_text_atomic

    old = results.read_text(encoding="utf-8") if results.is_file() else PREAMBLE
    write_text_atomic(results, old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", default=None, help="comma-separated scene names (default: every shipped scene)")
    ap.add_argument("--quick", action="store_true", help="shrunk search and joint stage (a fast check)")
    ap.add_argument("--out", default=None, help="folder for the runs (default: a temporary folder)")
    ap.add_argument("--results", default=str(REPO / "bench" / "RESULTS.md"), help="markdown file to append to")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--baseline", action="store_true",
                    help="also train the unconstrained 3DGS baseline beside each scene (same config)")
    args = ap.parse_args()

    from splat.train import train

    known = shipped_scenes()
    names = known if args.scenes is None else [s.strip() for s in args.scenes.split(",") if s.strip()]
    unknown = [s for s in names if s not in known]
    if unknown:
        sys.exit(f"error: --scenes: unknown {unknown}; shipped scenes: {', '.join(known)}")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_scenes_"))
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine_before = machine_line()
    commit = git_commit()
    print(f"{started}  {machine_before}  commit {commit}  (timings noisy: other jobs share the cores)")

    rows, base_rows, sj_rows, notes = [], [], [], []
    for name in names:
        cfg, program = scene_config(name, args.quick)
        if cfg is None:
            notes.append(f"- {name}: skipped ({program})")
            print(f"{name}: skipped ({program})")
            continue
        cfg = dataclasses.replace(cfg, output_dir=out, run=f"bench_{name}", threads=args.threads,
                                  log=dataclasses.replace(cfg.log, progress=False))
        print(f"{name}: training ({program}{', quick' if args.quick else ''}) ...", flush=True)
        t0 = time.perf_counter()
        result = train(cfg)
        seconds = time.perf_counter() - t0
        m = result.metrics  # the trainer's evaluation report (metrics.json, format splat.eval/1)
        rows.append(row(name, program, args.quick, seconds, m))
        print(rows[-1], flush=True)
        sj = search_vs_joint(result.run_dir.root, name, m, cfg.eval.surface_samples)
        if sj is not None:
            sj_rows.append(sj[1])
            print(sj[1], flush=True)
        if args.baseline:
            from splat.train.baseline import train_baseline

            print(f"{name}: training the unconstrained baseline ...", flush=True)
            t0 = time.perf_counter()
            b = train_baseline(cfg, out_dir=out / f"baseline_{name}")
            base_rows.append(baseline_row(name, args.quick, seconds, m, time.perf_counter() - t0, b))
            print(base_rows[-1], flush=True)

    section = [f"## {started}{' (quick)' if args.quick else ''}", "",
               f"- machine: {machine_before} at start, {machine_line()} at end",
               f"- commit: {commit}",
               f"- mode: {'--quick (shrunk search and 150 joint steps: not quality numbers)' if args.quick else 'presets'}",
               *notes, "", HEADER, *rows]
    if sj_rows:
        section += ["", "Continuous parameters after the structure search and after the joint stage "
                    "(% of range), and F-score@1cm of each program to the ground-truth mesh:", "",
                    SEARCH_JOINT_HEADER, *sj_rows]
    if base_rows:
        section += ["", "Procedural vs unconstrained 3DGS baseline (same run). " + BASELINE_NOTE, "",
                    BASELINE_HEADER, *base_rows]
    text = "\n".join(section)
    print("\n" + text)
    if rows:
        append_section(Path(args.results), text)
        print(f"\nappended to {args.results}; runs in {out}")


if __name__ == "__main__":
    main()
