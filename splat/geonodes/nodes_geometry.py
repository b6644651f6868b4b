"""Geometry operations: Transform, Join, Switch, Instance on Points, Realize Instances.

Convention: Transform Geometry (COMPONENTS) maps p -> T(translation) @ R(rotation) @ diag(scale) @ p,
R = Rz @ Ry @ Rx (Blender's Euler XYZ). Instance on Points places every instance part at every point
(the vertices of the Points geometry) with T(point) @ R(rotation) @ diag(scale); the points themselves
are not kept, as in Blender. A GEOMETRY Switch with a selector that differs per batch element keeps both
branches (``active &= selector`` and ``&= ~selector``); parts left inactive everywhere are dropped.
Realize Instances leaves parts unchanged (their canonical identity is kept).
"""

from __future__ import annotations

import torch

from splat.geonodes.geometry import Geometry
from splat.maths import loc_rot_scale
from splat.geonodes.spec import NodeSpec, PropSpec, SocketSpec, fixed, register


def _eval_transform(ctx, props, ins):
    m = loc_rot_scale(ins["Translation"], ins["Rotation"], ins["Scale"])
    return {"Geometry": ins["Geometry"].transformed(m)}


register(NodeSpec(
    type="GeometryNodeTransform",
    inputs=fixed(SocketSpec("Geometry", "GEOMETRY"), SocketSpec("Translation", "VECTOR", (0.0, 0.0, 0.0)),
                 SocketSpec("Rotation", "ROTATION", (0.0, 0.0, 0.0)), SocketSpec("Scale", "VECTOR", (1.0, 1.0, 1.0))),
    outputs=fixed(SocketSpec("Geometry", "GEOMETRY")),
    evaluate=_eval_transform,
    properties={"mode": PropSpec("COMPONENTS", ("COMPONENTS",))},
))


def _eval_join(ctx, props, ins):
    return {"Geometry": Geometry(ctx.batch_size).join(*ins["Geometry"])}


register(NodeSpec(
    type="GeometryNodeJoinGeometry",
    inputs=fixed(SocketSpec("Geometry", "GEOMETRY", multi=True)),
    outputs=fixed(SocketSpec("Geometry", "GEOMETRY")),
    evaluate=_eval_join,
))

SWITCH_TYPES = {"GEOMETRY": None, "FLOAT": 0.0, "INT": 0, "BOOLEAN": False, "VECTOR": (0.0, 0.0, 0.0),
                "ROTATION": (0.0, 0.0, 0.0)}


def _switch_inputs(props):
    t = props["input_type"]
    d = SWITCH_TYPES[t]
    return (SocketSpec("Switch", "BOOLEAN", False), SocketSpec("False", t, d), SocketSpec("True", t, d))


def _eval_switch(ctx, props, ins):
    sel, a, b = ins["Switch"], ins["False"], ins["True"]
    if props["input_type"] == "GEOMETRY":
        if bool(sel.all()):
            return {"Output": b}
        if not bool(sel.any()):
            return {"Output": a}
        return {"Output": a.masked(~sel).join(b.masked(sel))}
    cond = sel[:, None] if a.dim() == 2 else sel
    return {"Output": torch.where(cond, b, a)}


register(NodeSpec(
    type="GeometryNodeSwitch",
    inputs=_switch_inputs,
    outputs=lambda props: (SocketSpec("Output", props["input_type"]),),
    evaluate=_eval_switch,
    properties={"input_type": PropSpec("GEOMETRY", tuple(SWITCH_TYPES))},
))


def _eval_instance(ctx, props, ins):
    points, inst = ins["Points"], ins["Instance"]
    if not points.parts or not inst.parts:
        return {"Instances": Geometry(ctx.batch_size)}
    mesh = points.realize()
    rot, scale, sel = ins["Rotation"], ins["Scale"], ins["Selection"]
    parts = []
    for v in range(mesh.verts.shape[1]):
        mask = mesh.vert_active[:, v] & sel
        if not bool(mask.any()):
            continue
        m = loc_rot_scale(mesh.verts[:, v], rot, scale)
        for p in inst.parts:
            q = p.with_transform(m).with_active(mask)
            if bool(q.active.any()):
                parts.append(q)
    return {"Instances": Geometry(ctx.batch_size, tuple(parts))}


register(NodeSpec(
    type="GeometryNodeInstanceOnPoints",
    inputs=fixed(SocketSpec("Points", "GEOMETRY"), SocketSpec("Selection", "BOOLEAN", True),
                 SocketSpec("Instance", "GEOMETRY"), SocketSpec("Pick Instance", "BOOLEAN", False, allowed=(False,)),
                 SocketSpec("Instance Index", "INT", 0),
                 SocketSpec("Rotation", "ROTATION", (0.0, 0.0, 0.0)), SocketSpec("Scale", "VECTOR", (1.0, 1.0, 1.0))),
    outputs=fixed(SocketSpec("Instances", "GEOMETRY")),
    evaluate=_eval_instance,
))

register(NodeSpec(
    type="GeometryNodeRealizeInstances",
    inputs=fixed(SocketSpec("Geometry", "GEOMETRY"), SocketSpec("Selection", "BOOLEAN", True),
                 SocketSpec("Realize All", "BOOLEAN", True), SocketSpec("Depth", "INT", 0)),
    outputs=fixed(SocketSpec("Geometry", "GEOMETRY")),
    evaluate=lambda ctx, props, ins: {"Geometry": ins["Geometry"]},
))
