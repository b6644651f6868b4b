"""Parameter edits from the command line: ``--set "Seat Height=0.62"`` and parameter sweeps.

Convention: parameters are a program's :class:`splat.params.ParamSpace` entries (float / int / bool,
inclusive ranges). Values given as text are parsed by the parameter's type: floats as decimal numbers;
ints as integers (or, for enum-like ints with ``labels``, a label name); bools as
``true/false/1/0/yes/no/on/off``. Every mistake is a :class:`SplatError` with ``field="--set"`` whose
message lists the valid names or the valid range.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from splat.errors import SplatError

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def describe_param(p: Any) -> str:
    """One line: ``Seat Height (float in [0.3, 0.9])``, ``Legs Type (int in [0, 2]: 0=a, 1=b)``."""
    if p.type == "bool":
        return f"{p.name!r} (bool)"
    labels = getattr(p, "labels", None)
    extra = ""
    if labels:
        extra = ": " + ", ".join(f"{int(p.low) + i}={lab}" for i, lab in enumerate(labels))
    return f"{p.name!r} ({p.type} in [{_fmt(p.low)}, {_fmt(p.high)}]{extra})"


def _fmt(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def valid_names(space: Any) -> str:
    return "; ".join(describe_param(p) for p in space.params)


def find_param(space: Any, name: str, *, field: str = "--set") -> Any:
    """The parameter called ``name`` (exact, else case-insensitive unique match); SplatError listing
    the valid parameters otherwise."""
    by_name = {p.name: p for p in space.params}
    if name in by_name:
        return by_name[name]
    folded = [p for p in space.params if p.name.casefold() == name.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise SplatError(f"unknown parameter {name!r}; valid parameters: {valid_names(space)}", field=field)


def parse_value(p: Any, text: str, *, field: str = "--set") -> Any:
    """Parse ``text`` as a value of parameter ``p`` and check its range (inclusive)."""
    raw = text.strip()
    if p.type == "bool":
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise SplatError(f"{p.name!r} is a bool; got {text!r}, expected one of true/false/1/0", field=field)
    if p.type == "int":
        labels = getattr(p, "labels", None)
        value: Any = None
        if labels and raw in labels:
            value = int(p.low) + list(labels).index(raw)
        else:
            try:
                f = float(raw)
            except ValueError:
                f = math.nan
            if not math.isfinite(f) or f != int(f):
                hint = f" or one of {list(labels)}" if labels else ""
                raise SplatError(f"{p.name!r} is an int; got {text!r}, expected an integer in "
                                 f"[{p.low}, {p.high}]{hint}", field=field)
            value = int(f)
    else:
        try:
            value = float(raw)
        except ValueError:
            raise SplatError(f"{p.name!r} is a float; got {text!r}, expected a number in "
                             f"[{_fmt(p.low)}, {_fmt(p.high)}]", field=field) from None
        if not math.isfinite(value):
            raise SplatError(f"{p.name!r} must be finite, got {text!r}", field=field)
    if not (p.low <= value <= p.high):
        raise SplatError(f"{p.name!r} = {text.strip()} is out of range; valid range is "
                         f"[{_fmt(p.low)}, {_fmt(p.high)}] ({p.type})", field=field)
    return value


def parse_sets(items: Sequence[str], space: Any) -> dict[str, Any]:
    """``["Seat Height=0.62", "Legs Type=1"]`` -> ``{"Seat Height": 0.62, "Legs Type": 1}``.

    The name is everything before the last ``=`` (names may contain spaces); a name given twice keeps
    the last value.
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SplatError(f"expected NAME=VALUE, got {item!r}; valid parameters: {valid_names(space)}",
                             field="--set")
        name, text = item.rsplit("=", 1)
        p = find_param(space, name.strip())
        out[p.name] = parse_value(p, text)
    return out


def inactive_edits(space: Any, assignment: Mapping[str, Any], edits: Mapping[str, Any]) -> list[str]:
    """Names in ``edits`` that are inactive under ``assignment`` (editing them changes nothing)."""
    active = space.active(dict(assignment))
    return [n for n in edits if not active.get(n, True)]


def sweep_values(p: Any, n_frames: int) -> list[Any]:
    """Values of parameter ``p`` for an ``n_frames`` sweep across its whole range, there and back.

    Floats go low -> high -> low (a ping-pong that loops smoothly); ints and bools hold each value for
    an equal share of the frames, low to high.
    """
    if n_frames < 2:
        raise SplatError(f"a sweep needs at least 2 frames, got {n_frames}", field="sweep_frames")
    if p.type == "float":
        vals = []
        for i in range(n_frames):
            t = i / (n_frames - 1)
            t = 1.0 - abs(2.0 * t - 1.0)  # 0 -> 1 -> 0
            vals.append(float(p.low + (p.high - p.low) * t))
        return vals
    choices = [False, True] if p.type == "bool" else list(range(int(p.low), int(p.high) + 1))
    return [choices[min(len(choices) - 1, i * len(choices) // n_frames)] for i in range(n_frames)]
