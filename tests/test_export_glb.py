"""splat.export.glb: instanced GLB export of program geometry (one mesh per canonical primitive).

Budget: < 3 s. Geometry is built by hand from splat.geonodes parts (no program needed).
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from splat.errors import SplatError
from splat.export.glb import ROOT_NODE, Z_UP_TO_Y_UP, key_name, part_colors, write_glb
from splat.geonodes.geometry import Geometry, Part
from splat.maths import loc_rot_scale, rgb_to_sh_dc
from splat.geonodes.primitives import PrimitiveKey

LEG = PrimitiveKey("Chair", "Leg", "cube", (2, 2, 2))
SEAT = PrimitiveKey("Chair", "Seat", "cube", (2, 2, 2))
POST = PrimitiveKey("Chair", "Post", "cylinder", (8, 1, 1, "NGON"))
CONE = PrimitiveKey("Chair", "Knob", "cone", (8, 1, 1, "NGON", False, False))


def _xf(loc, rot=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0)):
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    return loc_rot_scale(t(loc), t(rot), t(scale))


def _chair(with_inactive: bool = True) -> Geometry:
    yes, no = torch.tensor([True]), torch.tensor([False])
    parts = []
    for i, (x, y) in enumerate([(-0.2, -0.2), (0.2, -0.2), (-0.2, 0.2), (0.2, 0.2)]):
        parts.append(Part(LEG, {"size": torch.tensor([[0.04, 0.04, 0.4]], dtype=torch.float64)},
                          _xf((x, y, 0.2), (0.0, 0.0, 0.3 * i), (1.0, 1.0, 1.0 + 0.1 * i)), yes))
    parts.append(Part(SEAT, {"size": torch.tensor([[0.5, 0.5, 0.05]], dtype=torch.float64)}, _xf((0, 0, 0.42)), yes))
    parts.append(Part(POST, {"radius": torch.tensor([0.1], dtype=torch.float64),
                             "depth": torch.tensor([0.3], dtype=torch.float64)}, _xf((0, 0.2, 0.6), (0.3, 0, 0)), yes))
    parts.append(Part(CONE, {"radius_top": torch.tensor([0.02], dtype=torch.float64),
                             "radius_bottom": torch.tensor([0.05], dtype=torch.float64),
                             "depth": torch.tensor([0.1], dtype=torch.float64)}, _xf((0.1, 0.1, 0.5)), yes))
    if with_inactive:  # a fifth leg this batch element does not have
        parts.append(Part(LEG, {"size": torch.tensor([[0.04, 0.04, 0.4]], dtype=torch.float64)}, _xf((0, 0, 0.2)), no))
    return Geometry(1, tuple(parts))


def _gltf_json(path) -> dict:
    data = path.read_bytes()
    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2
    length, kind = struct.unpack_from("<I4s", data, 12)
    assert kind == b"JSON"
    return json.loads(data[20:20 + length])


def test_glb_keeps_instancing(tmp_path):
    geo = _chair()
    summary = write_glb(tmp_path / "mesh.glb", geo, {LEG: (1.0, 0.0, 0.0), SEAT: (0.0, 0.5, 1.0)})
    # 3 shared meshes (leg, seat, post) + 1 own mesh for the non-affine cone; 7 active part nodes
    assert summary.meshes == 4 and summary.nodes == 7
    gj = _gltf_json(tmp_path / "mesh.glb")
    assert len(gj["meshes"]) == 4
    mesh_nodes = [n for n in gj["nodes"] if "mesh" in n]
    assert len(mesh_nodes) == 7
    leg_mesh = [i for i, m in enumerate(gj["meshes"]) if m.get("name") == key_name(LEG)]
    assert len(leg_mesh) == 1
    assert sum(n["mesh"] == leg_mesh[0] for n in mesh_nodes) == 4  # four legs, one mesh
    root = [n for n in gj["nodes"] if n.get("name") == ROOT_NODE]
    assert len(root) == 1 and len(root[0]["children"]) == 7
    # a material per primitive, coloured as asked
    mats = gj["materials"]
    leg_mat = mats[gj["meshes"][leg_mesh[0]]["primitives"][0]["material"]]
    np.testing.assert_allclose(leg_mat["pbrMetallicRoughness"]["baseColorFactor"][:3], [1, 0, 0], atol=1 / 255)
    seat_mesh = [m for m in gj["meshes"] if m.get("name") == key_name(SEAT)][0]
    seat_mat = mats[seat_mesh["primitives"][0]["material"]]
    # sRGB 0.5 is linear 0.214 (glTF colour factors are linear)
    np.testing.assert_allclose(seat_mat["pbrMetallicRoughness"]["baseColorFactor"][:3], [0, 0.2140, 1], atol=1 / 255)


def test_glb_reloads_to_our_world_geometry(tmp_path):
    geo = _chair(with_inactive=False)
    write_glb(tmp_path / "mesh.glb", geo)
    scene = trimesh.load(tmp_path / "mesh.glb")
    assert isinstance(scene, trimesh.Scene)
    assert len(scene.geometry) == 4 and len(scene.graph.nodes_geometry) == 7
    verts = []
    for node in scene.graph.nodes_geometry:
        M, name = scene.graph[node]
        v = np.asarray(scene.geometry[name].vertices, dtype=np.float64)
        verts.append(v @ M[:3, :3].T + M[:3, 3])
    got = np.concatenate(verts) @ np.linalg.inv(Z_UP_TO_Y_UP)[:3, :3].T  # back to +Z up
    ref = torch.cat([p.world_verts()[0] for p in geo.parts]).numpy()
    assert got.shape == ref.shape
    d1, _ = cKDTree(ref).query(got)
    d2, _ = cKDTree(got).query(ref)
    assert max(d1.max(), d2.max()) < 1e-6  # float32 storage in glTF
    # +Z up in our world is +Y up in glTF: the seat (z = 0.42) is high in y
    assert got[:, 2].max() > 0.4 and (np.concatenate(verts)[:, 1].max() > 0.4)


def test_part_colors_average_the_gaussians():
    geo = _chair(with_inactive=False)

    class W:  # the fields of splat.gaussians.WorldGaussians that part_colors reads
        means = torch.zeros(5, 3)
        sh = rgb_to_sh_dc(torch.tensor([[1.0, 0, 0], [0.0, 0, 1], [0.0, 0, 1], [0, 1.0, 0], [0.2, 0.2, 0.2]]))[:, None]
        opacities = torch.tensor([1.0, 0.5, 0.5, 1.0, 1.0])
        part = torch.tensor([0, 3, 3, 4, 1])  # legs 0/3 and 1 share a key

    cols = part_colors(geo, W)
    assert set(cols) == {LEG, SEAT}
    # opacity-weighted: red (w 1), blue (w 0.5) twice, grey (w 1) -> (1 + 0.2, 0.2, 1 + 0.2) / 3
    np.testing.assert_allclose(cols[LEG], [1.2 / 3, 0.2 / 3, 1.2 / 3], atol=1e-6)
    np.testing.assert_allclose(cols[SEAT], [0, 1, 0], atol=1e-6)


def test_glb_of_empty_geometry_is_a_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(SplatError, match="no active surface"):
        write_glb(tmp_path / "e.glb", Geometry(1, ()))
    inactive = Geometry(1, tuple(p.with_active(torch.tensor([False])) for p in _chair().parts))
    with pytest.raises(SplatError, match="no active surface"):
        write_glb(tmp_path / "e.glb", inactive)
    assert list(tmp_path.iterdir()) == []
