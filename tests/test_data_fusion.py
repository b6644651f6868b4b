"""Depth fusion, voxel downsampling and point-cloud PLY files.

Budget: < 2 s.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from splat.data import fuse_depth, load_scene, read_ply_points, voxel_downsample, write_ply_points
from splat.data.synthetic import write_plane_scene
from splat.errors import SplatError


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = {}
    for fmt in ("png", "npy"):
        root = tmp_path_factory.mktemp(fmt)
        write_plane_scene(root, n_views=3, n_test=1, depth_format=fmt)
        out[fmt] = load_scene(root)
    return out


@pytest.mark.parametrize("fmt, tol", [("png", 1e-3), ("npy", 1e-5)])
def test_fused_points_lie_on_plane_inside_mask(scenes, fmt, tol):
    scene = scenes[fmt]
    pts = fuse_depth(scene)
    assert pts.dtype == torch.float32 and pts.ndim == 2 and pts.shape[1] == 3
    assert len(pts) == sum(int(m.sum()) for m in scene.masks)
    assert pts[:, 2].abs().max() < tol  # the plane z = 0
    assert pts[:, :2].abs().max() < 0.5 + 0.02  # the masked square |x|, |y| <= 0.5
    assert pts[:, :2].abs().max() > 0.45  # and it covers the square


def test_without_masks_more_points_still_on_plane(scenes):
    scene = scenes["npy"]
    masked, unmasked = fuse_depth(scene), fuse_depth(scene, use_masks=False)
    assert len(unmasked) > len(masked)
    assert unmasked[:, 2].abs().max() < 1e-5


def test_frame_selection(scenes):
    scene = scenes["npy"]
    n_test = len(fuse_depth(scene, "test"))
    assert n_test == int(scene.masks[2].sum())
    assert len(fuse_depth(scene, [0, 1])) + n_test == len(fuse_depth(scene))


def test_voxel_downsample_fusion(scenes):
    scene = scenes["npy"]
    full = fuse_depth(scene)
    down = fuse_depth(scene, voxel_size=0.1)
    assert 0 < len(down) < len(full)
    assert down[:, 2].abs().max() < 1e-5  # means of points on the plane stay on it
    keys = torch.floor(down.double() / 0.1)
    assert len(torch.unique(keys, dim=0)) == len(down)  # one point per voxel


def test_voxel_downsample_means():
    pts = np.array([[0.01, 0.01, 0.01], [0.03, 0.05, 0.07], [0.51, 0.0, 0.0], [-0.01, 0.0, 0.0]])
    out = voxel_downsample(pts, 0.1)
    expected = np.array([[-0.01, 0.0, 0.0], [0.02, 0.03, 0.04], [0.51, 0.0, 0.0]])
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert voxel_downsample(np.zeros((0, 3)), 0.1).shape == (0, 3)
    with pytest.raises(ValueError):
        voxel_downsample(pts, 0.0)


def test_ply_round_trip_and_scan_path(scenes, tmp_path):
    pts = fuse_depth(scenes["png"])
    write_ply_points(tmp_path / "scan.ply", pts)
    back = read_ply_points(tmp_path / "scan.ply")
    torch.testing.assert_close(back, pts)
    assert scenes["png"].scan_path is None


def test_ply_reads_trimesh_mesh_vertices(tmp_path):
    import trimesh

    box = trimesh.creation.box()
    box.export(tmp_path / "box.ply")
    pts = read_ply_points(tmp_path / "box.ply")
    np.testing.assert_allclose(np.sort(pts.numpy(), axis=0), np.sort(box.vertices, axis=0), atol=1e-6)


def test_ply_errors(tmp_path):
    with pytest.raises(SplatError, match="does not exist"):
        read_ply_points(tmp_path / "none.ply")
    (tmp_path / "bad.ply").write_bytes(b"garbage")
    with pytest.raises(SplatError, match="cannot read"):
        read_ply_points(tmp_path / "bad.ply")
    from plyfile import PlyData, PlyElement

    face = np.zeros(1, dtype=[("a", "i4")])
    PlyData([PlyElement.describe(face, "face")]).write(str(tmp_path / "noverts.ply"))
    with pytest.raises(SplatError) as info:
        read_ply_points(tmp_path / "noverts.ply")
    assert info.value.field == "vertex"
