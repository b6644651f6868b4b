"""``splat blender import|export``: import a .blend program, or export a program to a .blend.

    splat blender import chair.blend --out programs/chair_blend [--object Cube]
        writes programs/chair_blend/graph.json (docs/graph_format.md) and params.json (a parameter
        space skeleton in the sp_*.json layout: names, types, interface min/max, modifier values as
        defaults; tighten the ranges and add dependencies by hand).
    splat blender export programs/chair --out chair.blend [--params values.json]
        writes a .blend whose object carries a live geometry-nodes modifier set to the values
        (default: the program's defaults). The program is anything ShapeProgram.load accepts; a bare
        graph JSON works too.

Both need the ``blender`` extra (bpy). User errors print one line and exit 2 (splat.cli.run_cli).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional, Union

import tyro

from splat.errors import SplatError
from splat.io import read_json, write_json_atomic


@dataclass(frozen=True)
class ImportConfig:
    """.blend -> graph.json + params.json (``splat blender import X.blend --out DIR``)."""

    blend: tyro.conf.Positional[Annotated[Path, tyro.conf.arg(metavar="BLEND")]]
    """A .blend with a geometry-nodes modifier."""
    out: Path
    """Output folder (created)."""
    object: Optional[str] = None
    """The object to read, when several carry a modifier."""


@dataclass(frozen=True)
class ExportConfig:
    """Program -> .blend with a live geometry-nodes modifier (``splat blender export PROGRAM --out X.blend``)."""

    program: tyro.conf.Positional[Annotated[Path, tyro.conf.arg(metavar="PROGRAM")]]
    """Program folder, single-file program JSON, or bare graph JSON."""
    out: Path
    """The .blend to write."""
    params: Optional[Path] = None
    """JSON object of parameter values (default: the program's defaults)."""


BlenderCommand = Union[
    Annotated[ImportConfig, tyro.conf.subcommand(name="import")],
    Annotated[ExportConfig, tyro.conf.subcommand(name="export")],
]
"""``splat blender import ...`` or ``splat blender export ...``."""


def _cmd_import(args: ImportConfig) -> None:
    from splat.blender.importer import import_blend

    result = import_blend(args.blend, object_name=args.object)
    out = Path(args.out)
    write_json_atomic(out / "graph.json", result.graph)
    write_json_atomic(out / "params.json", result.param_spec)
    print(f"wrote {out / 'graph.json'} and {out / 'params.json'} (object {result.object_name!r})")


def _load_program(path: Path):
    """(graph dict, ParamSpace) of a program path (folder, single-file program, or bare graph)."""
    from splat.program import ShapeProgram

    program = ShapeProgram.load(path)
    return program.graph.to_dict(), program.space


def _cmd_export(args: ExportConfig) -> None:
    from splat.blender.exporter import export_blend

    graph, space = _load_program(args.program)
    values = space.defaults()
    if args.params is not None:
        given = read_json(args.params)
        if not isinstance(given, dict):
            raise SplatError("must be a JSON object of parameter values", file=args.params)
        values = space.validate(given, file=args.params)
    export_blend(graph, values, args.out, file=args.program)
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = tyro.cli(BlenderCommand, args=argv, prog="splat blender", description=__doc__.split("\n\n")[0])
    if isinstance(args, ImportConfig):
        _cmd_import(args)
    else:
        _cmd_export(args)
