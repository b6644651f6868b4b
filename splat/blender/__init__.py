"""Blender bridge (optional, needs the `blender` extra: ``pip install -e '.[blender]'``).

- :mod:`splat.blender.importer` — a .blend whose object carries a geometry-nodes modifier -> our graph
  JSON (docs/graph_format.md) + a parameter-space skeleton.
- :mod:`splat.blender.exporter` — our graph JSON + parameter values -> a .blend whose object carries a
  live geometry-nodes modifier with those values.
- :mod:`splat.blender.evaluate` — Blender itself evaluates a program (the reference our evaluator is
  tested against): open once, evaluate many parameter sets.
- ``splat blender import|export ...`` (splat/commands/blender.py) — the command line over the two.

Importing this package (and ``import splat``) never needs bpy: bpy is imported lazily by
:func:`require_bpy`, which raises :class:`~splat.errors.SplatError` when it is missing.

Convention: bpy holds one global Blender session. Every function here that opens or builds a .blend
*replaces* that session's data (``wm.open_mainfile`` / ``wm.read_factory_settings``); callers that keep
bpy objects around must not interleave calls. Geometry is read in the object's local space (Blender's
world axes: right-handed, +Z up, metres).
"""

from __future__ import annotations

import importlib

from splat.errors import SplatError

BLENDER_EXTRA_HINT = "needs the `blender` extra: pip install -e '.[blender]'"


def require_bpy():
    """Return the ``bpy`` module, or raise :class:`SplatError` when the `blender` extra is missing."""
    try:
        return importlib.import_module("bpy")
    except ImportError:
        raise SplatError(BLENDER_EXTRA_HINT) from None


_session_counter = 0


def new_session() -> int:
    """Mark that the bpy session's data was replaced; return the new session's number.

    Objects from an earlier session are dangling (touching them can crash the interpreter), so holders
    such as :class:`splat.blender.evaluate.BlenderProgram` check :func:`current_session` first.
    """
    global _session_counter
    _session_counter += 1
    return _session_counter


def current_session() -> int:
    return _session_counter


__all__ = ["BLENDER_EXTRA_HINT", "current_session", "new_session", "require_bpy"]
