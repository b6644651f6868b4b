"""Value nodes: Math, Vector Math, Combine/Separate XYZ, Value/Integer/Boolean inputs.

Convention: Blender's float semantics, differentiable where Blender's function is: DIVIDE, MODULO and
vector DIVIDE by 0 give 0; SQRT of a negative gives 0; POWER of a negative base with a non-integer
exponent gives 0; COMPARE is ``|a - b| <= max(c, FLT_EPSILON)``; ROUND is ``floor(a + 0.5)``;
``use_clamp`` clamps to [0, 1]. Safe operations never build NaN gradients (the unused branch sees a
safe denominator).
"""

from __future__ import annotations

import torch
from torch import Tensor

from splat.geonodes.spec import NodeSpec, PropSpec, SocketSpec, fixed, register

FLT_EPSILON = 1.1920928955078125e-07


def _safe_div(a: Tensor, b: Tensor) -> Tensor:
    nz = b != 0
    return torch.where(nz, a / torch.where(nz, b, torch.ones_like(b)), torch.zeros_like(a))


def _safe_sqrt(a: Tensor) -> Tensor:
    pos = a > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, a, torch.ones_like(a))), torch.zeros_like(a))


def _safe_pow(a: Tensor, b: Tensor) -> Tensor:
    bad = (a < 0) & (b != torch.round(b))
    base = torch.where(bad, torch.ones_like(a), a)
    # grad of a**b at a == 0 with b < 1 is inf; Blender has no gradient there anyway
    return torch.where(bad, torch.zeros_like(a), torch.pow(base, b))


def _bool(x: Tensor) -> Tensor:
    return x.to(x.dtype)


MATH_OPS = {
    "ADD": lambda a, b, c: a + b,
    "SUBTRACT": lambda a, b, c: a - b,
    "MULTIPLY": lambda a, b, c: a * b,
    "DIVIDE": lambda a, b, c: _safe_div(a, b),
    "MULTIPLY_ADD": lambda a, b, c: a * b + c,
    "POWER": lambda a, b, c: _safe_pow(a, b),
    "SQRT": lambda a, b, c: _safe_sqrt(a),
    "ABSOLUTE": lambda a, b, c: torch.abs(a),
    "MINIMUM": lambda a, b, c: torch.minimum(a, b),
    "MAXIMUM": lambda a, b, c: torch.maximum(a, b),
    "LESS_THAN": lambda a, b, c: (a < b).to(a.dtype),
    "GREATER_THAN": lambda a, b, c: (a > b).to(a.dtype),
    "SIGN": lambda a, b, c: torch.sign(a),
    "COMPARE": lambda a, b, c: (torch.abs(a - b) <= torch.clamp(c, min=FLT_EPSILON)).to(a.dtype),
    "ROUND": lambda a, b, c: torch.floor(a + 0.5),
    "FLOOR": lambda a, b, c: torch.floor(a),
    "CEIL": lambda a, b, c: torch.ceil(a),
    "TRUNC": lambda a, b, c: torch.trunc(a),
    "FRACT": lambda a, b, c: a - torch.floor(a),
    "MODULO": lambda a, b, c: torch.where(b != 0, torch.fmod(a, torch.where(b != 0, b, torch.ones_like(b))),
                                          torch.zeros_like(a)),
    "SINE": lambda a, b, c: torch.sin(a),
    "COSINE": lambda a, b, c: torch.cos(a),
    "TANGENT": lambda a, b, c: torch.tan(a),
    "RADIANS": lambda a, b, c: torch.deg2rad(a),
    "DEGREES": lambda a, b, c: torch.rad2deg(a),
}


def _eval_math(ctx, props, ins):
    a, b, c = ins["Value[0]"], ins["Value[1]"], ins["Value[2]"]
    out = MATH_OPS[props["operation"]](a, b, c)
    if props["use_clamp"]:
        out = torch.clamp(out, 0.0, 1.0)
    return {"Value": out}


register(NodeSpec(
    type="ShaderNodeMath",
    inputs=fixed(*(SocketSpec(f"Value[{k}]", "FLOAT", 0.5) for k in range(3))),
    outputs=fixed(SocketSpec("Value", "FLOAT")),
    evaluate=_eval_math,
    properties={"operation": PropSpec("ADD", tuple(MATH_OPS)), "use_clamp": PropSpec(False, (False, True))},
))


def _length(v: Tensor) -> Tensor:
    return _safe_sqrt((v * v).sum(-1))


def _normalize(v: Tensor) -> Tensor:
    n = _length(v)
    return _safe_div(v, n[:, None].expand_as(v))


# each returns (vector or None, value or None)
VECTOR_OPS = {
    "ADD": lambda a, b, c, s: (a + b, None),
    "SUBTRACT": lambda a, b, c, s: (a - b, None),
    "MULTIPLY": lambda a, b, c, s: (a * b, None),
    "DIVIDE": lambda a, b, c, s: (_safe_div(a, b), None),
    "MULTIPLY_ADD": lambda a, b, c, s: (a * b + c, None),
    "CROSS_PRODUCT": lambda a, b, c, s: (torch.linalg.cross(a, b, dim=-1), None),
    "DOT_PRODUCT": lambda a, b, c, s: (None, (a * b).sum(-1)),
    "DISTANCE": lambda a, b, c, s: (None, _length(a - b)),
    "LENGTH": lambda a, b, c, s: (None, _length(a)),
    "SCALE": lambda a, b, c, s: (a * s[:, None], None),
    "NORMALIZE": lambda a, b, c, s: (_normalize(a), None),
    "ABSOLUTE": lambda a, b, c, s: (torch.abs(a), None),
    "MINIMUM": lambda a, b, c, s: (torch.minimum(a, b), None),
    "MAXIMUM": lambda a, b, c, s: (torch.maximum(a, b), None),
    "FLOOR": lambda a, b, c, s: (torch.floor(a), None),
    "CEIL": lambda a, b, c, s: (torch.ceil(a), None),
}


def _eval_vector_math(ctx, props, ins):
    a, b, c, s = ins["Vector[0]"], ins["Vector[1]"], ins["Vector[2]"], ins["Scale"]
    vec, val = VECTOR_OPS[props["operation"]](a, b, c, s)
    if vec is None:
        vec = torch.zeros_like(a)
    if val is None:
        val = torch.zeros_like(s)
    return {"Vector": vec, "Value": val}


register(NodeSpec(
    type="ShaderNodeVectorMath",
    inputs=fixed(*(SocketSpec(f"Vector[{k}]", "VECTOR", (0.0, 0.0, 0.0)) for k in range(3)),
                 SocketSpec("Scale", "FLOAT", 1.0)),
    outputs=fixed(SocketSpec("Vector", "VECTOR"), SocketSpec("Value", "FLOAT")),
    evaluate=_eval_vector_math,
    properties={"operation": PropSpec("ADD", tuple(VECTOR_OPS))},
))

register(NodeSpec(
    type="ShaderNodeCombineXYZ",
    inputs=fixed(SocketSpec("X", "FLOAT", 0.0), SocketSpec("Y", "FLOAT", 0.0), SocketSpec("Z", "FLOAT", 0.0)),
    outputs=fixed(SocketSpec("Vector", "VECTOR")),
    evaluate=lambda ctx, props, ins: {"Vector": torch.stack([ins["X"], ins["Y"], ins["Z"]], -1)},
))

register(NodeSpec(
    type="ShaderNodeSeparateXYZ",
    inputs=fixed(SocketSpec("Vector", "VECTOR", (0.0, 0.0, 0.0))),
    outputs=fixed(SocketSpec("X", "FLOAT"), SocketSpec("Y", "FLOAT"), SocketSpec("Z", "FLOAT")),
    evaluate=lambda ctx, props, ins: dict(zip(("X", "Y", "Z"), ins["Vector"].unbind(-1))),
))


def _full(ctx, value, dtype):
    return torch.full((ctx.batch_size,), value, dtype=dtype, device=ctx.device)


register(NodeSpec(
    type="ShaderNodeValue", inputs=fixed(), outputs=fixed(SocketSpec("Value", "FLOAT")),
    evaluate=lambda ctx, props, ins: {"Value": _full(ctx, float(props["value"]), ctx.dtype)},
    properties={"value": PropSpec(0.0, kind=float)},
))
register(NodeSpec(
    type="FunctionNodeInputInt", inputs=fixed(), outputs=fixed(SocketSpec("Integer", "INT")),
    evaluate=lambda ctx, props, ins: {"Integer": _full(ctx, int(props["integer"]), torch.long)},
    properties={"integer": PropSpec(0, kind=int)},
))
register(NodeSpec(
    type="FunctionNodeInputBool", inputs=fixed(), outputs=fixed(SocketSpec("Boolean", "BOOLEAN")),
    evaluate=lambda ctx, props, ins: {"Boolean": _full(ctx, bool(props["boolean"]), torch.bool)},
    properties={"boolean": PropSpec(False, (False, True))},
))
