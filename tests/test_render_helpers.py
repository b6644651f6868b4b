"""Render-side helpers (splat.render: frames, cameras, colormap, video): turbo colormap, orbit cameras, camera files, video writing, view
rendering and panels.

Budget: < 5 s (tiny images, torch rasterizer backend).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from splat.data import Camera
from splat.errors import SplatError
from splat.maths import covariances_from_scales_quats, rgb_to_sh_dc
from splat.render.cameras import (
    bounds_sphere,
    load_camera_file,
    look_at_viewmat,
    orbit_cameras,
    orbit_distance,
    pinhole_K,
    stack_cameras,
)
from splat.render.colormap import colorize_alpha, colorize_depth, turbo
from splat.render.frames import Splats, ViewSettings, hstack, panel, render_views, shared_depth_range
from splat.render.video import count_frames, write_video


def test_turbo_endpoints_and_monotone_hue_path():
    c = turbo(np.linspace(0, 1, 256))
    assert c.shape == (256, 3) and c.min() >= 0 and c.max() <= 1
    # dark blue-violet at 0, green-yellow in the middle, dark red at 1
    assert c[0].max() < 0.2 and c[32, 2] > 0.9 and c[32, 2] > c[32, 0]
    assert c[128, 1] > 0.9
    assert c[-1, 0] > 0.4 and c[-1, 1] < 0.1 and c[-1, 2] < 0.05
    # no jumps: neighbouring entries differ by little
    assert np.abs(np.diff(c, axis=0)).max() < 0.05
    np.testing.assert_array_equal(turbo(np.array([-3.0, 7.0])), turbo(np.array([0.0, 1.0])))


def test_colorize_depth_masks_invalid_and_orders_near_far():
    d = np.array([[0.0, 1.3, 2.0, 3.0]])
    im = colorize_depth(d, near=1.0, far=3.0)
    assert im.dtype == np.uint8 and im.shape == (1, 4, 3)
    np.testing.assert_array_equal(im[0, 0], [0, 0, 0])  # no reading -> background
    assert im[0, 1, 2] > im[0, 1, 0] and im[0, 3, 0] > im[0, 3, 2]  # near bluish, far reddish
    auto = colorize_depth(np.full((2, 2), 5.0))  # constant depth: no division by zero
    assert np.isfinite(auto).all()
    np.testing.assert_array_equal(colorize_alpha(np.array([[0.0, 1.0]]))[0, :, 0], [0, 255])


def test_look_at_is_opencv_and_orbit_circles_the_centre():
    eye, target = np.array([0.0, -2.0, 0.0]), np.zeros(3)
    V = look_at_viewmat(eye, target)
    cam = Camera(K=pinhole_K(64, 48, 60.0), viewmat=V, width=64, height=48, name="c")
    uv, z = cam.project(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.5, 0.0, 0.0]]))
    np.testing.assert_allclose(uv[0], [32, 24])  # target at the image centre
    assert uv[1, 1] < 24  # world +Z is image up (smaller v)
    assert uv[2, 0] > 32  # world +X is image right when looking along +Y
    np.testing.assert_allclose(z[0], 2.0)
    np.testing.assert_allclose(cam.center, eye, atol=1e-12)
    cams = orbit_cameras(np.array([1.0, 2.0, 0.5]), 3.0, 8, width=32, height=32, elevation_deg=30)
    assert len(cams) == 8 and len({c.name for c in cams}) == 8
    for c in cams:
        np.testing.assert_allclose(np.linalg.norm(c.center - [1.0, 2.0, 0.5]), 3.0)
        np.testing.assert_allclose(c.center[2] - 0.5, 3.0 * np.sin(np.radians(30)))
        assert c.project(np.array([[1.0, 2.0, 0.5]]))[0][0] == pytest.approx([16, 16])
    straight_down = look_at_viewmat(np.array([0, 0, 5.0]), np.zeros(3))  # view parallel to up
    assert np.isfinite(straight_down).all()
    with pytest.raises(SplatError):
        orbit_cameras(np.zeros(3), 1.0, 0, width=8, height=8)


def test_orbit_distance_fits_the_sphere_and_bounds_are_robust():
    d = orbit_distance(1.0, 60.0, 100, 50, margin=1.0)
    half_v = np.arctan(np.tan(np.radians(30)) * 0.5)
    assert d == pytest.approx(1.0 / np.sin(half_v))
    pts = np.random.default_rng(0).uniform(-1, 1, (5000, 3))
    pts[0] = 1e6  # one outlier
    c, r = bounds_sphere(pts)
    assert np.abs(c).max() < 0.05 and r == pytest.approx(np.sqrt(3), rel=0.05)


def test_camera_file_round_trips_scene_cameras(tmp_path):
    cams = orbit_cameras(np.zeros(3), 2.0, 3, width=40, height=30, fov_deg=50)
    meta = {"fl_x": cams[0].K[0, 0], "fl_y": cams[0].K[1, 1], "cx": 20.0, "cy": 15.0, "w": 40, "h": 30,
            "frames": [{"transform_matrix": c.c2w_opengl.tolist(), "name": c.name} for c in cams[:2]]
            + [{"transform_matrix": cams[2].c2w_opengl.tolist()}]}
    (tmp_path / "cams.json").write_text(json.dumps(meta))
    back = load_camera_file(tmp_path / "cams.json")
    assert [c.name for c in back] == [cams[0].name, cams[1].name, "view_0002"]
    for a, b in zip(cams, back):
        np.testing.assert_allclose(b.viewmat, a.viewmat, atol=1e-12)
        np.testing.assert_allclose(b.K, a.K)
    v, k = stack_cameras(back)
    assert v.shape == (3, 4, 4) and k.shape == (3, 3, 3) and v.dtype == torch.float32
    meta["frames"][1]["transform_matrix"] = [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    (tmp_path / "bad.json").write_text(json.dumps(meta))
    with pytest.raises(SplatError) as e:
        load_camera_file(tmp_path / "bad.json")
    assert e.value.field == "frames[1].transform_matrix"
    with pytest.raises(SplatError):
        load_camera_file(tmp_path / "missing.json")


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_has_the_right_frame_count(tmp_path, suffix):
    frames = np.random.default_rng(0).integers(0, 255, (9, 31, 45, 3), dtype=np.uint8)
    path = write_video(tmp_path / f"v{suffix}", frames, fps=12)
    assert count_frames(path) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"v{suffix}"]  # no temp file left


def test_video_bad_input(tmp_path):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(SplatError, match="unsupported video format"):
        write_video(tmp_path / "v.avi", frames)
    with pytest.raises(ValueError):
        write_video(tmp_path / "v.gif", frames.astype(np.float32))
    assert list(tmp_path.iterdir()) == []


def _two_blobs() -> Splats:
    """Two opaque round Gaussians: a red one at x = -0.3 (z = 0) and a blue one at x = +0.3 (z = 0.2)."""
    means = torch.tensor([[-0.3, 0.0, 0.0], [0.3, 0.0, 0.2]])
    cov = covariances_from_scales_quats(torch.full((2, 3), 0.1), torch.tensor([[1.0, 0, 0, 0]] * 2))
    sh = rgb_to_sh_dc(torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]))[:, None]
    return Splats(means, cov, torch.tensor([0.99, 0.99]), sh)


def test_render_views_rgb_depth_alpha_and_panels():
    cam = Camera(K=pinhole_K(48, 32, 60.0), viewmat=look_at_viewmat(np.array([0, -2.0, 0.1]), np.array([0, 0, 0.1])),
                 width=48, height=32, name="front")
    (view,) = render_views(_two_blobs(), [cam], ViewSettings(background=(1, 1, 1), backend="torch"))
    assert view.name == "front" and view.rgb.shape == (32, 48, 3) and view.depth.shape == (32, 48)
    uv, z = cam.project(np.array([[-0.3, 0, 0], [0.3, 0, 0.2]]))
    (ur, vr), (ub, vb) = np.floor(uv).astype(int)
    assert view.rgb[vr, ur, 0] > 0.8 and view.rgb[vr, ur, 2] < 0.3  # red blob
    assert view.rgb[vb, ub, 2] > 0.8 and view.rgb[vb, ub, 0] < 0.3  # blue blob
    assert view.alpha[vr, ur] > 0.9 and view.alpha[0, 0] < 0.01
    np.testing.assert_allclose(view.rgb[0, 0], [1, 1, 1], atol=0.02)  # background
    assert view.depth[vr, ur] == pytest.approx(z[0], abs=0.05) and view.depth[0, 0] == 0
    near, far = shared_depth_range([view])
    assert 1.5 < near <= far < 2.5
    row = panel(view, ("rgb", "depth", "alpha"), target=np.zeros((32, 48, 3), np.float32), near=near, far=far)
    assert row.shape == (32, 48 * 4, 3) and row.dtype == np.uint8
    assert hstack([row[:, :10], row[:20, :5]], gap=2).shape == (32, 17, 3)
    empty = Splats(torch.zeros(0, 3), torch.zeros(0, 3, 3), torch.zeros(0), torch.zeros(0, 1, 3))
    (ev,) = render_views(empty, [cam])
    assert ev.alpha.max() == 0 and ev.rgb.min() == 1.0
