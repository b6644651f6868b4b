"""``splat programs``: the program library, its parameter catalogues, and random variants of a program.

    splat programs [--category storage] [--json]          every library program and its parameters
    splat programs sample NAME -n 8 --out DIR [--seed 0]   random variants: program JSON + params + GLB + preview

The table lists, per program, its category and description, then each parameter: name, type, range,
default, group, labels (enums) and requires (the conditions under which it is active). ``--json``
prints the same as one JSON document (``splat.library/1``). ``sample`` writes ``DIR/<name>_<i>/``
with ``program.json`` (the single-file program), ``params.json`` (``{name: value}``: what
``splat make-scene --params`` and ``splat blender export --params`` read; inactive parameters at their
defaults), ``model.glb`` and ``preview.png``, and ``DIR/samples.json`` (the list).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import tyro

from splat.errors import SplatError


@dataclass(frozen=True)
class ListConfig:
    """List the library's programs and their parameter catalogues (``splat programs [--json]``)."""

    category: Optional[str] = None
    """Only programs of this category (seating, table, storage, bed)."""
    json: bool = False
    """Print JSON (``splat.library/1``) instead of a table."""


@dataclass(frozen=True)
class SampleConfig:
    """Write random variants of a library program (``splat programs sample NAME -n 8 --out DIR``)."""

    name: tyro.conf.Positional[Annotated[str, tyro.conf.arg(metavar="NAME")]]
    """A library program (``splat programs`` lists them)."""
    out: Path
    """Output folder (created; variants go to ``<out>/<name>_<i>/``)."""
    n: Annotated[int, tyro.conf.arg(aliases=("-n",))] = 8
    """Number of variants (1..1000)."""
    seed: int = 0
    """Seed of the random parameters."""
    formats: tuple[Literal["json", "glb", "png"], ...] = ("json", "glb", "png")
    """What to write per variant: json (program.json + params.json), glb (model.glb), png (preview.png)."""
    size: int = 256
    """Preview image size in pixels (16..2048)."""


def _range(p) -> str:
    if p.type == "bool":
        return "false|true"
    if p.type == "int":
        return f"{int(p.low)}..{int(p.high)}"
    return f"{float(p.low):g}..{float(p.high):g}"


def _requires(p) -> list[Any]:
    return [c.name if c.value is True else [c.name, c.value] for c in p.requires]


def catalogue(category: str | None = None) -> dict[str, Any]:
    """The library as one JSON-able document (``splat.library/1``)."""
    from splat.library import library

    programs = []
    for e in library(category):
        space = e.load().space
        params = []
        for p in space.params:
            row: dict[str, Any] = {"name": p.name, "type": p.type, "default": p.default}
            if p.type != "bool":
                row["range"] = [p.low, p.high]
            if p.group:
                row["group"] = p.group
            if p.labels:
                row["labels"] = list(p.labels)
            if p.requires:
                row["requires"] = _requires(p)
            params.append(row)
        programs.append({"name": e.name, "category": e.category, "description": e.description,
                         "continuous": len(space.continuous), "discrete": len(space.discrete), "params": params})
    return {"format": "splat.library/1", "programs": programs}


def format_table(doc: dict[str, Any]) -> str:
    """The catalogue as a plain-text table per program."""
    out: list[str] = []
    for prog in doc["programs"]:
        out.append(f"{prog['name']} ({prog['category']}): {prog['description']}")
        out.append(f"  {prog['continuous']} continuous, {prog['discrete']} discrete parameters")
        rows = [("name", "type", "range", "default", "group", "labels", "requires")]
        for p in prog["params"]:
            rng = "false|true" if p["type"] == "bool" else (
                f"{p['range'][0]}..{p['range'][1]}" if p["type"] == "int" else f"{p['range'][0]:g}..{p['range'][1]:g}")
            req = ", ".join(r if isinstance(r, str) else f"{r[0]}={json.dumps(r[1])}" for r in p.get("requires", []))
            default = json.dumps(p["default"]) if p["type"] != "float" else f"{p['default']:g}"
            rows.append((p["name"], p["type"], rng, default, p.get("group", ""), "/".join(p.get("labels", [])), req))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            out.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def sample_variants(cfg: SampleConfig) -> list[Path]:
    """Write ``cfg.n`` random variants of ``cfg.name`` (see the module docstring); returns their folders."""
    import torch

    from splat.export.glb import write_glb
    from splat.io import write_json_atomic
    from splat.library import entry
    from splat.preview import preview_image
    from splat.render.images import write_png

    if not 1 <= cfg.n <= 1000:
        raise SplatError(f"must lie in [1, 1000], got {cfg.n}", field="-n")
    if not 16 <= cfg.size <= 2048:
        raise SplatError(f"must lie in [16, 2048], got {cfg.size}", field="--size")
    if not cfg.formats:
        raise SplatError("give at least one of json, glb, png", field="--formats")
    program = entry(cfg.name).load()
    space = program.space
    batch = space.sample(cfg.n, torch.Generator().manual_seed(cfg.seed), dtype=torch.float64)
    defaults = space.defaults()
    variants = []
    for b, values in enumerate(space.unbatch(batch)):
        active = space.active(values)
        variants.append({k: (v if active[k] else defaults[k]) for k, v in values.items()})
    cfg.out.mkdir(parents=True, exist_ok=True)
    folders, rows = [], []
    for i, values in enumerate(variants):
        values = {k: (float(v) if space[k].type == "float" else v) for k, v in space.validate(values).items()}
        folder = cfg.out / f"{cfg.name}_{i:02d}"
        folder.mkdir(exist_ok=True)
        geometry = program.evaluate(values, dtype=torch.float64)
        if "json" in cfg.formats:
            program.save(folder / "program.json")
            write_json_atomic(folder / "params.json", values)
        if "glb" in cfg.formats:
            write_glb(folder / "model.glb", geometry)
        if "png" in cfg.formats:
            write_png(folder / "preview.png", preview_image(geometry, size=cfg.size, seed=cfg.seed + i))
        folders.append(folder)
        rows.append({"folder": folder.name, "params": values})
    write_json_atomic(cfg.out / "samples.json", {"format": "splat.samples/1", "program": cfg.name, "seed": cfg.seed,
                                                 "formats": list(cfg.formats), "variants": rows})
    return folders


def main(argv: list[str] | None = None) -> Any:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sample":
        cfg = tyro.cli(SampleConfig, args=argv[1:], prog="splat programs sample",
                       description=SampleConfig.__doc__)
        folders = sample_variants(cfg)
        print(f"wrote {len(folders)} variants of {cfg.name} to {cfg.out}")
        return folders
    if argv and argv[0] == "list":
        argv = argv[1:]
    args = tyro.cli(ListConfig, args=argv, prog="splat programs", description=__doc__.split("\n\n")[0])
    doc = catalogue(args.category)
    print(json.dumps(doc, indent=1) if args.json else format_table(doc), end="" if not args.json else "\n")
    return doc
