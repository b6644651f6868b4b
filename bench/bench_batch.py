"""`splat batch` throughput: 2 workers x 1 thread against 1 worker, and the Ray engine against the local one.

The same batch of 4 small scenes (the shipped chair, table and cabinet, and a copy of the shipped stool
naming the table program, the batch's one scene-folder job with a program of the user's choosing; a
shrunk config, ~30-40 s per scene at one thread) runs three times, side by side in one run, each into a fresh output folder:

    local, 1 worker x 1 thread      the reference
    local, 2 workers x 1 thread     goal: >= 1.6x faster than 1 worker (a 2-core machine)
    ray,   2 workers x 1 thread     goal: wall time within 10% of the local engine's (2 workers);
                                    Ray's own start (ray.init of a local Ray) is inside its wall time

Wall time is the whole `splat.batch.run_batch` call (process start-up and imports of every job
included). The three run ``--repeat`` times in turn (1, 2, ray, 1, 2, ray, ...); each ratio is taken
within a round (batches run back to back, so a change in the machine's load hits them alike) and the
median over the rounds is compared with the goal. The metrics of the three tables are compared too
(same seeds, one thread: equal to 1e-9).

    python bench/bench_batch.py [--repeat 3] [--steps 100] [--results bench/RESULTS.md] [--no-ray]

Appends a dated section to bench/RESULTS.md (commit, load average before and after, whether the machine
was busy: a 1-minute load average of 0.5 or more at the start, on a machine where the goals assume two
free cores). The machine is shared: read the ratios, measured side by side, before the absolute times.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from splat.batch import EngineSettings, JobRow, make_jobs, run_batch  # noqa: E402
from splat.commands.batch import scene_configs  # noqa: E402
from splat.io import write_text_atomic  # noqa: E402
from splat.workspace import SCENES_DIR  # noqa: E402


def shrunk_args(steps: int) -> list[str]:
    """Train options of the benchmark's small jobs (a shrunk search, `steps` joint steps)."""
    return ["--search.population", "8", "--search.generations", "2", "--search.final-refine.steps", "10",
            "--gaussians.num-init", "2000", "--optim.steps", str(steps), "--densify.start", "40",
            "--densify.stop", "80", "--densify.every", "40", "--densify.max-gaussians", "5000",
            "--log.image-every", "0", "--log.checkpoint-every", "0", "--eval.surface-samples", "4000",
            "--eval.no-save-renders"]


def make_scenes(root: Path) -> list[str]:
    """chair, table, cabinet (shipped names) and a copy of the shipped stool naming the table program."""
    stool = root / "stool"
    shutil.copytree(SCENES_DIR / "stool", stool)
    meta = json.loads((stool / "transforms.json").read_text())
    meta["program"] = "table"
    (stool / "transforms.json").write_text(json.dumps(meta))
    return ["chair", "table", "cabinet", str(stool)]


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def one_batch(scenes: list[str], args: list[str], out: Path, settings: EngineSettings) -> tuple[float, list[JobRow]]:
    jobs = make_jobs(scenes, scene_configs(scenes, args), out, threads=settings.threads)
    t0 = time.perf_counter()
    result = run_batch(jobs, out, settings, progress=lambda line: print("   ", line, flush=True))
    seconds = time.perf_counter() - t0
    if result.failed:
        raise SystemExit(f"{result.failed} scenes failed: see {out}/results.md")
    return seconds, list(result.rows)


def comparable(rows: list[JobRow]) -> list[dict]:
    return [{k: v for k, v in r.metrics.items() if k not in ("run", "seconds")} for r in rows]


def same(a, b, rel: float = 1e-9) -> bool:
    """Nested equality, floats to ``rel`` (MKL's LAPACK, in the colour-corrected PSNR, varies in the last
    bits with memory alignment, so between any two processes)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    return a == b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the three batches (median of the ratios)")
    ap.add_argument("--steps", type=int, default=100, help="joint steps per scene")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray engine")
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    a = ap.parse_args()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    load_start = loadavg()
    busy = float(load_start.split()[0]) >= 0.5 if load_start != "?" else None
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    args = shrunk_args(a.steps)
    variants = [("local, 1 worker x 1 thread", EngineSettings("local", 1, 1)),
                ("local, 2 workers x 1 thread", EngineSettings("local", 2, 1))]
    if not a.no_ray:
        variants.append(("ray, 2 workers x 1 thread", EngineSettings("ray", 2, 1)))
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    loads: dict[str, list[str]] = {name: [] for name, _ in variants}
    tables: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        scenes = make_scenes(Path(tmp))
        for k in range(a.repeat):
            for i, (name, settings) in enumerate(variants):
                print(f"round {k + 1}/{a.repeat}: {name} (load {loadavg()})", flush=True)
                seconds, rows = one_batch(scenes, args, Path(tmp) / f"out_{k}_{i}", settings)
                times[name].append(seconds)
                loads[name].append(loadavg())
                tables[name] = comparable(rows)
                print(f"    wall {seconds:.1f} s", flush=True)
    load_end = loadavg()
    med = {name: statistics.median(ts) for name, ts in times.items()}
    ones, twos = times[variants[0][0]], times[variants[1][0]]
    # ratios within each round (the batches of a round ran back to back), then their median
    speedups = [o / t for o, t in zip(ones, twos)]
    speedup = statistics.median(speedups)
    lines = [f"- 4 scenes (chair, table, cabinet, stool with the table program), shrunk config "
             f"({a.steps} joint steps, small search), {a.repeat} round(s) of the batches back to back; "
             f"ratios within each round, then their median"]
    for name, _ in variants:
        walls = ", ".join(f"{t:.1f}" for t in times[name])
        lines.append(f"- {name}: median {med[name]:.1f} s (rounds: {walls} s; load after each: "
                     f"{'; '.join(loads[name])})")
    lines.append(f"- 2 workers vs 1 worker: {speedup:.2f}x faster (rounds: "
                 f"{', '.join(f'{x:.2f}' for x in speedups)}; goal >= 1.6x: {'met' if speedup >= 1.6 else 'NOT met'})")
    if not a.no_ray:
        ratios = [r / t for r, t in zip(times[variants[2][0]], twos)]
        ratio = statistics.median(ratios)
        lines.append(f"- ray vs local (2 workers each): {ratio:.3f} of the local wall time ({(ratio - 1) * 100:+.1f}%; "
                     f"rounds: {', '.join(f'{x:.3f}' for x in ratios)}; goal within 10%: "
                     f"{'met' if abs(ratio - 1) <= 0.10 else 'NOT met'})")
    equal = all(same(t, tables[variants[0][0]]) for t in tables.values())
    lines.append(f"- metrics of the {len(variants)} tables equal to 1e-9 (same seeds, 1 thread): "
                 f"{'yes' if equal else 'NO'}")
    print("\n".join(lines))

    section = [f"## {started} (splat batch: engines and workers)", "",
               f"- machine: nproc {os.cpu_count()}, load average {load_start} at start, {load_end} at end; "
               f"busy: {'yes' if busy else 'no'} (1-minute load >= 0.5 at the start)",
               f"- commit: {commit}{' (+ uncommitted changes)' if dirty else ''}",
               "- written by `python bench/bench_batch.py"
               + (f" --repeat {a.repeat}" if a.repeat != 3 else "") + (" --no-ray" if a.no_ray else "")
               + "`; ratios measured side by side in one run on a shared machine", *lines, ""]
    text = a.results.read_text(encoding="utf-8") if a.results.is_file() else "# Benchmark results\n"
    write_text_atomic(a.results, text.rstrip("\n") + "\n\n" + "\n".join(section))
    print(f"appended to {a.results}")


if __name__ == "__main__":
    main()
