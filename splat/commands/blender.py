"""Command line: import a .blend program, or export a program to a .blend.

    python -m splat.blender import chair.blend --out programs/chair_blend [--object Cube]
        writes programs/chair_blend/graph.json (docs/graph_format.md) and params.json (a parameter
        space skeleton in the sp_*.json layout: names, types, interface min/max, modifier values as
        defaults; tighten the ranges and add dependencies by hand).
    python -m splat.blender export programs/chair --out chair.blend [--params values.json]
        writes a .blend whose object carries a live geometry-nodes modifier set to the values
        (default: the program's defaults). The program is anything ShapeProgram.load accepts; a bare
        graph JSON works too.

User errors print one line and exit 2 (splat.cli.run_cli).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from splat.cli import run_cli
from splat.errors import SplatError
from splat.io import read_json, write_json_atomic


def _cmd_import(args) -> None:
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


def _cmd_export(args) -> None:
    from splat.blender.exporter import export_blend

    graph, space = _load_program(Path(args.program))
    values = space.defaults()
    if args.params is not None:
        given = read_json(Path(args.params))
        if not isinstance(given, dict):
            raise SplatError("must be a JSON object of parameter values", file=args.params)
        values = space.validate(given, file=args.params)
    export_blend(graph, values, args.out, file=args.program)
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m splat.blender", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_imp = sub.add_parser("import", help=".blend -> graph.json + params.json")
    p_imp.add_argument("blend", help="a .blend with a geometry-nodes modifier")
    p_imp.add_argument("--out", required=True, help="output folder (created)")
    p_imp.add_argument("--object", default=None, help="the object to read, when several carry a modifier")
    p_exp = sub.add_parser("export", help="program -> .blend with a live modifier")
    p_exp.add_argument("program", help="program folder, single-file program JSON, or bare graph JSON")
    p_exp.add_argument("--out", required=True, help="the .blend to write")
    p_exp.add_argument("--params", default=None, help="JSON object of parameter values")
    args = parser.parse_args(argv)
    {"import": _cmd_import, "export": _cmd_export}[args.command](args)


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
