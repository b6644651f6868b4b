"""Capture-like scenes against their ground truth: make -> import -> train -> compare (issue #13, item 4).

For each program (default chair, table, cabinet) a cluttered capture-like scene is rendered
(``splat make-scene --capture``: hand-held loop at 320x240, clutter, two walls, textured floor, exposure
+-30%, white balance +-5%, written poses off by 1 cm / 0.5 deg, JPEG 90, Kinect-like depth noise),
imported with ``splat import nerfstudio`` (automatic isolation, ``--program`` the true one) and trained with
:func:`splat.presets.capture_like` (the tum_cabinet settings). The fitted parameters are compared with the
truth: structure (every active discrete parameter equal) and each active continuous parameter's error in %
of its range (goal: all within 3%). The table also gives the isolation's quality (IoU of the imported
object masks against the rendered truth masks, frames kept), the isolated object's size error and the
wall times of the three stages.

    python bench/bench_capture.py [--programs chair,table,cabinet] [--quick] [--out DIR] [--threads 1]

``--quick``: 12 frames at 8 samples, a shrunk search and 150 joint steps (checks that the pipeline runs;
not quality numbers). Each run appends a section to ``bench/RESULTS.md`` with the date, the commit and the
machine's load at start and end (other jobs share the cores: wall times are noisy).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_scenes import append_section, git_commit, machine_line, quick_config  # noqa: E402

SEEDS = {"chair": 1, "table": 2, "cabinet": 3, "bookshelf": 4}
"""The seed of each program's scene (its parameters, room, trajectory and noise)."""
GOAL_PCT = 3.0


def run(cmd: list[str], log: Path) -> float:
    """Run a command (output to ``log``); returns its wall time; exits with the log's tail on failure."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n" + log.read_text()[-3000:])
    return time.perf_counter() - t0


def mask_iou(scene_dir: Path, truth_dir: Path) -> tuple[float, float]:
    """(mean, min) IoU of the imported scene's object masks against the truth masks of the same frames."""
    from splat.data import load_scene
    from splat.data.images import read_mask

    scene = load_scene(scene_dir)
    ious = []
    for name, cam, mask in zip(scene.names, scene.cameras, scene.masks):
        truth = read_mask(truth_dir / "masks" / f"{name}.png", cam.height, cam.width)
        union = (truth | mask).sum()
        ious.append((truth & mask).sum() / union if union else 1.0)
    return float(np.mean(ious)), float(np.min(ious))


def compare(run_dir: Path, truth: dict) -> dict:
    """Fitted parameters of a run against the truth: per-parameter errors, structure, worst continuous."""
    from splat.metrics import param_errors
    from splat.workspace import load_run

    asset = load_run(run_dir)
    space = asset.program.space
    gt = space.validate(dict(truth["gt_params"]))
    pe = param_errors(asset.params, gt, space)
    cont = {k: v for k, v in pe.per_param.items() if space[k].type == "float"}
    disc = {k: v for k, v in pe.per_param.items() if space[k].type != "float"}
    worst = max(cont, key=cont.get) if cont else None
    return {"structure": all(v == 1.0 for v in disc.values()), "wrong": sorted(k for k, v in disc.items() if v != 1.0),
            "mae": pe.continuous_mae_pct, "max": cont[worst] if worst else float("nan"), "worst": worst,
            "within": sum(v <= GOAL_PCT for v in cont.values()), "n": len(cont), "per_param": pe.per_param,
            "fitted": {k: asset.params[k] for k in pe.per_param}, "truth": {k: gt[k] for k in pe.per_param}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--programs", default="chair,table,cabinet", help="comma-separated library programs")
    ap.add_argument("--quick", action="store_true", help="few frames, shrunk search and joint stage (a smoke check)")
    ap.add_argument("--out", default=None, help="work folder (default: a temporary folder)")
    ap.add_argument("--results", default=str(REPO / "bench" / "RESULTS.md"), help="markdown file to append to")
    ap.add_argument("--threads", type=int, default=1, help="render and torch threads")
    ap.add_argument("--no-append", action="store_true", help="print the table only")
    args = ap.parse_args()

    from splat import presets
    from splat.blender.scene_capture import read_truth
    from splat.train import train

    programs = [p.strip() for p in args.programs.split(",") if p.strip()]
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_capture_"))
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine_before = machine_line()
    commit = git_commit()
    print(f"{started}  {machine_before}  commit {commit}  (timings noisy: other jobs share the cores)", flush=True)
    py = [sys.executable, "-m", "splat"]
    rows, details = [], []
    for prog in programs:
        seed = SEEDS.get(prog, 0)
        cap, scene = out / f"{prog}_capture", out / f"{prog}_scene"
        make = py + ["make-scene", "--program", prog, "--seed", str(seed), "--capture", "--threads", str(args.threads),
                     "--out", str(cap), "--pose-noise-m", "0.01", "--pose-noise-deg", "0.5", "--exposure", "0.3"]
        if args.quick:
            make += ["--n-views", "12", "--samples", "8"]
        print(f"{prog}: make-scene ...", flush=True)
        cached = (cap / "transforms.json").is_file()  # a scene of an earlier pass in --out is reused
        t_make = float("nan") if cached else run(make, out / f"{prog}_make.log")
        print(f"{prog}: import ...", flush=True)
        t_import = run(py + ["import", "nerfstudio", str(cap), "--out", str(scene), "--program", prog, "--overwrite"],
                       out / f"{prog}_import.log")
        truth = read_truth(cap / "truth")
        iou_mean, iou_min = mask_iou(scene, cap / "truth")
        meta = json.loads((scene / "transforms.json").read_text())
        n_kept = len(meta["frames"])
        ext = np.array(meta["capture"]["object"]["extents"], dtype=float)
        true_ext = np.array(truth["object_extents"], dtype=float)
        ext_err = np.abs(np.sort(ext[:2]) - np.sort(true_ext[:2])).tolist() + [abs(ext[2] - true_ext[2])]
        cfg = presets.capture_like(str(scene))
        if args.quick:
            cfg = quick_config(cfg)
        cfg = dataclasses.replace(cfg, output_dir=out / "runs", run=f"bench_{prog}", threads=args.threads,
                                  log=dataclasses.replace(cfg.log, progress=False))
        print(f"{prog}: train ...", flush=True)
        t0 = time.perf_counter()
        result = train(cfg)
        t_train = time.perf_counter() - t0
        c = compare(result.run_dir.root, truth)
        ok = c["structure"] and c["max"] <= GOAL_PCT
        rows.append("| " + " | ".join([
            prog + (" (quick)" if args.quick else ""), f"{n_kept}/{len(truth['views'])}",
            f"{iou_mean:.3f} / {iou_min:.3f}",
            f"{100 * max(ext_err):.1f}", "yes" if c["structure"] else "no: " + ", ".join(c["wrong"]),
            f"{c['mae']:.2f}", f"{c['max']:.2f} ({c['worst']})", f"{c['within']}/{c['n']}", "yes" if ok else "no",
            ("reused" if cached else f"{t_make:.0f}") + f" / {t_import:.0f} / {t_train:.0f}"]) + " |")
        print(rows[-1], flush=True)
        floats = [k for k, v in c["truth"].items() if isinstance(v, float)]
        bad = {k: (round(c["fitted"][k], 4), round(c["truth"][k], 4), round(c["per_param"][k], 2))
               for k in floats if c["per_param"][k] > GOAL_PCT}
        details.append(f"- {prog} (seed {seed}): continuous errors above {GOAL_PCT:g}% (fitted, truth, % of range): "
                       + (", ".join(f"{k} {v}" for k, v in bad.items()) or "none"))
        (out / f"{prog}_compare.json").write_text(json.dumps(c, indent=2, default=float))

    header = ("| scene | frames kept | mask IoU mean / min | size err cm | structure | param MAE % | "
              "param max % (which) | within 3% | goal | wall s make / import / train |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
    title = f"## {started}: bench_capture.py (capture-like scenes vs ground truth)"
    section = [title + (" (quick)" if args.quick else ""),
               "",
               f"- machine: {machine_before} at start, {machine_line()} at end; threads {args.threads}",
               f"- commit: {commit}",
               "- scenes: `splat make-scene --capture` (320x240, 40-frame hand-held loop, 6 clutter items, 2 walls, "
               "textured floor, exposure +-30%, white balance +-5%, written poses off by 1 cm / 0.5 deg, JPEG 90, "
               "Kinect-like depth noise) -> `splat import nerfstudio` (auto isolation) -> `splat.presets.capture_like`"
               + (" shrunk by --quick (not quality numbers)" if args.quick else ""),
               "- goal: structure right and every continuous parameter within 3% of its range", "",
               header, *rows, "", *details]
    text = "\n".join(section)
    print("\n" + text)
    if rows and not args.no_append:
        append_section(Path(args.results), text)
        print(f"\nappended to {args.results}; work in {out}")


if __name__ == "__main__":
    main()
