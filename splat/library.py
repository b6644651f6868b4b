"""The program library as a catalogue: which programs there are, their categories and descriptions.

Each library program is a folder ``splat/programs/<name>/`` with ``graph.json`` and ``params.json``
(package data, written by ``splat/programs/build_programs.py``). ``params.json`` carries, besides the
``splat.params/1`` parameter list, a ``category`` (``seating``, ``table``, ``storage``, ``bed``) and a
one-line ``description``; :class:`splat.params.ParamSpace` ignores both. ``splat programs`` lists the
catalogue, and ``--program auto --category NAME`` (:mod:`splat.search.choose`) narrows the automatic
choice of a program to one category.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from splat.errors import SplatError
from splat.io import read_json
from splat.program import PROGRAMS_DIR, ShapeProgram, available_programs

AUTO = "auto"
"""The ``--program`` value that chooses the program from the library (:mod:`splat.search.choose`)."""


@dataclass(frozen=True)
class LibraryEntry:
    """One library program: its name (folder), category, description and folder; ``facade``: the
    parameters that lay out its front (-Y) face, which the photos choose (:mod:`splat.train.facade`)."""

    name: str
    category: str
    description: str
    path: Path
    facade: tuple[str, ...] = ()

    def load(self) -> ShapeProgram:
        return ShapeProgram.load(self.path)


def _entry(name: str) -> LibraryEntry:
    path = PROGRAMS_DIR / name
    meta = read_json(path / "params.json")
    category = meta.get("category", name) if isinstance(meta, dict) else name
    description = meta.get("description", "") if isinstance(meta, dict) else ""
    if not isinstance(category, str) or not category:
        raise SplatError(f"expected a non-empty string, got {category!r}", file=path / "params.json", field="category")
    facade = meta.get("facade", []) if isinstance(meta, dict) else []
    names = {p.get("name") for p in meta.get("params", []) if isinstance(p, dict)} if isinstance(meta, dict) else set()
    if not isinstance(facade, list) or not all(isinstance(n, str) and n in names for n in facade):
        raise SplatError(f"expected a list of the program's parameter names, got {facade!r}",
                         file=path / "params.json", field="facade")
    return LibraryEntry(name, category, str(description), path, tuple(facade))


def categories() -> tuple[str, ...]:
    """The library's categories, sorted."""
    return tuple(sorted({_entry(n).category for n in available_programs()}))


def library(category: str | None = None, *, field: str = "--category") -> tuple[LibraryEntry, ...]:
    """The library programs (sorted by name), only those of ``category`` when given.

    Raises:
        SplatError: ``category`` is not one of the library's (naming ``field`` and the known ones).
    """
    entries = tuple(_entry(n) for n in available_programs())
    if not category:
        return entries
    chosen = tuple(e for e in entries if e.category == category)
    if not chosen:
        known = ", ".join(sorted({e.category for e in entries}))
        raise SplatError(f"unknown program category {category!r} (categories: {known})", field=field)
    return chosen


def facade_params(name: str) -> tuple[str, ...]:
    """The parameters that lay out library program ``name``'s front (``()`` for a program outside the
    library or without a ``facade`` declaration)."""
    return _entry(name).facade if name in available_programs() else ()


def entry(name: str, *, field: str = "NAME") -> LibraryEntry:
    """The library entry of program ``name`` (SplatError naming ``field`` and the programs otherwise)."""
    if name not in available_programs():
        raise SplatError(f"no library program {name!r} (programs: {', '.join(available_programs())})", field=field)
    return _entry(name)
