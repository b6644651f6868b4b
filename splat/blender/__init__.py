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

Shutdown: Blender runs its own exit (free the file's data, stop its audio thread, remove its temporary
folder) when the ``bpy`` module is freed as the interpreter shuts down. Python objects that Blender keeps
on its C side keep that module alive: the driver namespace (it holds ``bpy`` itself and is created the
first time a file's Python-expression driver is evaluated, even when auto-run refuses to run it),
handler lists, timers. Blender's exit then never runs and the process blocks for ever in a C++ static
destructor (its audio thread's condition variable) after our work is done. :func:`require_bpy` therefore
registers :func:`release_session` to run at exit, and a watchdog that ends a shutdown still running
:data:`EXIT_GRACE_S` seconds after the interpreter started tearing down its modules (SIGALRM).
"""

from __future__ import annotations

import atexit
import importlib
import os
import signal
import sys

from splat.errors import SplatError

BLENDER_EXTRA_HINT = "needs the `blender` extra: pip install -e '.[blender]'"
EXIT_GRACE_S = 10
"""Seconds Blender's shutdown may take once the interpreter tears down its modules (normally < 1 s)."""


def require_bpy():
    """Return the ``bpy`` module, or raise :class:`SplatError` when the `blender` extra is missing.

    The first call arms the shutdown guard (:func:`release_session` at exit, and the watchdog).
    """
    try:
        bpy = importlib.import_module("bpy")
    except ImportError:
        raise SplatError(BLENDER_EXTRA_HINT) from None
    _guard_shutdown()
    return bpy


class _ExitWatchdog:
    """Ends the process with SIGALRM when its shutdown outlives ``grace`` seconds.

    Kept in this module's namespace, it is deleted when the interpreter clears its modules, after every
    atexit callback (slow ones of other libraries included); only then is the alarm armed. Deleted at
    any other time (a reload) it does nothing.
    """

    def __init__(self, grace: int):
        self._grace = grace
        self._alarm = getattr(signal, "alarm", None)  # POSIX only
        self._finalizing = sys.is_finalizing

    def __del__(self):
        if self._alarm is not None and self._finalizing():
            self._alarm(self._grace)


_exit_watchdog: _ExitWatchdog | None = None


def _guard_shutdown() -> None:
    global _exit_watchdog
    if _exit_watchdog is None:
        atexit.register(release_session)
        _exit_watchdog = _ExitWatchdog(EXIT_GRACE_S)


def release_session() -> None:
    """Drop what Blender's C side holds of Python, so that ``bpy`` can be freed and Blender can exit.

    Clears the driver namespace (it holds ``bpy``) and removes from the handler lists every function
    that is not Blender's own (Blender's add-ons remove theirs during its exit and fail if they are
    gone). Registered at exit by :func:`require_bpy`; callable at any time (it replaces the session:
    earlier bpy objects are stale). Timers registered with ``bpy.app.timers`` cannot be listed, so they
    cannot be dropped here: the watchdog bounds that case.
    """
    bpy = sys.modules.get("bpy")
    if bpy is None:
        return
    new_session()
    try:
        bpy.app.driver_namespace.clear()
        blender_scripts = os.path.join(bpy.utils.system_resource("SCRIPTS"), "")
        for name in dir(bpy.app.handlers):
            handlers = getattr(bpy.app.handlers, name)
            if isinstance(handlers, list):
                handlers[:] = [f for f in handlers if _source_file(f).startswith(blender_scripts)]
    except Exception as err:  # at exit nothing may stop the others; say what happened
        print(f"warning: could not release the Blender session: {err}", file=sys.stderr)


def _source_file(fn) -> str:
    code = getattr(fn, "__code__", None)
    return os.path.abspath(code.co_filename) if code is not None else ""


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


__all__ = ["BLENDER_EXTRA_HINT", "EXIT_GRACE_S", "current_session", "new_session", "release_session",
           "require_bpy"]
