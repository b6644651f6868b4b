"""``splat export RUN``: write a run's editable assets, optionally with edited parameters.

Writes into ``--out`` (default: ``<run>/assets`` for the fitted parameters, ``<run>/edited`` when
``--set`` edits them), each file atomically and each loadable back:

- ``program.json`` + ``params.json`` (+ ``gaussians.pt``): the program graph, its ParamSpace and the
  values; :func:`splat.export.asset.load_asset` reads the folder back without bpy, so an edited export
  is itself an editable asset;
- ``splats.ply``: world Gaussians in the Inria 3DGS layout (SuperSplat and other viewers read it);
- ``mesh.glb``: the program's geometry, instanced (one mesh per canonical primitive, a node per copy),
  coloured per primitive from the Gaussians;
- ``object.blend`` (needs the ``blender`` extra): the program as a live geometry-nodes modifier with the
  values set, via :mod:`splat.blender.exporter`. The object sits in the program's own frame (the
  run's placement is in params.json).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import tyro

from splat.errors import SplatError

Format = Literal["assets", "ply", "glb", "blend"]


@dataclass(frozen=True)
class ExportConfig:
    """``splat export RUN``: export editable assets of a trained run."""

    run: tyro.conf.Positional[Path]
    """Run folder (outputs/<scene>/<run>) or its assets/ folder."""
    out: Optional[Path] = None
    """Output folder. Default: <run>/assets (no edits) or <run>/edited (with --set)."""
    set: tyro.conf.UseAppendAction[tuple[str, ...]] = ()
    """Edit a parameter first, NAME=VALUE (repeat for several)."""
    formats: tuple[Format, ...] = ("assets", "ply", "glb", "blend")
    """What to write: assets (program.json, params.json, gaussians.pt), ply (splats.ply), glb (mesh.glb),
    blend (object.blend; skipped with a note when bpy is missing unless it is the only format asked)."""


@dataclass(frozen=True)
class ExportResult:
    """Paths :func:`export` wrote."""

    out: Path
    files: tuple[Path, ...]


def export(cfg: ExportConfig) -> ExportResult:
    """Do what ``splat export`` does (see the module docstring)."""
    from splat.export.asset import GAUSSIANS_FILE, PARAMS_FILE, PROGRAM_FILE, SPLATS_FILE, write_assets
    from splat.export.glb import part_colors, write_glb
    from splat.export.ply import write_splats_ply
    from splat.params import parse_sets
    from splat.workspace import load_run

    if not cfg.formats:
        raise SplatError("give at least one format", field="--formats")
    asset = load_run(cfg.run)
    edits = parse_sets(cfg.set, asset.program.space)
    if edits:
        asset = asset.with_params(edits)
    root = asset.root or Path(cfg.run)
    out = cfg.out or (root / "edited" if edits else (root / "assets" if (root / "assets").is_dir() else root))
    files: list[Path] = []
    if "assets" in cfg.formats:
        write_assets(out, asset.program, asset.params, asset.gaussians, asset.placement)
        files += [out / PROGRAM_FILE, out / PARAMS_FILE, out / GAUSSIANS_FILE, out / SPLATS_FILE]
    elif "ply" in cfg.formats:
        write_splats_ply(out / SPLATS_FILE, asset.splat_cloud())
        files.append(out / SPLATS_FILE)
    if "glb" in cfg.formats:
        geo = asset.geometry()
        files.append(write_glb(out / "mesh.glb", geo, part_colors(geo, asset.gaussians.pushforward(geo, 0))).path)
    if "blend" in cfg.formats:
        if importlib.util.find_spec("bpy") is None:
            if cfg.formats == ("blend",):
                from splat.blender import BLENDER_EXTRA_HINT

                raise SplatError(f"object.blend {BLENDER_EXTRA_HINT}", field="--formats")
            print("note: bpy is not installed, object.blend skipped (pip install -e '.[blender]')")
        else:
            files.append(write_blend(out / "object.blend", asset))
    for f in files:
        print(f"wrote {f}")
    return ExportResult(out, tuple(files))


def write_blend(path: Path, asset) -> Path:
    """``object.blend``: the program with ``asset.params`` as live modifier inputs; the object carries the
    run's placement as its world matrix, so it sits where the scan put it (the modifier works in the
    program's own frame, as the evaluator does)."""
    from splat.blender.exporter import export_blend

    return export_blend(asset.program.graph.to_dict(), dict(asset.params), path, object_name=asset.program.name,
                        matrix_world=asset.placement)


def main(argv: Optional[list[str]] = None) -> ExportResult:
    cfg = tyro.cli(ExportConfig, args=argv, prog="splat export", description=__doc__.split("\n\n")[0])
    return export(cfg)
