"""Coverage of the program library: does ``--program auto`` pick a program that fits real furniture?

Scenes, all made by the scene maker (Blender Cycles, ``splat.blender.make_scene``) and cached in
``<out>/scenes``:

- the shared Poly Haven models: the stool (the shipped ``stool`` scene), the table and the bookshelf
  (``/work/shared/data/polyhaven``, or ``--polyhaven DIR``);
- every library program at random valid parameters (``--per-program`` scenes each, seeds 1000 + i).

Each scene is trained through the trainer's Python API with ``program="auto"`` (stage (a) is the program
choice, :mod:`splat.search.choose`, on the train-fused scan), the shipped scenes' preset (the chair's)
otherwise. A row: the chosen program, its ranking margin (runner-up fitness / winner fitness - 1), the
cost of the choice as a multiple of the winner's own full search in the same run, F-score@1cm and @2cm
of the fitted program's surface against the ground-truth mesh, held-out PSNR, and for program scenes
whether the right program was chosen and its structure recovered (the right program and every active
discrete parameter equal to the ground truth, after the silhouette check). The goals (issue #14): Poly
Haven F@2cm >= 0.9; random program scenes (>= 20) right program >= 95%, structure >= 90%; the choice
<= 3x one program's search.

    python bench/bench_coverage.py [--quick] [--per-program 3] [--out DIR] [--results bench/RESULTS.md]

``--quick``: one scene per program, 16 views at 160 px (8 Cycles samples), a smaller search (24 genomes x
12 generations, 6 turned, 100 final steps) and 100 joint steps (PSNR is then a smoke number, not a
quality figure). Appends a section (date, machine load, commit) to RESULTS.md and
writes ``<out>/coverage.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_scenes import append_section, git_commit, machine_line  # noqa: E402

POLYHAVEN = Path("/work/shared/data/polyhaven")
POLYHAVEN_MODELS = {"ph_table": "wooden_table_02_1k.gltf", "ph_bookshelf": "wooden_bookshelf_worn_1k.gltf"}
"""Poly Haven scenes made here (the stool is the shipped ``stool`` scene, made from the same files)."""


def make_scenes(out: Path, per_program: int, quick: bool, polyhaven: Path) -> list[tuple[str, Path, str | None]]:
    """(name, scene folder, ground-truth program or None) of every scene, rendering the missing ones."""
    from splat.blender.make_scene import RenderSettings, SceneRequest, make_scene
    from splat.blender.scene_cameras import CameraSettings
    from splat.library import library
    from splat.workspace import SCENES_DIR

    cams = CameraSettings()
    render = RenderSettings(threads=1)
    if quick:
        cams = dataclasses.replace(cams, width=160, height=160, n_train=12, n_test=4)
        render = dataclasses.replace(render, samples=8)
    scenes: list[tuple[str, Path, str | None]] = [("ph_stool", SCENES_DIR / "stool", None)]
    requests = [(name, SceneRequest(out=out / name, seed=7, mesh_file=polyhaven / f), None)
                for name, f in POLYHAVEN_MODELS.items()]
    for e in library():
        for i in range(per_program):
            name = f"{e.name}_{i}"
            requests.append((name, SceneRequest(out=out / name, seed=1000 + i, program=e.name), e.name))
    for name, req, program in requests:
        if not (req.out / "transforms.json").is_file():
            t = time.perf_counter()
            make_scene(req, cameras=cams, render=render, command="bench/bench_coverage.py")
            print(f"made {name} ({time.perf_counter() - t:.0f} s)", flush=True)
        scenes.append((name, req.out, program))
    return scenes


def train_config(scene: Path, out: Path, name: str, quick: bool):
    from splat import presets

    r = dataclasses.replace
    cfg = r(presets.chair(), scene=str(scene), program="auto", output_dir=out, run=name, threads=1, seed=0)
    cfg = r(cfg, log=r(cfg.log, progress=False, image_every=0, checkpoint_every=0),
            eval=r(cfg.eval, save_renders=False))
    if quick:
        cfg = r(cfg, search=r(cfg.search, population=24, generations=12, turned_generations=6,
                              final_refine=r(cfg.search.final_refine, steps=100)),
                optim=r(cfg.optim, steps=100), gaussians=r(cfg.gaussians, num_init=4000),
                densify=r(cfg.densify, start=30, stop=80, every=25, max_gaussians=10000),
                eval=r(cfg.eval, surface_samples=5000))
    return cfg


def structure_recovered(program, fitted: dict, gt: dict) -> bool:
    """Every discrete parameter active under the ground truth has its ground-truth value."""
    active = program.space.active(program.space.validate(gt))
    return all(fitted[p.name] == gt[p.name] for p in program.space.params if p.type != "float" and active[p.name])


def run_scene(name: str, scene: Path, gt_program: str | None, out: Path, quick: bool) -> dict:
    from splat.data import load_scene
    from splat.program import load_program
    from splat.train import train

    done = out / "runs" / name / "row.json"
    if done.is_file():
        return json.loads(done.read_text())
    cfg = train_config(scene, out / "runs", name, quick)
    t = time.perf_counter()
    res = train(cfg)
    seconds = time.perf_counter() - t
    root = res.run_dir.root
    choice = json.loads((root / "choice.json").read_text())
    fitted = json.loads((root / "assets" / "params.json").read_text())
    m = res.metrics
    g = m.get("geometry_vs_gt_mesh") or {}
    winner = choice["ranking"][0]
    row = {"scene": name, "gt_program": gt_program, "program": choice["program"], "margin": choice["margin"],
           "ranking": [c["name"] for c in choice["ranking"]],
           "choice_seconds": choice["seconds"], "winner_search_seconds": winner["seconds"],
           "cost_ratio": choice["seconds"] / winner["seconds"] if winner["seconds"] else None,
           "fscore@1cm": g.get("fscore@1cm"), "fscore@2cm": g.get("fscore@2cm"),
           "psnr": (m.get("test") or {}).get("psnr"), "train_seconds": seconds}
    if gt_program is not None:
        sc = load_scene(scene)
        row["right_program"] = choice["program"] == gt_program
        row["structure"] = bool(row["right_program"] and structure_recovered(
            load_program(gt_program), fitted["params"], dict(sc.gt_params)))
    from splat.io import write_json_atomic

    write_json_atomic(done, row)
    return row


def _f(x, spec):
    return "-" if x is None else format(x, spec)


def section(rows: list[dict], quick: bool, started: str, machine_before: str, commit: str) -> str:
    lines = [f"## Coverage {started}{' (quick)' if quick else ''}", "",
             f"- machine: {machine_before} at start, {machine_line()} at end (1 torch thread, shared cores)",
             f"- commit: {commit}",
             "- `python bench/bench_coverage.py" + (" --quick" if quick else "") + "`: `--program auto` over the "
             "whole library (9 programs) on each scene; margin = runner-up / winner fitness - 1; cost = the "
             "choice's wall time / the winner's own full search in the same run", "",
             "| scene | GT program | chosen | runner-up | margin | cost x | F@1cm | F@2cm | PSNR dB | right | structure |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        right = "-" if r.get("right_program") is None else ("yes" if r["right_program"] else "NO")
        struct = "-" if r.get("structure") is None else ("yes" if r["structure"] else "no")
        lines.append(f"| {r['scene']} | {r['gt_program'] or '(Poly Haven)'} | {r['program']} | "
                     f"{r['ranking'][1] if len(r['ranking']) > 1 else '-'} | {_f(r['margin'], '.1%')} | "
                     f"{_f(r['cost_ratio'], '.2f')} | {_f(r['fscore@1cm'], '.3f')} | {_f(r['fscore@2cm'], '.3f')} | "
                     f"{_f(r['psnr'], '.2f')} | {right} | {struct} |")
    prog = [r for r in rows if r["gt_program"]]
    ph = [r for r in rows if not r["gt_program"]]
    costs = [r["cost_ratio"] for r in rows if r["cost_ratio"]]
    ph_cells = ", ".join(f"{r['scene']} {r['program']} {_f(r['fscore@2cm'], '.3f')}" for r in ph)
    lines += ["",
              f"- Poly Haven F@2cm >= 0.9: {sum((r['fscore@2cm'] or 0) >= 0.9 for r in ph)}/{len(ph)} ({ph_cells})",
              f"- program scenes: right program {sum(r['right_program'] for r in prog)}/{len(prog)}, structure "
              f"recovered {sum(r['structure'] for r in prog)}/{len(prog)}",
              f"- cost of the choice: median {sorted(costs)[len(costs) // 2]:.2f}x, max {max(costs):.2f}x of one "
              f"program's full search" if costs else "- cost: -"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one scene per program, small renders, 100 joint steps")
    ap.add_argument("--per-program", type=int, default=None, help="random scenes per program (default 3, quick 1)")
    ap.add_argument("--only", default="", help="comma-separated scene names to run (default: all)")
    ap.add_argument("--out", default="/tmp/bench_coverage", help="scenes, runs and coverage.json")
    ap.add_argument("--polyhaven", default=str(POLYHAVEN), help="folder of the Poly Haven glTF models")
    ap.add_argument("--results", default=str(REPO / "bench" / "RESULTS.md"), help="markdown file to append to")
    ap.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--report-only", action="store_true",
                    help="append the section of the rows already in <out>/coverage.json (runs nothing)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    per = args.per_program if args.per_program is not None else (1 if args.quick else 3)
    out = Path(args.out) / ("quick" if args.quick else "full")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine_before, commit = machine_line(), git_commit()
    print(f"{started}  {machine_before}  commit {commit}", flush=True)
    if args.report_only:
        rows = json.loads((out / "coverage.json").read_text())["rows"]
        append_section(Path(args.results), section(rows, args.quick, started, machine_before, commit))
        return
    scenes = make_scenes(out / "scenes", per, args.quick, Path(args.polyhaven))
    only = {s for s in args.only.split(",") if s}
    rows = []
    for name, path, gt in scenes:
        if only and name not in only:
            continue
        row = run_scene(name, path, gt, out, args.quick)
        rows.append(row)
        print(json.dumps(row), flush=True)
        from splat.io import write_json_atomic

        write_json_atomic(out / "coverage.json", {"format": "splat.coverage/1", "quick": args.quick, "rows": rows})
    text = section(rows, args.quick, started, machine_before, commit)
    print(text)
    if not args.no_results:
        append_section(Path(args.results), text)


if __name__ == "__main__":
    main()
