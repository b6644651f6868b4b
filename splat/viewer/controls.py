"""One GUI control per program parameter: what kind, which range, which hint (no GUI toolkit here).

Convention: a float parameter is a slider over its inclusive range; an int with ``labels`` (an enum) a
dropdown of its labels; a plain int an integer slider; a bool a checkbox. Controls keep the ParamSpace's
order and are grouped by its ``group`` (parameters without one go to :data:`DEFAULT_GROUP`). A control's
*UI value* is what the widget holds (a label for a dropdown); :func:`param_value` turns it back into a
parameter value, clamped into the range, so a value outside the range can never reach the program.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from splat.errors import SplatError

DEFAULT_GROUP = "Parameters"
"""The folder of parameters whose ParamSpace entry has no group."""

MAX_CHECKED_VALUES = 32
"""Int parameters with more values than this are not checked value by value for untrained primitives."""

ControlKind = Literal["slider", "int_slider", "dropdown", "checkbox"]


@dataclass(frozen=True)
class ParamControl:
    """The GUI control of one parameter.

    Attributes:
        name: the parameter's name (also the control's label).
        kind: "slider" (float), "int_slider" (int without labels), "dropdown" (int with labels),
            "checkbox" (bool).
        group: the folder it goes into.
        low, high: the inclusive range (False/True for a checkbox).
        step: the slider step (floats: about 1/1000 of the range, a power of ten; ints: 1).
        options: the dropdown's entries, one per value ``low .. high``; empty for other kinds.
        hint: the tooltip: range, fitted value, and whether the edit stays on trained Gaussians.
    """

    name: str
    kind: ControlKind
    group: str
    low: float | int | bool
    high: float | int | bool
    step: float | int
    options: tuple[str, ...] = ()
    hint: str = ""


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def slider_step(low: float, high: float) -> float:
    """A power of ten near 1/1000 of the range (1e-3 for an empty range)."""
    span = float(high) - float(low)
    if not span > 0:
        return 1e-3
    return 10.0 ** math.floor(math.log10(span / 1000.0))


def _options(p: Any) -> tuple[str, ...]:
    labels = tuple(str(s) for s in (p.labels or ()))
    n = int(p.high) - int(p.low) + 1
    if len(labels) != n:
        return ()
    if len(set(labels)) != n:  # duplicate labels: make every entry unique
        labels = tuple(f"{int(p.low) + i}: {s}" for i, s in enumerate(labels))
    return labels


def _value_text(p: Any, value: Any, options: Sequence[str]) -> str:
    if p.type == "bool":
        return "on" if value else "off"
    if p.type == "int":
        return options[int(value) - int(p.low)] if options else str(int(value))
    return _fmt(float(value))


def _condition_text(c: Any, space: Any | None) -> str:
    if c.value is True:
        return c.name
    if c.value is False:
        return f"{c.name} off"
    q = space[c.name] if space is not None and c.name in space else None
    options = _options(q) if q is not None and q.type == "int" else ()
    return f"{c.name} = {options[int(c.value) - int(q.low)] if options else c.value}"


def control_for(p: Any, fitted: Any, untrained: Sequence[Any] | None = (), *, space: Any | None = None) -> ParamControl:
    """The control of parameter ``p`` (a :class:`splat.params.Param`) with its fitted value.

    ``untrained`` lists the values whose edit (alone, from the fitted values) brings in primitives the run
    trained no Gaussians for; None when the parameter has too many values to check. Both go into the
    hint: such an edit is not live-fitted (new Gaussians are placed in the neighbours' colour). With
    ``space`` (the ParamSpace) the hint names the labels of enum conditions ("Needs Legs Type = square").
    """
    group = p.group or DEFAULT_GROUP
    if p.type == "float":
        kind: ControlKind = "slider"
        options: tuple[str, ...] = ()
        step: float | int = slider_step(p.low, p.high)
        hint = f"{_fmt(p.low)} to {_fmt(p.high)}; fitted {_fmt(float(fitted))}."
    elif p.type == "bool":
        kind, options, step = "checkbox", (), 1
        hint = f"Fitted: {_value_text(p, fitted, ())}."
    else:
        options = _options(p)
        kind, step = ("dropdown" if options else "int_slider"), 1
        hint = f"{int(p.low)} to {int(p.high)}; fitted {_value_text(p, fitted, options)}." if not options else (
            f"Fitted: {_value_text(p, fitted, options)}.")
    if p.requires:
        hint += f" Needs {', '.join(_condition_text(c, space) for c in p.requires)}."
    if untrained is None:
        hint += (" Not live-fitted: its values can change the primitives' topology; primitives the run "
                 "trained no Gaussians for get new ones in their neighbours' colour (a slower update).")
    elif untrained:
        vals = ", ".join(_value_text(p, v, options) for v in untrained)
        hint += (f" Not live-fitted at {vals}: that brings in primitives the run trained no Gaussians "
                 "for; they get new ones in their neighbours' colour (the first switch is slower).")
    elif p.type != "float":
        hint += " Live: every value stays on trained Gaussians."
    return ParamControl(p.name, kind, group, p.low, p.high, step, options, hint)


def controls_for(space: Any, fitted: Mapping[str, Any],
                 untrained: Mapping[str, Sequence[Any] | None] | None = None) -> tuple[ParamControl, ...]:
    """One control per parameter of ``space``, in its order (see :func:`control_for`)."""
    untrained = untrained or {}
    return tuple(control_for(p, fitted[p.name], untrained.get(p.name, ()), space=space) for p in space.params)


def groups(controls: Sequence[ParamControl]) -> dict[str, list[ParamControl]]:
    """Controls by group, groups in order of first appearance."""
    out: dict[str, list[ParamControl]] = {}
    for c in controls:
        out.setdefault(c.group, []).append(c)
    return out


def ui_value(c: ParamControl, value: Any) -> Any:
    """What the widget of ``c`` shows for parameter value ``value``."""
    if c.kind == "dropdown":
        return c.options[int(value) - int(c.low)]
    if c.kind == "checkbox":
        return bool(value)
    if c.kind == "int_slider":
        return int(value)
    return float(value)


def param_value(c: ParamControl, ui: Any) -> tuple[Any, bool]:
    """The parameter value of a widget value, clamped into the range -> (value, was_clamped).

    SplatError (naming the parameter) for a dropdown entry that is not one of its options or a value
    that is not a number.
    """
    if c.kind == "dropdown":
        if ui not in c.options:
            raise SplatError(f"{ui!r} is not one of {list(c.options)}", field=c.name)
        return int(c.low) + c.options.index(ui), False
    if c.kind == "checkbox":
        return bool(ui), False
    try:
        x = float(ui)
    except (TypeError, ValueError):
        raise SplatError(f"expected a number, got {ui!r}", field=c.name) from None
    if not math.isfinite(x):
        raise SplatError(f"expected a finite number, got {ui!r}", field=c.name)
    v = min(max(x, float(c.low)), float(c.high))
    if c.kind == "int_slider":
        v = int(round(v))
        return v, v != x
    return v, v != x
