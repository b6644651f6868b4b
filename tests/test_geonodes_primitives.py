"""Canonical primitive meshes: Blender's vertex layouts and polygon counts (budget: < 5 s; the bpy
comparison is marked `blender`)."""

from __future__ import annotations

import math

import pytest
import torch

from splat.geonodes.primitives import PrimitiveKey, canonical_mesh


def mesh(kind, *topo):
    return canonical_mesh(PrimitiveKey("T", "N", kind, tuple(topo)))


def test_cube_layout_and_counts():
    m = mesh("cube", 2, 2, 2)
    assert m.verts.shape == (8, 3) and m.n_polys == 6 and m.faces.shape == (12, 3)
    assert m.verts[0].tolist() == [-0.5, -0.5, -0.5] and m.verts[1].tolist() == [0.5, -0.5, -0.5]
    m = mesh("cube", 3, 2, 4)  # surface lattice only, z-major then y then x
    assert m.verts.shape == (24, 3) and m.n_polys == 2 * (2 * 1 + 1 * 3 + 2 * 3)
    m = mesh("cube", 4, 4, 4)
    assert m.verts.shape == (4**3 - 2**3, 3) and m.n_polys == 6 * 9
    m = mesh("cube", 1, 3, 3)  # flattened: a grid in the yz plane
    assert m.verts.shape == (9, 3) and m.n_polys == 4 and (m.verts[:, 0] == 0).all()
    m = mesh("cube", 1, 1, 4)  # a line, no faces
    assert m.verts.shape == (4, 3) and m.n_polys == 0


def test_faces_are_outward_for_cube():
    m = mesh("cube", 3, 3, 3)
    v = m.verts[m.faces]
    n = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
    centre = v.mean(1)
    assert ((n * centre).sum(-1) > 0).all()


def test_cylinder_and_cone_layouts():
    m = mesh("cylinder", 5, 2, 2, "NGON")
    assert m.verts.shape == (25, 3) and m.n_polys == 22
    assert m.verts[:, 2].max() == 0.5 and m.verts[:, 2].min() == -0.5
    assert torch.allclose(m.verts[0], torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64))  # inner top fill ring
    assert mesh("cylinder", 5, 2, 2, "TRIANGLE_FAN").verts.shape == (27, 3)
    assert mesh("cylinder", 5, 2, 2, "TRIANGLE_FAN").n_polys == 30
    assert mesh("cylinder", 5, 2, 1, "NONE").n_polys == 10
    c = mesh("cone", 4, 1, 1, "NGON", True, False)  # pointed top: apex + ring + bottom cap
    assert c.verts.shape == (5, 3) and c.n_polys == 5 and c.verts[0].tolist() == [0.0, 0.0, 1.0]
    assert mesh("cone", 4, 1, 1, "TRIANGLE_FAN", True, False).n_polys == 8
    assert mesh("cone", 4, 3, 1, "NONE", True, True).n_polys == 0  # both ends points: a line


def test_uv_sphere_and_grid():
    s = mesh("uv_sphere", 5, 4)
    assert s.verts.shape == (17, 3) and s.n_polys == 20
    assert torch.allclose(s.verts.norm(dim=1), torch.ones(17, dtype=torch.float64))
    assert s.verts[1, 2].item() == pytest.approx(math.cos(math.pi / 4))
    g = mesh("grid", 3, 4)
    assert g.verts.shape == (12, 3) and g.n_polys == 6
    assert g.verts[1].tolist() == pytest.approx([-0.5, -1 / 6, 0.0])


def test_face_poly_maps_triangles_to_polygons():
    m = mesh("cylinder", 6, 1, 1, "NGON")
    assert m.face_poly.max().item() == m.n_polys - 1
    assert (torch.bincount(m.face_poly) >= 1).all()


@pytest.mark.blender
def test_layouts_match_blender():
    import bpy
    import numpy as np

    bpy.ops.wm.read_factory_settings(use_empty=True)
    obj = bpy.data.objects.new("o", bpy.data.meshes.new("m"))
    bpy.context.scene.collection.objects.link(obj)

    def blender(idname, inputs, props):
        ng = bpy.data.node_groups.new("t", "GeometryNodeTree")
        ng.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
        out, n = ng.nodes.new("NodeGroupOutput"), ng.nodes.new(idname)
        for k, v in props.items():
            setattr(n, k, v)
        names = [s.name for s in n.inputs]
        for k, v in inputs.items():
            n.inputs[names.index(k)].default_value = v
        ng.links.new(n.outputs[0], out.inputs[0])
        obj.modifiers.clear()
        obj.modifiers.new("gn", "NODES").node_group = ng
        ev = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
        me = ev.to_mesh()
        v = np.array([x.co[:] for x in me.vertices]).reshape(-1, 3)
        f = len(me.polygons)
        ev.to_mesh_clear()
        return torch.tensor(v, dtype=torch.float64), f

    cases = [
        ("GeometryNodeMeshCube", {"Vertices X": 3, "Vertices Y": 2, "Vertices Z": 4, "Size": (1.0, 2.0, 3.0)}, {},
         "cube", (3, 2, 4), lambda v: v * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)),
        ("GeometryNodeMeshCube", {"Vertices X": 1, "Vertices Y": 3, "Vertices Z": 2}, {}, "cube", (1, 3, 2), lambda v: v),
        ("GeometryNodeMeshCylinder", {"Vertices": 7, "Side Segments": 3, "Fill Segments": 2, "Radius": 0.5, "Depth": 2.0},
         {"fill_type": "TRIANGLE_FAN"}, "cylinder", (7, 3, 2, "TRIANGLE_FAN"),
         lambda v: v * torch.tensor([0.5, 0.5, 2.0], dtype=torch.float64)),
        ("GeometryNodeMeshCone", {"Vertices": 6, "Side Segments": 2, "Fill Segments": 3, "Radius Top": 0.25,
                                  "Radius Bottom": 1.0, "Depth": 2.0}, {"fill_type": "NGON"},
         "cone", (6, 2, 3, "NGON", False, False),
         lambda v: torch.cat([v[:, :2] * (1.0 - 0.75 * v[:, 2:]), 2.0 * v[:, 2:]], 1)),
        ("GeometryNodeMeshUVSphere", {"Segments": 7, "Rings": 5, "Radius": 1.5}, {}, "uv_sphere", (7, 5), lambda v: 1.5 * v),
        ("GeometryNodeMeshGrid", {"Vertices X": 4, "Vertices Y": 2, "Size X": 2.0, "Size Y": 0.5}, {}, "grid", (4, 2),
         lambda v: v * torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64)),
    ]
    for idname, inputs, props, kind, topo, size in cases:
        bv, bf = blender(idname, inputs, props)
        m = mesh(kind, *topo)
        ours = size(m.verts)
        assert ours.shape == bv.shape and m.n_polys == bf, idname
        d = torch.cdist(ours, bv)
        assert d.min(1).values.max() < 1e-5 and d.min(0).values.max() < 1e-5, idname
