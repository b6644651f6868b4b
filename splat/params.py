"""ParamSpace: the named, typed, ranged inputs of a shape program, with activation conditions.

Convention: a parameter is ``float``, ``int`` (an enum is an int with ``labels``) or ``bool``; ranges are
inclusive. A batch of assignments is a dict name -> ``[B]`` tensor (float params in a float dtype, int
params long, bool params bool); a single assignment is a dict name -> python value. Activation
conditions are conjunctive and transitive: a parameter is active iff every one of its conditions holds
and the parameters they test are themselves active ("Middle Offset" is active only when
Legs Type == 0 and Has Middle Support). Inactive parameters do not change the geometry of a well-formed
program and are not searched.

Files: our format ``splat.params/1``::

    {"format": "splat.params/1", "params": [
      {"name": "Legs Type", "type": "int", "range": [0, 2], "default": 0, "labels": ["square", "round", "sled"],
       "group": "Legs"},
      {"name": "Middle Offset", "type": "float", "range": [0.0, 0.5], "default": 0.2,
       "requires": [["Legs Type", 0], "Has Middle Support"]}]}

A ``requires`` entry is a bool parameter's name (must be true) or ``[name, value]`` (must equal value).
The third-party ``sp_*.json`` format (nested ``params`` groups, ``or_dependencies`` with the same entry
forms, ``not_dependencies`` listing bools that must be false) loads too; its defaults are the range
midpoint for floats, the low end for ints and false for bools.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import Tensor

from splat.errors import SplatError
from splat.io import read_json

FORMAT = "splat.params/1"
PARAM_TYPES = ("float", "int", "bool")


@dataclass(frozen=True)
class Condition:
    """``name`` must equal ``value`` (a bool for bool params, an int for int params)."""

    name: str
    value: bool | int


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "float" | "int" | "bool"
    low: float | int | bool
    high: float | int | bool
    default: float | int | bool
    requires: tuple[Condition, ...] = ()
    group: str | None = None
    labels: tuple[str, ...] | None = None
    scan_blind: bool = False  # a depth scan cannot fit it: the search holds its default, photo checks set it

    @property
    def continuous(self) -> bool:
        return self.type == "float"

    def values(self) -> list[Any]:
        """Every value of a discrete parameter (bool: False, True; int: low..high)."""
        if self.type == "bool":
            return [False, True]
        return list(range(int(self.low), int(self.high) + 1))


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_scalar(p: Param, v: Any, file, fld) -> float | int | bool:
    if p.type == "float":
        if not _is_num(v):
            raise SplatError(f"expected a finite number, got {v!r}", file=file, field=fld)
        v = float(v)
    elif p.type == "int":
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            raise SplatError(f"expected an integer, got {v!r}", file=file, field=fld)
    else:
        if not isinstance(v, bool):
            raise SplatError(f"expected true or false, got {v!r}", file=file, field=fld)
        return v
    if not (p.low <= v <= p.high):
        raise SplatError(f"value {v} outside the range [{p.low}, {p.high}]", file=file, field=fld)
    return v


@dataclass(frozen=True)
class ParamSpace:
    """An ordered set of parameters. Build with :meth:`from_dict`, :meth:`load` or :meth:`from_interface`."""

    params: tuple[Param, ...]

    # ---- construction -------------------------------------------------------------------------------

    @staticmethod
    def load(path: str | os.PathLike) -> "ParamSpace":
        path = Path(path)
        return ParamSpace.from_dict(read_json(path), file=path)

    @staticmethod
    def from_dict(obj: Any, *, file: str | os.PathLike | None = None) -> "ParamSpace":
        """Our ``splat.params/1`` format or the third-party ``sp_*.json`` format."""
        if not isinstance(obj, dict):
            raise SplatError("expected a JSON object", file=file, field="(root)")
        if obj.get("format") == FORMAT:
            raw = obj.get("params")
            if not isinstance(raw, list):
                raise SplatError("expected a list of parameters", file=file, field="params")
            entries = [(f"params[{i}]", e, None) for i, e in enumerate(raw)]
        elif isinstance(obj.get("params"), dict):
            entries = list(_flatten_sp(obj["params"], "params", None, file))
        else:
            raise SplatError(f"expected format {FORMAT!r} or a third-party 'params' object", file=file, field="format")
        params = [_parse_param(fld, e, group, file) for fld, e, group in entries]
        return ParamSpace._checked(params, [f for f, _, _ in entries], file)

    @staticmethod
    def _checked(params: list[Param], fields: list[str], file) -> "ParamSpace":
        by_name = {}
        for p, fld in zip(params, fields):
            if p.name in by_name:
                raise SplatError(f"duplicate parameter {p.name!r}", file=file, field=fld + ".name")
            by_name[p.name] = p
        for p, fld in zip(params, fields):
            for c in p.requires:
                if c.name not in by_name:
                    raise SplatError(f"condition on unknown parameter {c.name!r}", file=file, field=fld + ".requires")
                q = by_name[c.name]
                if q.type == "float":
                    raise SplatError(f"condition on float parameter {c.name!r} (only int/bool)", file=file,
                                     field=fld + ".requires")
                if q.type == "bool" and not isinstance(c.value, bool):
                    raise SplatError(f"condition value for bool {c.name!r} must be true/false", file=file,
                                     field=fld + ".requires")
                if q.type == "int" and (isinstance(c.value, bool) or not isinstance(c.value, int)):
                    raise SplatError(f"condition value for int {c.name!r} must be an integer", file=file,
                                     field=fld + ".requires")
        space = ParamSpace(tuple(params))
        try:
            space._order()
        except ValueError as e:
            raise SplatError(str(e), file=file, field="params") from None
        return space

    @staticmethod
    def from_interface(graph) -> "ParamSpace":
        """A space from a graph's main-tree interface (FLOAT/INT/BOOLEAN inputs; min/max as range)."""
        params = []
        for s in graph.interface:
            if s.type == "FLOAT":
                lo = -1e4 if s.min is None else float(s.min)
                hi = 1e4 if s.max is None else float(s.max)
                params.append(Param(s.name, "float", lo, hi, min(max(float(s.default), lo), hi)))
            elif s.type == "INT":
                lo = -(2**31) + 1 if s.min is None else int(math.ceil(s.min))
                hi = 2**31 - 1 if s.max is None else int(math.floor(s.max))
                params.append(Param(s.name, "int", lo, hi, min(max(int(s.default), lo), hi)))
            elif s.type == "BOOLEAN":
                params.append(Param(s.name, "bool", False, True, bool(s.default)))
        return ParamSpace(tuple(params))

    def to_dict(self) -> dict:
        out = []
        for p in self.params:
            d: dict[str, Any] = {"name": p.name, "type": p.type}
            if p.type != "bool":
                d["range"] = [p.low, p.high]
            d["default"] = p.default
            if p.requires:
                d["requires"] = [c.name if c.value is True else [c.name, c.value] for c in p.requires]
            if p.group:
                d["group"] = p.group
            if p.labels:
                d["labels"] = list(p.labels)
            if p.scan_blind:
                d["scan_blind"] = True
            out.append(d)
        return {"format": FORMAT, "params": out}

    # ---- access -------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.params)

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise SplatError(f"unknown parameter {name!r} (known: {', '.join(self.names)})", field=name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def continuous(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.type == "float")

    @property
    def discrete(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.type != "float")

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    # ---- validation and activity --------------------------------------------------------------------

    def validate(self, assignment: Mapping[str, Any], *, file: str | os.PathLike | None = None) -> dict[str, Any]:
        """Check one assignment (names, types, ranges); return it with defaults filled in."""
        if not isinstance(assignment, Mapping):
            raise SplatError("expected a mapping of parameter names to values", file=file)
        known = set(self.names)
        for k in assignment:
            if k not in known:
                raise SplatError(f"unknown parameter {k!r} (known: {', '.join(self.names)})", file=file, field=str(k))
        out = {}
        for p in self.params:
            v = assignment.get(p.name, p.default)
            if isinstance(v, Tensor):
                v = v.item() if v.numel() == 1 else v
            out[p.name] = _check_scalar(p, v, file, p.name)
        return out

    def validate_batch(self, batch: Mapping[str, Tensor], *, file: str | os.PathLike | None = None) -> int:
        """Check a batch (names, [B] shapes, finiteness, integrality, ranges); return B."""
        B = None
        known = set(self.names)
        for k, v in batch.items():
            if k not in known:
                raise SplatError(f"unknown parameter {k!r} (known: {', '.join(self.names)})", file=file, field=str(k))
            if not isinstance(v, Tensor) or v.dim() != 1:
                raise SplatError("expected a 1-D tensor [B]", file=file, field=k)
            if B is None:
                B = v.shape[0]
            elif v.shape[0] != B:
                raise SplatError(f"batch size {v.shape[0]} differs from {B}", file=file, field=k)
            p = self[k]
            x = v.detach()
            if p.type == "bool":
                if x.dtype != torch.bool:
                    raise SplatError(f"expected a bool tensor, got {x.dtype}", file=file, field=k)
                continue
            if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                raise SplatError("value is not finite", file=file, field=k)
            if p.type == "int" and x.is_floating_point() and not bool((x == torch.round(x)).all()):
                raise SplatError("expected integer values", file=file, field=k)
            bad = (x < p.low) | (x > p.high)
            if bool(bad.any()):
                i = int(bad.nonzero()[0, 0])
                raise SplatError(f"value {x[i].item()} (batch element {i}) outside the range [{p.low}, {p.high}]",
                                 file=file, field=k)
        return 1 if B is None else B

    def _order(self) -> list[Param]:
        """Params with every condition's parameter before its dependents."""
        by_name = {p.name: p for p in self.params}
        done: dict[str, int] = {}
        order: list[Param] = []

        def visit(p: Param, depth: int):
            if done.get(p.name) == 2:
                return
            if done.get(p.name) == 1 or depth > len(self.params):
                raise ValueError(f"activation conditions of {p.name!r} form a cycle")
            done[p.name] = 1
            for c in p.requires:
                visit(by_name[c.name], depth + 1)
            done[p.name] = 2
            order.append(p)

        for p in self.params:
            visit(p, 0)
        return order

    def active(self, assignment: Mapping[str, Any]) -> dict[str, bool]:
        """Which parameters are active for one assignment (missing values take defaults)."""
        values = {p.name: assignment.get(p.name, p.default) for p in self.params}
        act: dict[str, bool] = {}
        for p in self._order():
            ok = True
            for c in p.requires:
                v = values[c.name]
                v = v.item() if isinstance(v, Tensor) else v
                ok = ok and act[c.name] and (bool(v) == c.value if isinstance(c.value, bool) else int(v) == c.value)
            act[p.name] = ok
        return {p.name: act[p.name] for p in self.params}

    def active_batch(self, batch: Mapping[str, Tensor], batch_size: int) -> dict[str, Tensor]:
        """``active`` for a batch: name -> [B] bool (missing values take defaults)."""
        act: dict[str, Tensor] = {}
        for p in self._order():
            ok = torch.ones(batch_size, dtype=torch.bool)
            for c in p.requires:
                v = batch.get(c.name)
                if v is None:
                    v = torch.full((batch_size,), self[c.name].default)
                v = v.detach().cpu()
                hit = (v.bool() == c.value) if isinstance(c.value, bool) else (v.long() == c.value)
                ok = ok & act[c.name] & hit
            act[p.name] = ok
        return {p.name: act[p.name] for p in self.params}

    # ---- batches, normalisation, sampling -----------------------------------------------------------

    def to_batch(self, assignments: Sequence[Mapping[str, Any]], *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu", file: str | os.PathLike | None = None) -> dict[str, Tensor]:
        """Validated python assignments -> batch dict (defaults filled)."""
        rows = [self.validate(a, file=file) for a in assignments]
        out = {}
        for p in self.params:
            vals = [r[p.name] for r in rows]
            t = {"float": dtype, "int": torch.long, "bool": torch.bool}[p.type]
            out[p.name] = torch.tensor(vals, dtype=t, device=device)
        return out

    def unbatch(self, batch: Mapping[str, Tensor]) -> list[dict[str, Any]]:
        B = next(iter(batch.values())).shape[0] if batch else 0
        cols = {k: v.detach().cpu().tolist() for k, v in batch.items()}
        cast = {"float": float, "int": int, "bool": bool}
        return [{k: cast[self[k].type](c[i]) for k, c in cols.items()} for i in range(B)]

    def normalize(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Float params to [0, 1] over their range (0 for an empty range); others unchanged."""
        out = {}
        for k, v in batch.items():
            p = self[k]
            if p.type == "float":
                span = p.high - p.low
                out[k] = (v - p.low) / span if span > 0 else torch.zeros_like(v)
            else:
                out[k] = v
        return out

    def denormalize(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Inverse of :meth:`normalize`."""
        out = {}
        for k, v in batch.items():
            p = self[k]
            out[k] = p.low + v * (p.high - p.low) if p.type == "float" else v
        return out

    def sample(self, n: int, generator: torch.Generator, *, dtype: torch.dtype = torch.float64,
               device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """``n`` valid random assignments (uniform over each range, inactive ones included; a
        ``scan_blind`` parameter at its default: these are the shapes a scan can be fitted to)."""
        out = {}
        for p in self.params:
            if p.scan_blind:
                out[p.name] = constant_batch(p, p.default, n, dtype=dtype, device=device)
            elif p.type == "float":
                u = torch.rand(n, generator=generator, dtype=torch.float64)
                out[p.name] = (p.low + u * (p.high - p.low)).clamp(p.low, p.high).to(dtype=dtype, device=device)
            elif p.type == "int":
                out[p.name] = torch.randint(int(p.low), int(p.high) + 1, (n,), generator=generator).to(device)
            else:
                out[p.name] = (torch.rand(n, generator=generator) < 0.5).to(device)
        return out


def constant_batch(p: Param, value: Any, n: int, *, dtype: torch.dtype = torch.float64,
                   device: torch.device | str = "cpu") -> Tensor:
    """``[n]`` copies of ``value`` as parameter ``p``'s batch tensor (float: ``dtype``; int: int64; bool)."""
    if p.type == "float":
        return torch.full((n,), float(value), dtype=dtype, device=device)
    if p.type == "int":
        return torch.full((n,), int(value), dtype=torch.int64, device=device)
    return torch.full((n,), bool(value), dtype=torch.bool, device=device)


def _parse_cond(entry, file, fld, negate: bool = False) -> Condition:
    if isinstance(entry, str) and entry:
        return Condition(entry, not negate)
    if (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
            and isinstance(entry[1], (bool, int)) and not negate):
        return Condition(entry[0], entry[1])
    raise SplatError(f"bad condition {entry!r} (expected a bool parameter name or [name, value])", file=file, field=fld)


def _parse_param(fld: str, e: Any, group: str | None, file) -> Param:
    if not isinstance(e, dict):
        raise SplatError("expected an object", file=file, field=fld)
    name = e.get("name")
    if not isinstance(name, str) or not name:
        raise SplatError(f"expected a non-empty name, got {name!r}", file=file, field=fld + ".name")
    t = e.get("type")
    if t not in PARAM_TYPES:
        raise SplatError(f"unknown type {t!r} (expected float, int or bool)", file=file, field=fld + ".type")
    if t == "bool":
        lo, hi = False, True
    else:
        r = e.get("range")
        if not (isinstance(r, list) and len(r) == 2 and all(_is_num(x) for x in r)):
            raise SplatError(f"expected a range [low, high] of numbers, got {r!r}", file=file, field=fld + ".range")
        lo, hi = r
        if t == "int":
            if not all(isinstance(x, int) or float(x).is_integer() for x in r):
                raise SplatError(f"int range must be integers, got {r!r}", file=file, field=fld + ".range")
            lo, hi = int(lo), int(hi)
        else:
            lo, hi = float(lo), float(hi)
        if lo > hi:
            raise SplatError(f"range low {lo} > high {hi}", file=file, field=fld + ".range")
    reqs = []
    for key, negate in (("requires", False), ("or_dependencies", False), ("not_dependencies", True)):
        raw = e.get(key, [])
        if not isinstance(raw, list):
            raise SplatError("expected a list of conditions", file=file, field=f"{fld}.{key}")
        reqs += [_parse_cond(x, file, f"{fld}.{key}[{i}]", negate) for i, x in enumerate(raw)]
    if "default" in e:
        probe = Param(name, t, lo, hi, lo)
        default = _check_scalar(probe, e["default"], file, fld + ".default")
    else:
        default = {"float": (lo + hi) / 2 if t == "float" else 0, "int": lo, "bool": False}[t]
    labels = e.get("labels")
    if labels is not None:
        if t != "int" or not isinstance(labels, list) or len(labels) != hi - lo + 1 or \
                not all(isinstance(x, str) for x in labels):
            raise SplatError("labels need an int parameter and one string per value of its range", file=file,
                             field=fld + ".labels")
        labels = tuple(labels)
    g = e.get("group", group)
    if g is not None and not isinstance(g, str):
        raise SplatError("expected a string", file=file, field=fld + ".group")
    blind = e.get("scan_blind", False)
    if not isinstance(blind, bool):
        raise SplatError(f"expected true or false, got {blind!r}", file=file, field=fld + ".scan_blind")
    return Param(name, t, lo, hi, default, tuple(reqs), g, labels, blind)


def _flatten_sp(params: dict, fld: str, group: str | None, file, depth: int = 0):
    if depth > 32:
        raise SplatError("parameter groups nested too deep", file=file, field=fld)
    for k, v in params.items():
        f = f"{fld}.{k}"
        if not isinstance(v, dict):
            raise SplatError("expected an object", file=file, field=f)
        if v.get("type") == "nested":
            if not isinstance(v.get("params"), dict):
                raise SplatError("nested group needs a 'params' object", file=file, field=f + ".params")
            yield from _flatten_sp(v["params"], f + ".params", k, file, depth + 1)
        else:
            yield f, {**v, "name": k}, group


# --- edits from the command line -------------------------------------------------------------------
# ``--set "Seat Height=0.62"`` and parameter sweeps. Values given as text are parsed by the parameter's
# type: floats as decimal numbers; ints as integers (or, for enum-like ints with ``labels``, a label
# name); bools as ``true/false/1/0/yes/no/on/off``. Every mistake is a SplatError with
# ``field="--set"`` whose message lists the valid names or the valid range.

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


def valid_names(space: ParamSpace) -> str:
    return "; ".join(describe_param(p) for p in space.params)


def find_param(space: ParamSpace, name: str, *, field: str = "--set") -> Param:
    """The parameter called ``name`` (exact, else case-insensitive unique match); SplatError listing
    the valid parameters otherwise."""
    by_name = {p.name: p for p in space.params}
    if name in by_name:
        return by_name[name]
    folded = [p for p in space.params if p.name.casefold() == name.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise SplatError(f"unknown parameter {name!r}; valid parameters: {valid_names(space)}", field=field)


def parse_value(p: Param, text: str, *, field: str = "--set") -> Any:
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


def parse_sets(items: Sequence[str], space: ParamSpace) -> dict[str, Any]:
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


def inactive_edits(space: ParamSpace, assignment: Mapping[str, Any], edits: Mapping[str, Any]) -> list[str]:
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
