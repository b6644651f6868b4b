"""Node-type specifications: sockets, properties, and the evaluation function of each node type.

Each node family module (``nodes_math``, ``nodes_mesh``, ``nodes_geometry``) registers its node types
in :data:`REGISTRY`. The loader (``splat.geonodes.format``) validates graphs against these specs; the
evaluator (``splat.geonodes.evaluator``) calls ``NodeSpec.evaluate``.

Convention: socket values during evaluation are per-batch tensors: FLOAT [B] float, INT [B] long,
BOOLEAN [B] bool, VECTOR and ROTATION (Euler XYZ radians) [B, 3] float; GEOMETRY is a
:class:`splat.geonodes.geometry.Geometry`. Fields (per-element attributes) are not supported: every
value is constant over a geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

VALUE_TYPES = ("FLOAT", "INT", "BOOLEAN", "VECTOR", "ROTATION")
SOCKET_TYPES = VALUE_TYPES + ("GEOMETRY",)

# implicit conversions Blender performs on links (from, to)
_CONVERTIBLE = {
    ("FLOAT", "INT"), ("FLOAT", "BOOLEAN"), ("FLOAT", "VECTOR"),
    ("INT", "FLOAT"), ("INT", "BOOLEAN"), ("INT", "VECTOR"),
    ("BOOLEAN", "FLOAT"), ("BOOLEAN", "INT"), ("BOOLEAN", "VECTOR"),
    ("VECTOR", "FLOAT"), ("VECTOR", "INT"), ("VECTOR", "BOOLEAN"), ("VECTOR", "ROTATION"),
    ("ROTATION", "VECTOR"),
}


def can_convert(src: str, dst: str) -> bool:
    return src == dst or (src, dst) in _CONVERTIBLE


@dataclass(frozen=True)
class SocketSpec:
    """One socket: its key (Blender name, ``Name[k]`` when repeated), type and default value."""

    key: str
    type: str
    default: Any = None
    multi: bool = False  # multi-input (Join Geometry)
    allowed: tuple | None = None  # when set: the socket must stay unlinked with a value in here


@dataclass(frozen=True)
class PropSpec:
    """A node property: allowed enum values, or a python type for free values."""

    default: Any
    choices: tuple | None = None
    kind: type | None = None


@dataclass(frozen=True)
class EvalContext:
    batch_size: int
    dtype: torch.dtype
    device: torch.device
    tree: str  # the tree holding the node
    node: str  # the node name
    constants: dict = field(default_factory=dict, compare=False)  # per-evaluation cache of constants


@dataclass(frozen=True)
class NodeSpec:
    type: str
    inputs: Callable[[Mapping[str, Any]], tuple[SocketSpec, ...]]
    outputs: Callable[[Mapping[str, Any]], tuple[SocketSpec, ...]]
    evaluate: Callable[[EvalContext, Mapping[str, Any], Mapping[str, Any]], dict[str, Any]] | None
    properties: Mapping[str, PropSpec] = field(default_factory=dict)


REGISTRY: dict[str, NodeSpec] = {}


def register(spec: NodeSpec) -> NodeSpec:
    REGISTRY[spec.type] = spec
    return spec


def fixed(*sockets: SocketSpec) -> Callable[[Mapping[str, Any]], tuple[SocketSpec, ...]]:
    return lambda props: sockets


def constant(ctx: EvalContext, type_: str, value: Any) -> Tensor:
    """A socket default as a batched tensor (cached per evaluation; never modified in place)."""
    key = (type_, tuple(value) if isinstance(value, (list, tuple)) else value)
    hit = ctx.constants.get(key)
    if hit is None:
        hit = ctx.constants[key] = _constant(ctx, type_, value)
    return hit


def _constant(ctx: EvalContext, type_: str, value: Any) -> Tensor:
    B = ctx.batch_size
    if type_ == "FLOAT":
        return torch.full((B,), float(value), dtype=ctx.dtype, device=ctx.device)
    if type_ == "INT":
        return torch.full((B,), int(value), dtype=torch.long, device=ctx.device)
    if type_ == "BOOLEAN":
        return torch.full((B,), bool(value), dtype=torch.bool, device=ctx.device)
    if type_ in ("VECTOR", "ROTATION"):
        return torch.tensor([float(x) for x in value], dtype=ctx.dtype, device=ctx.device).expand(B, 3)
    raise ValueError(f"no constant of type {type_}")


def convert(value: Tensor, src: str, dst: str, ctx: EvalContext) -> Tensor:
    """Blender's implicit socket conversion (float->int truncates toward zero; ->bool is ``> 0``)."""
    if src == dst or (src, dst) in (("VECTOR", "ROTATION"), ("ROTATION", "VECTOR")):
        return value
    if src == "VECTOR":
        value = value.mean(-1)
        src = "FLOAT"
        if dst == "FLOAT":
            return value
    if dst == "FLOAT":
        return value.to(ctx.dtype)
    if dst == "INT":
        return torch.trunc(value).long() if src == "FLOAT" else value.long()
    if dst == "BOOLEAN":
        return value > 0
    if dst == "VECTOR":
        return value.to(ctx.dtype)[:, None].expand(value.shape[0], 3)
    raise ValueError(f"cannot convert {src} to {dst}")
