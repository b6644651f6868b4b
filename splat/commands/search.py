"""``splat search``: fit a shape program to a scan and write the best parameters as JSON.

    splat search --program chair --scene DIR --out best.json [--seed 0 --population 32 --generations 20]
    splat search --program chair --points scan.ply --out best.json

With ``--scene``, the scan is the scene's ``scan.ply`` when it has one, else its fused depth maps. The
output (written atomically) is :meth:`splat.search.SearchResult.to_dict`: ``params`` (every parameter of
the program, inactive ones at their defaults), ``active``, ``placement`` (translation, yaw about +Z,
scale: ``p_scan = t + s * Rz(yaw) @ p_program``), ``fitness``, ``history``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import tyro

from splat.errors import SplatError


@dataclass(frozen=True)
class SearchConfig:
    """Structure search of a shape program against a scan (give exactly one of --scene or --points)."""

    program: str
    """A library program (chair, table, ...: splat/programs/), a path, or "auto": search every library
    program (a cheap first round, then the full search of the best few) and keep the best; the output
    then also holds the ranking ("choice")."""
    out: Path
    """Output JSON file (written atomically)."""
    scene: Optional[Path] = None
    """Scene folder (transforms.json; scan.ply or depth maps) or a shipped scene's name. Exclusive with --points."""
    points: Optional[Path] = None
    """Point cloud .ply file. Exclusive with --scene."""
    seed: int = 0
    """Seed of every random choice."""
    population: int = 32
    """Genomes per generation (>= 2)."""
    generations: int = 20
    """Generations of the genetic algorithm (>= 1)."""
    yaw_range: float = 180.0
    """Yaw searched in [-r, r] degrees."""
    scale_range: float = 0.0
    """Search a uniform scale in [1/(1+r), 1+r] (0: the scan is metric)."""
    final_steps: Optional[int] = None
    """Adam steps refining the winner (None: the SearchSettings default)."""
    polish_rounds: Optional[int] = None
    """Rounds of structure polishing after the GA (None: the SearchSettings default)."""
    trim: float = 0.0
    """Fraction of worst point distances ignored, in [0, 1)."""
    voxel: float = 0.005
    """Voxel size (m) when fusing scene depth maps."""
    threads: int = 1
    """Torch intra-op threads (1: the search is many small batched ops, and on a 2-core machine a second
    thread costs more than it saves; 0 keeps torch's default)."""
    views: bool = True
    """With --scene and fused depth: use the depth views to skip surfaces no camera saw."""
    progress: bool = True
    """Print progress per generation."""
    category: str = ""
    """With --program auto: only the library programs of this category (``splat programs`` lists them)."""


def _check(value: float, ok: bool, field: str, what: str) -> None:
    if not ok:
        raise SplatError(f"{what}, got {value}", field=field)


def parse(argv: list[str]) -> SearchConfig:
    """The command line as a validated :class:`SearchConfig`."""
    args = tyro.cli(SearchConfig, args=argv, prog="splat search", description=__doc__.split("\n\n")[0])
    if (args.scene is None) == (args.points is None):
        raise SplatError("give exactly one of --scene or --points", field="--scene")
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
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(list(sys.argv[1:] if argv is None else argv))

    from splat.data import fuse_depth, load_scene, read_ply_points
    from splat.workspace import scene_dir
    from splat.io import write_json_atomic
    from splat.program import load_program
    from splat.search.ga import PlacementSettings, SearchSettings, search

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # this process is the CLI; the library never sets it
    if args.category and args.program != "auto":
        raise SplatError("only applies with --program auto", field="--category")
    auto = args.program == "auto"
    if auto:
        from splat.search.choose import library_programs

        candidates = library_programs(args.category or None)
    else:
        program = load_program(args.program)
    views = None
    if args.points is not None:
        points, scan_file = read_ply_points(args.points), str(args.points)
    else:
        scene = load_scene(scene_dir(args.scene, field="--scene"))
        if scene.scan_path is not None:
            points, scan_file = read_ply_points(scene.scan_path), str(scene.scan_path)
        else:
            points, scan_file = fuse_depth(scene, voxel_size=args.voxel), str(scene.root)
            if args.views:
                from splat.search.views import ScanViews

                views = ScanViews.from_scene(scene, list(range(len(scene))))
    base = SearchSettings()
    settings = replace(
        base,
        seed=args.seed,
        population=args.population,
        generations=args.generations,
        elites=min(base.elites, args.population - 1),
        progress=args.progress,
        chamfer=replace(base.chamfer, trim=args.trim),
        polish_rounds=base.polish_rounds if args.polish_rounds is None else args.polish_rounds,
        final_refine=base.final_refine if args.final_steps is None else replace(base.final_refine,
                                                                                steps=args.final_steps),
        placement=PlacementSettings(yaw_range=math.radians(args.yaw_range),
                                    log_scale_range=math.log1p(args.scale_range)),
    )
    if auto:
        from splat.search.choose import choose_program

        choice = choose_program(candidates, points, settings, scan_file=scan_file, views=views,
                                log=print if args.progress else None)
        result = choice.result
        print(choice.summary())
        write_json_atomic(args.out, {**result.to_dict(), "choice": {k: v for k, v in choice.as_dict().items()
                                                                     if k != "result"}})
    else:
        result = search(program, points, settings, scan_file=scan_file, views=views)
        write_json_atomic(args.out, result.to_dict())
    print(f"fitness {result.fitness:.5g} after {len(result.history)} generations "
          f"({result.evaluations} genomes scored); wrote {args.out}")

