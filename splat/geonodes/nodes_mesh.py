"""Mesh primitive nodes: Cube, Cylinder, Cone, UV Sphere, Grid, Mesh Line.

Each primitive node yields parts with an identity transform and its shape parameters (see
``splat.geonodes.primitives`` for the canonical layouts). Discrete inputs (vertex counts, fill
segments) may differ per batch element: one part is made per distinct topology, with complementary
``active`` masks. Counts below Blender's minimum give no part for that element (Blender returns an
empty mesh). A Mesh Line yields one ``point`` part per vertex up to the batch's largest count,
inactive beyond each element's count. Counts above ``MAX_RESOLUTION`` / ``MAX_LINE_COUNT`` raise a
``SplatError`` (the only evaluation-time error: counts can come from parameters).
"""

from __future__ import annotations

import torch
from torch import Tensor

from splat.errors import SplatError
from splat.geonodes.geometry import Geometry, Part, identity_transforms
from splat.geonodes.primitives import PrimitiveKey
from splat.geonodes.spec import EvalContext, NodeSpec, PropSpec, SocketSpec, fixed, register

FILL_TYPES = ("NONE", "NGON", "TRIANGLE_FAN")
MAX_RESOLUTION = 1024  # per-axis vertex count of a primitive
MAX_LINE_COUNT = 4096  # vertices of a Mesh Line


def _check_counts(ctx: EvalContext, values: Tensor, limit: int, what: str) -> None:
    if values.numel() and int(values.max()) > limit:
        raise SplatError(f"{what} {int(values.max())} exceeds the supported maximum {limit}", field=f"{ctx.tree}.{ctx.node}")


def _split(ctx: EvalContext, ints: list[Tensor]) -> list[tuple[tuple, Tensor]]:
    """Distinct rows of the stacked integer inputs, each with its [B] bool mask."""
    stacked = torch.stack([t.long() for t in ints], -1)  # [B, k]
    _check_counts(ctx, stacked, MAX_RESOLUTION, "vertex count")
    if bool((stacked == stacked[:1]).all()):  # one topology for the whole batch (the usual case)
        return [(tuple(stacked[0].tolist()), torch.ones(stacked.shape[0], dtype=torch.bool, device=stacked.device))]
    uniq, inv = torch.unique(stacked, dim=0, return_inverse=True)
    return [(tuple(row), inv == i) for i, row in enumerate(uniq.tolist())]


def _geometry(ctx: EvalContext, kind: str, pieces, shape: dict[str, Tensor]) -> Geometry:
    eye = identity_transforms(ctx.batch_size, ctx.dtype, ctx.device)
    parts = tuple(Part(PrimitiveKey(ctx.tree, ctx.node, kind, topo), shape, eye, mask) for topo, mask in pieces)
    return Geometry(ctx.batch_size, parts)


def _eval_cube(ctx, props, ins):
    pieces = [(t, m) for t, m in _split(ctx, [ins["Vertices X"], ins["Vertices Y"], ins["Vertices Z"]])
              if min(t) >= 1]
    return {"Mesh": _geometry(ctx, "cube", pieces, {"size": ins["Size"]})}


register(NodeSpec(
    type="GeometryNodeMeshCube",
    inputs=fixed(SocketSpec("Size", "VECTOR", (1.0, 1.0, 1.0)), SocketSpec("Vertices X", "INT", 2),
                 SocketSpec("Vertices Y", "INT", 2), SocketSpec("Vertices Z", "INT", 2)),
    outputs=fixed(SocketSpec("Mesh", "GEOMETRY")),
    evaluate=_eval_cube,
))


def _ring_pieces(ctx, props, ins, extra: list[Tensor]):
    fill_type = props["fill_type"]
    out = []
    for t, m in _split(ctx, [ins["Vertices"], ins["Side Segments"], ins["Fill Segments"], *extra]):
        v, side, fill = t[:3]
        if v < 3 or side < 1 or (fill_type != "NONE" and fill < 1):
            continue
        if fill_type == "NONE":
            fill = 1  # unused; one key for every fill value
        out.append(((v, side, fill, fill_type) + tuple(bool(x) for x in t[3:]), m))
    # merge pieces whose keys coincide after normalising the unused fill count
    merged: dict[tuple, Tensor] = {}
    for key, m in out:
        merged[key] = merged[key] | m if key in merged else m
    return list(merged.items())


def _eval_cylinder(ctx, props, ins):
    pieces = _ring_pieces(ctx, props, ins, [])
    return {"Mesh": _geometry(ctx, "cylinder", pieces, {"radius": ins["Radius"], "depth": ins["Depth"]})}


_RING_INPUTS = (SocketSpec("Vertices", "INT", 32), SocketSpec("Side Segments", "INT", 1),
                SocketSpec("Fill Segments", "INT", 1))

register(NodeSpec(
    type="GeometryNodeMeshCylinder",
    inputs=fixed(*_RING_INPUTS, SocketSpec("Radius", "FLOAT", 1.0), SocketSpec("Depth", "FLOAT", 2.0)),
    outputs=fixed(SocketSpec("Mesh", "GEOMETRY"), SocketSpec("Top", "BOOLEAN"), SocketSpec("Side", "BOOLEAN"),
                  SocketSpec("Bottom", "BOOLEAN")),
    evaluate=_eval_cylinder,
    properties={"fill_type": PropSpec("NGON", FILL_TYPES)},
))


def _eval_cone(ctx, props, ins):
    rt, rb = ins["Radius Top"], ins["Radius Bottom"]
    pieces = _ring_pieces(ctx, props, ins, [rt == 0, rb == 0])
    shape = {"radius_top": rt, "radius_bottom": rb, "depth": ins["Depth"]}
    return {"Mesh": _geometry(ctx, "cone", pieces, shape)}


register(NodeSpec(
    type="GeometryNodeMeshCone",
    inputs=fixed(*_RING_INPUTS, SocketSpec("Radius Top", "FLOAT", 0.0), SocketSpec("Radius Bottom", "FLOAT", 1.0),
                 SocketSpec("Depth", "FLOAT", 2.0)),
    outputs=fixed(SocketSpec("Mesh", "GEOMETRY"), SocketSpec("Top", "BOOLEAN"), SocketSpec("Bottom", "BOOLEAN"),
                  SocketSpec("Side", "BOOLEAN")),
    evaluate=_eval_cone,
    properties={"fill_type": PropSpec("NGON", FILL_TYPES)},
))


def _eval_sphere(ctx, props, ins):
    pieces = [(t, m) for t, m in _split(ctx, [ins["Segments"], ins["Rings"]]) if t[0] >= 3 and t[1] >= 2]
    return {"Mesh": _geometry(ctx, "uv_sphere", pieces, {"radius": ins["Radius"]})}


register(NodeSpec(
    type="GeometryNodeMeshUVSphere",
    inputs=fixed(SocketSpec("Segments", "INT", 32), SocketSpec("Rings", "INT", 16), SocketSpec("Radius", "FLOAT", 1.0)),
    outputs=fixed(SocketSpec("Mesh", "GEOMETRY")),
    evaluate=_eval_sphere,
))


def _eval_grid(ctx, props, ins):
    pieces = [(t, m) for t, m in _split(ctx, [ins["Vertices X"], ins["Vertices Y"]]) if min(t) >= 2]
    return {"Mesh": _geometry(ctx, "grid", pieces, {"size_x": ins["Size X"], "size_y": ins["Size Y"]})}


register(NodeSpec(
    type="GeometryNodeMeshGrid",
    inputs=fixed(SocketSpec("Size X", "FLOAT", 1.0), SocketSpec("Size Y", "FLOAT", 1.0),
                 SocketSpec("Vertices X", "INT", 3), SocketSpec("Vertices Y", "INT", 3)),
    outputs=fixed(SocketSpec("Mesh", "GEOMETRY")),
    evaluate=_eval_grid,
))


def _eval_line(ctx, props, ins):
    count = ins["Count"]
    start, off = ins["Start Location"], ins["Offset"]
    if props["mode"] == "END_POINTS":
        denom = torch.clamp(count - 1, min=1).to(ctx.dtype)[:, None]
        step = torch.where((count > 1)[:, None], (off - start) / denom, torch.zeros_like(off))
    else:
        step = off
    _check_counts(ctx, count, MAX_LINE_COUNT, "Mesh Line count")
    n = int(count.max().item()) if count.numel() else 0
    key = PrimitiveKey(ctx.tree, ctx.node, "point", ())
    eye = identity_transforms(ctx.batch_size, ctx.dtype, ctx.device)
    parts = []
    for i in range(max(n, 0)):
        m = eye.clone()
        m[:, :3, 3] = start + i * step
        parts.append(Part(key, {}, m, count > i))
    return {"Mesh": Geometry(ctx.batch_size, tuple(parts))}


register(NodeSpec(
    type="GeometryNodeMeshLine",
    inputs=fixed(SocketSpec("Count", "INT", 10), SocketSpec("Resolution", "FLOAT", 1.0),
                 SocketSpec("Start Location", "VECTOR", (0.0, 0.0, 0.0)), SocketSpec("Offset", "VECTOR", (0.0, 0.0, 1.0))),
    outputs=fixed(SocketSpec("Mesh", "GEOMETRY")),
    evaluate=_eval_line,
    properties={"mode": PropSpec("OFFSET", ("OFFSET", "END_POINTS")), "count_mode": PropSpec("TOTAL", ("TOTAL",))},
))
