"""Benchmark: one update of the browser editor (``splat view``) on the server, for ~40k world Gaussians.

Issue #15's goal: a control's change is on the server within 100 ms for 40k Gaussians. An update is
what :class:`splat.viewer.EditorApp` does when a control changes (setting a control's value from Python
runs all of it before returning): re-evaluate the program (B = 1), push the procedural Gaussians forward,
convert them for the browser and put them on viser's splat scene node (the websocket send itself runs on
viser's event loop and is not counted). Measured side by side in one process with the plain path of
``render.py --set`` (``EditableAsset.with_params(edits).world_gaussians()``, which also re-checks coverage
with a second evaluation, + the same scene-node update).

Run: ``python bench/bench_view.py [--run RUN] [--gaussians 40000] [--edits 40] [--threads 1]
[--no-append]``. Without ``--run`` it builds a chair (library program, its defaults) with procedural
Gaussians on its primitives, about ``--gaussians`` world Gaussians (copies count once per copy). Appends
a dated section to bench/RESULTS.md unless ``--no-append``. The machine is shared: the load average is
printed and recorded; figures under load are several times the quiet ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def chair_asset(n_world: int, sh_degree: int):
    """A chair at its default values with procedural Gaussians, ~n_world world Gaussians."""
    from splat.export.asset import EditableAsset
    from splat.gaussians import InitSettings, init_gaussians
    from splat.program import load_program

    program = load_program("chair")
    params = program.space.defaults()
    geo = program.evaluate(params, dtype=torch.float64)
    n = n_world
    for _ in range(4):  # copies (legs, slats) multiply the canonical count: adjust
        g = init_gaussians(geo, InitSettings(num_init=n, sh_degree=sh_degree, color_mode="constant",
                                             init_opacity=0.9), torch.Generator().manual_seed(0), dtype=torch.float32)
        world = len(g.pushforward(geo, 0).means)
        if abs(world - n_world) < 0.02 * n_world:
            break
        n = max(1, round(n * n_world / world))
    return EditableAsset(program, program.space.validate(params), g, np.eye(4))


def _stats(ts: list[float]) -> str:
    ms = sorted(1e3 * t for t in ts)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return f"median {statistics.median(ms):6.1f} ms, p90 {p90:6.1f} ms, max {ms[-1]:6.1f} ms"


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=None, help="a trained run instead of the built chair")
    ap.add_argument("--gaussians", type=int, default=40_000, help="world Gaussians of the built chair")
    ap.add_argument("--sh-degree", type=int, default=0)
    ap.add_argument("--edits", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from splat.maths import sh_dc_to_rgb
    from splat.viewer import EditorApp, ViewerSettings
    from splat.workspace import load_run

    load_start = _load()
    asset = load_run(args.run) if args.run else chair_asset(args.gaussians, args.sh_degree)
    app = EditorApp(asset, ViewerSettings(port=0))
    try:
        n_world = len(app.session.frame.centers)
        p = asset.program.space["Seat Height"]
        gen = np.random.default_rng(0)
        values = [float(v) for v in gen.uniform(p.low, p.high, args.edits)]
        fast, fast_session, plain = [], [], []
        h = app.controls["Seat Height"]
        h.value = values[-1]  # warm-up
        for v in values:  # the editor: set the control, the update runs before the assignment returns
            t0 = time.perf_counter()
            h.value = v
            fast.append(time.perf_counter() - t0)
            fast_session.append(app.session.seconds)
            assert app.session.params["Seat Height"] == v
        k = app.display_scale
        for v in values:  # the plain path of render.py --set, same scene-node update
            t0 = time.perf_counter()
            w = asset.with_params({**app.session.params, "Seat Height": v}).world_gaussians()
            rgb = sh_dc_to_rgb(w.sh[:, 0]).clamp(0, 1)
            app.splats.set_gaussians(w.means.numpy() * k, w.covars.numpy() * (k * k), rgb.numpy(),
                                     w.opacities.numpy()[:, None])
            plain.append(time.perf_counter() - t0)
        structure = []
        if "Legs Type" in app.controls:  # a structure edit to untrained primitives: covered once, then cached
            lt = app.controls["Legs Type"]
            for opt in (lt.options[1], lt.options[0], lt.options[1]):
                t0 = time.perf_counter()
                lt.value = opt
                structure.append((opt, time.perf_counter() - t0, len(app.session.frame.centers)))
    finally:
        app.close()
    load_end = _load()
    ratio = statistics.median(plain) / statistics.median(fast)
    lines = [
        f"- setup: {'run ' + str(args.run) if args.run else 'chair (library defaults), built'}, "
        f"{n_world:,} world Gaussians ({len(asset.gaussians):,} canonical), sh_degree {asset.gaussians.sh_degree}, "
        f"torch threads {torch.get_num_threads()}, {args.edits} Seat Height edits",
        f"- editor update (control set -> program -> pushforward -> splat node): {_stats(fast)}",
        f"  - of which program + pushforward + conversion (EditSession.update): {_stats(fast_session)}",
        f"- plain path (with_params().world_gaussians() + same node update): {_stats(plain)}",
        f"- plain / editor (medians): {ratio:.2f}x; goal: editor < 100 ms -> "
        f"{'met' if statistics.median(fast) < 0.1 else 'NOT met'} (median)",
    ]
    if structure:
        lines.append("- Legs Type edits (first brings untrained primitives: covered; then cached): " + ", ".join(
            f"{opt} {1e3 * t:.0f} ms ({n:,} Gaussians)" for opt, t, n in structure))
    print("\n".join(lines))
    print(f"load average at start {load_start}, at end {load_end} (nproc {os.cpu_count()}; shared, busy machine)")
    if args.no_append:
        return
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=RESULTS.parent, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                               cwd=RESULTS.parent).stdout.strip()
        commit += " (+ uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = [f"\n## {now}: bench_view.py (splat view update latency)\n",
               f"- machine: nproc {os.cpu_count()}, load average {load_start} at start, {load_end} at end "
               "(shared with other jobs: busy)",
               f"- commit: {commit}", *lines, ""]
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write("\n".join(section))
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
