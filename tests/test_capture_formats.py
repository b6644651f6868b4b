"""splat.capture readers (tum original + CubeSLAM layouts, scannet, nerfstudio) and frame resampling, on
analytic captures of a known scene (tests/capture_fixtures.py): poses and intrinsics to 1e-6, depth in
metres equal to what was written, and the reader's errors.

Budget: ~2 s (small 80x60 frames, each layout written once per test).
"""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

from capture_fixtures import render, write_nerfstudio, write_scannet, write_tum_cubeslam, write_tum_original
from splat.capture import FORMATS, ReaderOptions, downscale_frame, list_capture, read_frame
from splat.capture.formats import quat_xyzw_to_matrix
from splat.capture.frames import CaptureFrame, warp_depth
from splat.errors import SplatError


def _depth_as_written(depth: np.ndarray, per_metre: float) -> np.ndarray:
    return (np.round(depth * per_metre) / per_metre).astype(np.float32)


def test_tum_cubeslam_layout_recovers_poses_intrinsics_depth_and_colour(tmp_path):
    cap = write_tum_cubeslam(tmp_path / "tum", 6)
    listing = list_capture("tum", tmp_path / "tum")
    assert listing.layout == "cubeslam" and [f.name for f in listing.frames] == [f"{i:04d}" for i in range(6)]
    for ref, pose, view in zip(listing.frames, cap.poses_world, cap.views):
        np.testing.assert_allclose(ref.c2w, pose, atol=1e-6)
        frame = read_frame(ref)
        np.testing.assert_allclose(frame.K, cap.K, atol=1e-12)
        assert frame.depth.dtype == np.float32 and frame.rgb.dtype == np.uint8
        np.testing.assert_allclose(frame.depth, _depth_as_written(view.depth, 5000), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(frame.rgb, np.round(view.rgb * 255).astype(np.uint8))


def test_tum_original_layout_associates_by_time_and_interpolates_poses(tmp_path):
    cap = write_tum_original(tmp_path / "tum", 5)
    with pytest.raises(SplatError, match=r"unmatched frame .*no depth map within 0.02 s.*--skip-unmatched"):
        list_capture("tum", tmp_path / "tum")
    listing = list_capture("tum", tmp_path / "tum", ReaderOptions(skip_unmatched=True))
    assert listing.layout == "tum" and len(listing.frames) == 5 and len(listing.unmatched) == 1
    for ref, pose, view in zip(listing.frames, cap.poses_world, cap.views):
        np.testing.assert_allclose(ref.c2w, pose, atol=1e-6)  # the midpoint of two turned, shifted samples
        assert ref.depth_path.name.startswith(f"{ref.timestamp + 0.005:.6f}")
        np.testing.assert_allclose(read_frame(ref).depth, _depth_as_written(view.depth, 5000), atol=1e-6)


def test_scannet_resamples_colour_onto_the_depth_camera(tmp_path):
    cap, K_c = write_scannet(tmp_path / "sn", 4)
    listing = list_capture("scannet", tmp_path / "sn")
    assert [f.name for f in listing.frames] == ["0", "1", "2", "3"]
    for ref, pose, view in zip(listing.frames, cap.poses_world, cap.views):
        np.testing.assert_allclose(ref.c2w, pose, atol=1e-6)
        frame = read_frame(ref)
        np.testing.assert_allclose(frame.K, cap.K, atol=1e-6)
        assert frame.rgb.shape == (60, 80, 3)
        np.testing.assert_allclose(frame.depth, _depth_as_written(view.depth, 1000), atol=1e-6)
        # the colour, seen through the depth camera, is the scene's wherever the scene is uniform around
        # the pixel (edges are filtered differently); the exact mapping is checked by the next test
        truth = np.round(view.rgb * 255)
        uniform = np.ones(truth.shape[:2], bool)
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                uniform &= np.all(np.roll(truth, (dy, dx), (0, 1)) == truth, axis=-1)
        uniform[:2] = uniform[-2:] = False
        uniform[:, :2] = uniform[:, -2:] = False
        diff = np.abs(frame.rgb.astype(float) - truth).max(-1)
        assert uniform.sum() > 500 and np.all(diff[uniform] <= 2)


def test_colour_warp_maps_pixel_centres_through_both_intrinsics():
    """A colour image linear in its pixel coordinates, seen through other intrinsics (same centre): the
    result is the same linear function of the mapped coordinates (bilinear and supersampling are exact)."""
    K_c = np.array([[141.0, 0.0, 80.5], [0.0, 142.5, 59.0], [0.0, 0.0, 1.0]])
    K_d = np.array([[70.0, 0.0, 40.5], [0.0, 71.0, 29.25], [0.0, 0.0, 1.0]])
    u, v = np.meshgrid(np.arange(160) + 0.5, np.arange(120) + 0.5)
    src = np.stack([u, v, np.full_like(u, 50.0)], -1).clip(0, 255).astype(np.uint8)
    from splat.capture.frames import warp_rgb

    out = warp_rgb(src, K_c, K_d, 80, 60).astype(float)
    ud, vd = np.meshgrid(np.arange(80) + 0.5, np.arange(60) + 0.5)
    uc = K_c[0, 0] * (ud - K_d[0, 2]) / K_d[0, 0] + K_c[0, 2]
    vc = K_c[1, 1] * (vd - K_d[1, 2]) / K_d[1, 1] + K_c[1, 2]
    inner = (uc > 3) & (uc < 157) & (vc > 3) & (vc < 117)  # away from the edge clamp (and u < 255)
    np.testing.assert_allclose(out[..., 0][inner], np.floor(uc)[inner], atol=1.0)
    np.testing.assert_allclose(out[..., 1][inner], np.floor(vc)[inner], atol=1.0)


def test_scannet_without_sizes_checks_frames_against_the_first_and_drops_inf_poses(tmp_path):
    write_scannet(tmp_path / "sn", 3, with_info=False)
    (tmp_path / "sn" / "pose" / "1.txt").write_text("-inf -inf -inf -inf\n" * 4)
    listing = list_capture("scannet", tmp_path / "sn")
    assert [f.pose_valid for f in listing.frames] == [True, False, True]
    iio.imwrite(tmp_path / "sn" / "depth" / "2.png", np.ones((30, 40), np.uint16))
    ref = list_capture("scannet", tmp_path / "sn").frames[2]
    with pytest.raises(SplatError, match="depth map of frame 2 is 40x30, its intrinsics are for 80x60"):
        read_frame(ref)


@pytest.mark.parametrize("npy", [False, True])
def test_nerfstudio_opengl_poses_and_smaller_depth_maps(tmp_path, npy):
    cap = write_nerfstudio(tmp_path / "ns", 3, depth_scale=2, npy=npy)
    listing = list_capture("nerfstudio", tmp_path / "ns")
    assert [f.name for f in listing.frames] == ["frame_00001", "frame_00002", "frame_00003"]
    for ref, pose, pose_f in zip(listing.frames, cap.poses_world, cap.poses_floor):
        np.testing.assert_allclose(ref.c2w, pose, atol=1e-6)  # OpenGL on disk, OpenCV in memory
        frame = read_frame(ref)
        np.testing.assert_allclose(frame.K, cap.K, atol=1e-12)  # the colour grid
        small_K = cap.K.copy()
        small_K[:2] /= 2
        small = _depth_as_written(render(pose_f, small_K, 40, 30).depth, 1000)
        np.testing.assert_allclose(frame.depth, np.repeat(np.repeat(small, 2, 0), 2, 1), atol=1e-6)


def test_downscale_scales_intrinsics_and_keeps_actual_readings():
    depth = np.zeros((4, 4), np.float32)
    depth[:2, :2] = [[1.0, 3.0], [1.0, 3.0]]  # a near and a far surface in one block: no 2 m blend
    depth[2:, 2:] = [[0.0, 2.0], [0.0, 0.0]]
    f = CaptureFrame("a", 0, np.full((4, 4, 3), 100, np.uint8), depth, np.diag([8.0, 8.0, 1.0]), np.eye(4))
    f.K[0, 2], f.K[1, 2] = 2.0, 2.0
    g = downscale_frame(f, 2)
    np.testing.assert_array_equal(g.depth, [[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(g.K, [[4.0, 0, 1.0], [0, 4.0, 1.0], [0, 0, 1]])
    assert g.rgb.shape == (2, 2, 3) and np.all(g.rgb == 100)
    # nearest-reading resampling onto a grid twice as fine repeats each reading
    np.testing.assert_array_equal(warp_depth(g.depth, g.K, f.K, 4, 4), np.repeat(np.repeat(g.depth, 2, 0), 2, 1))


def test_quaternion_convention_is_xyzw():
    r = quat_xyzw_to_matrix(np.array([0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)]))  # +90 deg about z
    np.testing.assert_allclose(r @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)


# ------------------------------------------------------------------------------------------- errors


def test_unknown_format_and_missing_source(tmp_path):
    with pytest.raises(SplatError, match=r"FORMAT: unknown capture format 'colmap' \(formats: tum, scannet"):
        list_capture("colmap", tmp_path)
    assert FORMATS == ("tum", "scannet", "nerfstudio")
    with pytest.raises(SplatError, match="capture folder not found"):
        list_capture("tum", tmp_path / "nope")
    with pytest.raises(SplatError, match="not a TUM capture"):
        list_capture("tum", tmp_path)
    with pytest.raises(SplatError, match="not a ScanNet export: no color/"):
        list_capture("scannet", tmp_path)
    with pytest.raises(SplatError, match="not a nerfstudio capture: no transforms.json"):
        list_capture("nerfstudio", tmp_path)


def test_tum_missing_and_unmatched_frames(tmp_path):
    write_tum_cubeslam(tmp_path / "a", 4)
    (tmp_path / "a" / "depth" / "0002_depth_raw.png").unlink()
    with pytest.raises(SplatError, match=r"unmatched frames, colour frames without a depth map: \[2\]"):
        list_capture("tum", tmp_path / "a")
    write_tum_cubeslam(tmp_path / "b", 4)
    lines = (tmp_path / "b" / "truth_cam_poses.txt").read_text().splitlines()
    (tmp_path / "b" / "truth_cam_poses.txt").write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(SplatError, match="unmatched frames: 4 frames but 3 poses"):
        list_capture("tum", tmp_path / "b")
    write_tum_cubeslam(tmp_path / "c", 4)
    for sub, stem in (("rgb", "0001_rgb_raw.png"), ("depth", "0001_depth_raw.png")):
        (tmp_path / "c" / sub / stem).unlink()
    with pytest.raises(SplatError, match=r"missing frames \[1\]"):
        list_capture("tum", tmp_path / "c")


def test_depth_size_all_zero_depth_and_non_rigid_pose(tmp_path):
    write_tum_cubeslam(tmp_path / "t", 3)
    iio.imwrite(tmp_path / "t" / "depth" / "0001_depth_raw.png", np.ones((30, 40), np.uint16))
    iio.imwrite(tmp_path / "t" / "depth" / "0002_depth_raw.png", np.zeros((60, 80), np.uint16))
    refs = list_capture("tum", tmp_path / "t").frames
    with pytest.raises(SplatError, match="depth map of frame 0001 is 40x30, its intrinsics are for 80x60"):
        read_frame(refs[1])
    with pytest.raises(SplatError, match="depth map of frame 0002 is all zero"):
        read_frame(refs[2])
    path = tmp_path / "t" / "truth_cam_poses.txt"
    lines = path.read_text().splitlines()
    vals = lines[1].split()
    vals[4:8] = ["0.5", "0", "0", "0"]
    path.write_text("\n".join([lines[0], "\t".join(vals)] + lines[2:]) + "\n")
    with pytest.raises(SplatError, match=r"line 2: pose is not rigid: its quaternion has norm 0.5"):
        list_capture("tum", tmp_path / "t")
    write_scannet(tmp_path / "s", 2)
    np.savetxt(tmp_path / "s" / "pose" / "1.txt", np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(SplatError, match="pose/1.txt: camera->world pose is not rigid"):
        list_capture("scannet", tmp_path / "s")
    write_nerfstudio(tmp_path / "n", 2)
    meta = json.loads((tmp_path / "n" / "transforms.json").read_text())
    meta["frames"][1]["transform_matrix"][0][0] = 3.0
    (tmp_path / "n" / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(SplatError, match=r"frames\[1\].transform_matrix: camera->world matrix is not rigid"):
        list_capture("nerfstudio", tmp_path / "n")


def test_nerfstudio_frame_without_depth_and_wrongly_shaped_depth(tmp_path):
    write_nerfstudio(tmp_path / "n", 2)
    meta = json.loads((tmp_path / "n" / "transforms.json").read_text())
    del meta["frames"][0]["depth_file_path"]
    (tmp_path / "n" / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(SplatError, match=r"frames\[0\].depth_file_path: missing frame data: .*needs depth"):
        list_capture("nerfstudio", tmp_path / "n")
    write_nerfstudio(tmp_path / "m", 2)
    iio.imwrite(tmp_path / "m" / "depth" / "frame_00002.png", np.ones((60, 60), np.uint16))
    ref = list_capture("nerfstudio", tmp_path / "m").frames[1]
    with pytest.raises(SplatError, match="depth map of frame frame_00002 is 60x60, which is not the shape"):
        read_frame(ref)
