"""Camera conventions: the OpenGL c2w <-> OpenCV viewmat conversion against hand-computed projections.

Budget: < 1 s.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from splat.data import Camera, intrinsics_matrix, load_scene, opengl_c2w_to_viewmat, viewmat_to_opengl_c2w
from splat.data.camera import rigidity_error
from splat.data.synthetic import look_at_c2w

# A camera at (0, -2, 0) looking along +Y with +Z up, in OpenGL axes (x right, y up, z back):
# columns x = +X, y = +Z, z = -Y, position (0, -2, 0).
C2W_GL = np.array([[1.0, 0.0, 0.0, 0.0],
                   [0.0, 0.0, -1.0, -2.0],
                   [0.0, 1.0, 0.0, 0.0],
                   [0.0, 0.0, 0.0, 1.0]])
K = intrinsics_matrix(100.0, 100.0, 32.0, 24.0)
# Hand computation: relative to the camera the point (0.49, 0, 0.25) is 0.49 right, 0.25 up, 2 ahead,
# so OpenCV camera coordinates are (0.49, -0.25, 2): u = 100 * 0.49 / 2 + 32 = 56.5,
# v = 100 * -0.25 / 2 + 24 = 11.5, the centre of pixel (row 11, column 56).
POINT = np.array([[0.49, 0.0, 0.25]])
UV = np.array([[56.5, 11.5]])


def test_viewmat_matches_hand_computation():
    viewmat = opengl_c2w_to_viewmat(C2W_GL)
    expected = np.array([[1.0, 0.0, 0.0, 0.0],
                         [0.0, 0.0, -1.0, 0.0],
                         [0.0, 1.0, 0.0, 2.0],
                         [0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(viewmat, expected, atol=1e-12)
    np.testing.assert_allclose(viewmat_to_opengl_c2w(viewmat), C2W_GL, atol=1e-12)


def test_known_point_lands_on_expected_pixel():
    cam = Camera.from_opengl_c2w(C2W_GL, K, 64, 48, "cam")
    uv, z = cam.project(POINT)
    np.testing.assert_allclose(uv, UV, atol=1e-12)
    np.testing.assert_allclose(z, [2.0], atol=1e-12)
    np.testing.assert_allclose(cam.center, [0.0, -2.0, 0.0], atol=1e-12)


def test_backproject_pixel_centre_recovers_point():
    cam = Camera.from_opengl_c2w(C2W_GL, K, 64, 48, "cam")
    depth = np.zeros((48, 64), np.float32)
    depth[11, 56] = 2.0  # z-depth, not ray length
    np.testing.assert_allclose(cam.backproject(depth), POINT, atol=1e-6)


def test_projection_through_loader(tmp_path):
    """The on-disk convention: a hand-written transforms.json puts the point on the same pixel."""
    import imageio.v3 as iio

    (tmp_path / "images").mkdir()
    iio.imwrite(tmp_path / "images" / "a.png", np.zeros((48, 64, 3), np.uint8))
    meta = {"fl_x": 100.0, "fl_y": 100.0, "cx": 32.0, "cy": 24.0, "w": 64, "h": 48,
            "frames": [{"file_path": "images/a.png", "transform_matrix": C2W_GL.tolist()}]}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    cam = load_scene(tmp_path).cameras[0]
    uv, _ = cam.project(POINT)
    np.testing.assert_allclose(uv, UV, atol=1e-9)


def test_look_at_faces_target():
    c2w = look_at_c2w([1.0, 2.0, 3.0], [0.1, -0.2, 0.3])
    assert rigidity_error(c2w) is None
    cam = Camera.from_opengl_c2w(c2w, K, 64, 48, "c")
    uv, z = cam.project(np.array([[0.1, -0.2, 0.3]]))
    np.testing.assert_allclose(uv, [[32.0, 24.0]], atol=1e-9)
    assert z[0] > 0


@pytest.mark.parametrize("matrix, words", [
    (np.diag([2.0, 1.0, 1.0, 1.0]), "not rigid"),
    (np.diag([0.0, 1.0, 1.0, 1.0]), "singular"),
    (np.diag([-1.0, 1.0, 1.0, 1.0]), "not rigid"),  # a reflection
    (np.full((4, 4), np.nan), "NaN"),
])
def test_rigidity_error(matrix, words):
    assert words in rigidity_error(matrix)


def test_agrees_with_gsplat_projection(tmp_path):
    """Our in-memory cameras are what gsplat takes: its (pure torch) projection puts means where ours does."""
    import torch

    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    if not hasattr(impl, "_fully_fused_projection"):
        pytest.skip("gsplat's torch projection moved")
    cam = Camera.from_opengl_c2w(look_at_c2w([1.5, -2.0, 1.2], [0.1, 0.0, 0.2]), K, 64, 48, "c")
    pts = np.random.default_rng(0).uniform(-0.3, 0.3, (20, 3))
    uv, z = cam.project(pts)
    means = torch.as_tensor(pts)
    covars = torch.eye(3, dtype=torch.float64).expand(20, 3, 3) * 1e-4
    _, means2d, depths, _, _ = impl._fully_fused_projection(
        means, covars, torch.as_tensor(cam.viewmat)[None], torch.as_tensor(cam.K)[None], 64, 48)
    np.testing.assert_allclose(means2d[0].numpy(), uv, atol=1e-9)
    np.testing.assert_allclose(depths[0].numpy(), z, atol=1e-9)


def test_random_poses_round_trip_and_reproject():
    rng = np.random.default_rng(5)
    for _ in range(20):
        eye = rng.normal(size=3) * 3
        c2w = look_at_c2w(eye, rng.normal(size=3) * 0.2)
        viewmat = opengl_c2w_to_viewmat(c2w)
        np.testing.assert_allclose(viewmat_to_opengl_c2w(viewmat), c2w, atol=1e-12)
        np.testing.assert_allclose(viewmat @ c2w @ np.diag([1.0, -1.0, -1.0, 1.0]), np.eye(4), atol=1e-12)
        cam = Camera(K, viewmat, 64, 48, "r")
        depth = rng.uniform(0.5, 4.0, (48, 64))
        pts = cam.backproject(depth)
        uv, z = cam.project(pts)
        rows, cols = np.divmod(np.arange(48 * 64), 64)
        np.testing.assert_allclose(uv, np.stack([cols + 0.5, rows + 0.5], 1), atol=1e-9)
        np.testing.assert_allclose(z, depth.reshape(-1), atol=1e-12)
