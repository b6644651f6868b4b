"""Geometry / Part: shape maps, realize() contract, masks (budget: < 5 s)."""

from __future__ import annotations

import math

import torch

from splat.geonodes import Geometry, Part, PrimitiveKey
from splat.geonodes.geometry import identity_transforms
from splat.maths import euler_xyz_matrix, loc_rot_scale

F64 = torch.float64


def part(kind, topo, shape, B=2, active=None):
    return Part(PrimitiveKey("T", kind, kind, topo), shape, identity_transforms(B, F64, "cpu"),
                torch.ones(B, dtype=torch.bool) if active is None else active)


def test_shape_map_times_canonical_is_local_for_affine_kinds():
    B = 2
    r = torch.tensor([0.5, 2.0], dtype=F64)
    parts = [
        part("cube", (3, 2, 2), {"size": torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 4.0]], dtype=F64)}),
        part("cylinder", (8, 2, 1, "NGON"), {"radius": r, "depth": r * 3}),
        part("uv_sphere", (6, 4), {"radius": r}),
        part("grid", (3, 3), {"size_x": r, "size_y": r + 1}),
        part("point", (), {}),
    ]
    for p in parts:
        assert p.affine
        S = p.shape_map
        assert S.shape == (B, 3, 3)
        local = p.canonical.verts.to(F64) @ S.transpose(1, 2)
        torch.testing.assert_close(local, p.local_verts())
    cone = part("cone", (8, 1, 1, "NGON", False, False), {"radius_top": r, "radius_bottom": r * 2, "depth": r})
    assert not cone.affine
    v = cone.local_verts()
    assert v[:, :, 2].min() == 0 and torch.allclose(v[:, :, 2].amax(1), r)
    # base ring has radius r_bottom, top ring r_top
    rad = v[:, :, :2].norm(dim=-1)
    torch.testing.assert_close(rad.amax(1), 2 * r)


def test_euler_xyz_order():
    rot = torch.tensor([[0.3, -0.7, 1.1]], dtype=F64)
    c, s = torch.cos(rot[0]), torch.sin(rot[0])
    rx = torch.tensor([[1, 0, 0], [0, c[0], -s[0]], [0, s[0], c[0]]], dtype=F64)
    ry = torch.tensor([[c[1], 0, s[1]], [0, 1, 0], [-s[1], 0, c[1]]], dtype=F64)
    rz = torch.tensor([[c[2], -s[2], 0], [s[2], c[2], 0], [0, 0, 1]], dtype=F64)
    torch.testing.assert_close(euler_xyz_matrix(rot)[0], rz @ ry @ rx)
    m = loc_rot_scale(torch.tensor([[1.0, 2.0, 3.0]], dtype=F64), torch.tensor([[0.0, 0.0, math.pi / 2]], dtype=F64),
                      torch.tensor([[2.0, 1.0, 1.0]], dtype=F64))
    p = m[0] @ torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=F64)
    torch.testing.assert_close(p[:3], torch.tensor([1.0, 4.0, 3.0], dtype=F64))


def test_realize_contract():
    B = 3
    cube = part("cube", (2, 2, 2), {"size": torch.ones(B, 3, dtype=F64)}, B, torch.tensor([True, False, True]))
    cyl = part("cylinder", (6, 1, 1, "NGON"), {"radius": torch.ones(B, dtype=F64), "depth": torch.ones(B, dtype=F64)}, B)
    move = loc_rot_scale(torch.tensor([[0.0, 0.0, 5.0]] * B, dtype=F64), torch.zeros(B, 3, dtype=F64),
                         torch.ones(B, 3, dtype=F64))
    geo = Geometry(B, (cube,)).join(Geometry(B, (cyl,)).transformed(move))
    m = geo.realize()
    V = 8 + 12
    F = 12 + (6 * 2 + 2 * 4)
    assert m.verts.shape == (B, V, 3) and m.verts.dtype == F64
    assert m.faces.shape == (F, 3) and m.faces.dtype == torch.long and int(m.faces.max()) == V - 1
    assert m.face_part.tolist() == [0] * 12 + [1] * 20 and m.vert_part.tolist() == [0] * 8 + [1] * 12
    assert m.vert_active.shape == (B, V) and m.face_active.shape == (B, F)
    assert m.vert_active[1].tolist() == [False] * 8 + [True] * 12
    assert m.n_polys.tolist() == [14, 8, 14]
    assert torch.allclose(m.verts[:, 8:, 2].mean(1), torch.full((B,), 5.0, dtype=F64))
    # masking drops parts inactive everywhere
    assert len(geo.masked(torch.tensor([False, True, False])).parts) == 1
    empty = Geometry.empty(2).realize()
    assert empty.verts.shape == (2, 0, 3) and empty.n_polys.tolist() == [0, 0]


def test_world_verts_gradients_flow_to_shape_and_transform():
    size = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64, requires_grad=True)
    t = torch.tensor([[0.5, 0.0, 0.0]], dtype=F64, requires_grad=True)
    p = part("cube", (2, 2, 2), {"size": size}, 1)
    p = p.with_transform(loc_rot_scale(t, torch.zeros(1, 3, dtype=F64), torch.ones(1, 3, dtype=F64)))
    p.world_verts()[..., 0].sum().backward()
    assert size.grad[0].tolist() == [0.0, 0.0, 0.0]  # +-0.5 * size cancels over the 8 corners
    assert t.grad[0].tolist() == [8.0, 0.0, 0.0]
