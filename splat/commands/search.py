"""Command line: fit a shape program to a scan and write the best parameters as JSON.

    python -m splat.search --program chair --scene DIR --out best.json [--seed 0 --population 32 --generations 20]
    python -m splat.search --program chair --points scan.ply --out best.json

With ``--scene``, the scan is the scene's ``scan.ply`` when it has one, else its fused depth maps. The
output (written atomically) is :meth:`splat.search.SearchResult.to_dict`: ``params`` (every parameter of
the program, inactive ones at their defaults), ``active``, ``placement`` (translation, yaw about +Z,
scale: ``p_scan = t + s * Rz(yaw) @ p_program``), ``fitness``, ``history``.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace

from splat.cli import run_cli
from splat.errors import SplatError


def _parse(argv):
    ap = argparse.ArgumentParser(prog="python -m splat.search", description=__doc__.splitlines()[0])
    ap.add_argument("--program", required=True, help="a program of programs/ (chair, table, ...) or a path")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--scene", help="scene folder (transforms.json; scan.ply or depth maps)")
    src.add_argument("--points", help="point cloud .ply file")
    ap.add_argument("--out", required=True, help="output JSON file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--population", type=int, default=32)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--yaw-range", type=float, default=180.0, help="yaw searched in [-r, r] degrees")
    ap.add_argument("--scale-range", type=float, default=0.0,
                    help="search a uniform scale in [1/(1+r), 1+r] (0: the scan is metric)")
    ap.add_argument("--final-steps", type=int, default=None, help="Adam steps refining the winner (default: settings)")
    ap.add_argument("--polish-rounds", type=int, default=None,
                    help="rounds of structure polishing after the GA (default: settings)")
    ap.add_argument("--trim", type=float, default=0.0, help="fraction of worst point distances ignored (0..1)")
    ap.add_argument("--voxel", type=float, default=0.005, help="voxel size (m) when fusing scene depth maps")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: the search is many small batched ops, and on a "
                         "2-core machine a second thread costs more than it saves; 0 keeps torch's default)")
    ap.add_argument("--no-views", action="store_true",
                    help="with --scene and fused depth: do not use the depth views to skip surfaces no camera saw")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def _check(value: float, ok: bool, field: str, what: str) -> None:
    if not ok:
        raise SplatError(f"{what}, got {value}", field=field)


def main(argv=None) -> None:
    args = _parse(argv)
    _check(args.population, args.population >= 2, "--population", "must be >= 2")
    _check(args.generations, args.generations >= 1, "--generations", "must be >= 1")
    _check(args.yaw_range, 0 <= args.yaw_range <= 180, "--yaw-range", "must lie in [0, 180]")
    _check(args.scale_range, 0 <= args.scale_range < 10, "--scale-range", "must lie in [0, 10)")
    _check(args.trim, 0 <= args.trim < 1, "--trim", "must lie in [0, 1)")
    _check(args.voxel, args.voxel > 0, "--voxel", "must be > 0")
    _check(args.threads, args.threads >= 0, "--threads", "must be >= 0")
    if args.polish_rounds is not None:
        _check(args.polish_rounds, args.polish_rounds >= 0, "--polish-rounds", "must be >= 0")
    if args.final_steps is not None:
        _check(args.final_steps, args.final_steps >= 0, "--final-steps", "must be >= 0")

    from splat.data import fuse_depth, load_scene, read_ply_points
    from splat.io import write_json_atomic
    from splat.program import load_program
    from splat.search.ga import PlacementSettings, SearchSettings, search

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # this process is the CLI; the library never sets it
    program = load_program(args.program)
    views = None
    if args.points:
        points, scan_file = read_ply_points(args.points), args.points
    else:
        scene = load_scene(args.scene)
        if scene.scan_path is not None:
            points, scan_file = read_ply_points(scene.scan_path), str(scene.scan_path)
        else:
            points, scan_file = fuse_depth(scene, voxel_size=args.voxel), str(scene.root)
            if not args.no_views:
                from splat.search.views import ScanViews

                views = ScanViews.from_scene(scene, list(range(len(scene))))
    base = SearchSettings()
    settings = replace(
        base,
        seed=args.seed,
        population=args.population,
        generations=args.generations,
        elites=min(base.elites, args.population - 1),
        progress=not args.no_progress,
        chamfer=replace(base.chamfer, trim=args.trim),
        polish_rounds=base.polish_rounds if args.polish_rounds is None else args.polish_rounds,
        final_refine=base.final_refine if args.final_steps is None else replace(base.final_refine,
                                                                                steps=args.final_steps),
        placement=PlacementSettings(yaw_range=math.radians(args.yaw_range),
                                    log_scale_range=math.log1p(args.scale_range)),
    )
    result = search(program, points, settings, scan_file=scan_file, views=views)
    write_json_atomic(args.out, result.to_dict())
    print(f"fitness {result.fitness:.5g} after {len(result.history)} generations "
          f"({result.evaluations} genomes scored); wrote {args.out}")


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
