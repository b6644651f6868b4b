"""Capture-like scenes (``splat make-scene --capture``, splat.blender.scene_capture / scene_clutter / plan_loop).

The pure parts (loop, clutter layout, pose noise, exposure, validation) run without bpy. One tiny scene
(160x120, 8 frames, 4 samples) is rendered once per module and checked against what the options claim:
written poses off the true ones by exactly the requested amounts, JPEG colour, depth of everything with
the clutter and walls in it outside the object's box, the truth masks; then ``splat import nerfstudio``
must isolate the right object (mask IoU against the rendered truth masks).

Budget: ~3 s without bpy; ~35 s with it on 2 busy cores (render ~15 s, import ~10 s).
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from splat.blender.scene_cameras import CameraSettings, LoopSettings, plan_loop
from splat.errors import SplatError

LO, HI = np.array([-0.3, -0.25, 0.0]), np.array([0.3, 0.25, 0.9])


def _angle_deg(r: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)))


# ------------------------------------------------------------------------------------ pure numpy


def test_loop_is_hand_held_around_the_object():
    cams = CameraSettings(width=320, height=240, focal_mm=30.0)
    loop = LoopSettings(n_views=40)
    views = plan_loop(LO, HI, cams, loop, np.random.default_rng(0))
    centre = (LO + HI) / 2
    assert [v.name for v in views] == [f"frame_{i:04d}" for i in range(40)]
    az = []
    for v in views:
        d = v.center - centre
        assert 1.2 - 1e-9 <= np.linalg.norm(d[:2]) <= 1.8 * 1.03 ** 3  # backed off rarely, if at all
        assert 0.9 <= v.center[2] <= 1.5 * 1.03 ** 3
        uv, z = v.project(np.array([LO, HI, centre]))
        assert np.all(z > 0) and np.all((uv >= 0) & (uv <= [320, 240]))  # the object is in view
        # aimed near the centre (jitter 5 cm): the centre projects near the image centre
        assert np.linalg.norm(uv[2] - [160, 120]) < 60
        az.append(math.atan2(d[1], d[0]))
    steps = np.diff(np.unwrap(az))
    assert np.all(np.sign(steps) == np.sign(steps[0]))  # one direction, one full turn
    assert abs(abs(np.unwrap(az)[-1] - az[0]) - 2 * math.pi * 39 / 40) < 0.5
    rolls = []
    for v in views:  # roll: the angle between image x and the horizontal plane
        x_axis = v.viewmat[0, :3]
        rolls.append(math.degrees(math.asin(abs(x_axis[2]))))
    assert max(rolls) <= 3.0 + 1e-6 and max(rolls) > 0.5
    with pytest.raises(SplatError, match="loop.distance"):
        plan_loop(LO, HI, cams, LoopSettings(distance=(2.0, 1.0)), np.random.default_rng(0))


def test_pose_noise_is_exact():
    from splat.blender.scene_capture import perturb_pose, random_rigid

    rng = np.random.default_rng(1)
    for _ in range(20):
        c2w = random_rigid(rng)
        noisy = perturb_pose(c2w, 0.01, 0.5, rng)
        assert abs(np.linalg.norm(noisy[:3, 3] - c2w[:3, 3]) - 0.01) < 1e-12
        assert abs(_angle_deg(noisy[:3, :3] @ c2w[:3, :3].T) - 0.5) < 1e-6
        np.testing.assert_allclose(noisy[:3, :3] @ noisy[:3, :3].T, np.eye(3), atol=1e-12)
        assert np.linalg.det(noisy[:3, :3]) > 0


def test_exposure_gains_and_their_application():
    from splat.blender.scene_capture import apply_gain, linear_to_srgb, srgb_to_linear, view_gains

    g = view_gains(500, 0.3, 0.05, np.random.default_rng(2))
    mean = g.mean(axis=1)
    assert np.all((mean >= 0.7 - 1e-9) & (mean <= 1.3 + 1e-9))
    assert mean.min() < 0.75 and mean.max() > 1.25  # the whole range is used
    ratio = g.max(axis=1) / g.min(axis=1)  # white balance: channels differ by at most (1 + 0.05) / (1 - 0.05)
    assert np.all(ratio <= 1.05 / 0.95 + 1e-9) and ratio.max() > 1.07
    x = np.random.default_rng(3).random((8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    np.testing.assert_allclose(apply_gain(x, [1, 1, 1]), x, atol=1e-5)
    half = apply_gain(x, [0.5, 0.5, 0.5])
    np.testing.assert_allclose(srgb_to_linear(half), 0.5 * srgb_to_linear(x), atol=1e-5)  # gain on linear light
    assert apply_gain(x, [3.0, 3.0, 3.0]).max() <= 1.0  # clipped like a sensor


def test_clutter_layout_keeps_clear_of_the_object():
    from splat.blender.scene_clutter import plan_clutter, plan_walls, rect_circle_gap

    rng = np.random.default_rng(4)
    walls = plan_walls(np.zeros(2), 4.0, 2, rng)
    assert len(walls) == 2 and abs(walls[0].direction @ walls[1].direction) < 1e-12  # a corner
    items = plan_clutter(LO, HI, 8, ("table", "bookshelf"), 1.8, walls, rng, gap=0.25, room_radius=4.0)
    assert len(items) >= 6
    kinds = {it.kind for it in items}
    assert "program" in kinds and kinds & {"box", "cylinder"}
    for i, it in enumerate(items):
        assert rect_circle_gap(LO[:2], HI[:2], it.centre, it.radius) >= 0.25
        xy = it.mesh.verts[:, :2]
        assert np.linalg.norm(xy - it.centre, axis=1).max() <= it.radius + 1e-9  # the circle bounds the mesh
        assert abs(it.mesh.verts[:, 2].min()) < 1e-9  # on the floor
        for w in walls:
            assert (xy @ w.direction).max() < w.distance
        for other in items[i + 1:]:
            assert np.linalg.norm(it.centre - other.centre) >= it.radius + other.radius
        if it.kind == "program":
            assert np.linalg.norm(it.centre) - it.radius > 1.8  # outside the cameras' loop
        else:
            assert it.height <= 0.6 + 1e-9  # below every camera


def test_capture_settings_validated():
    from splat.blender.scene_capture import CaptureSettings, validate_capture_settings

    validate_capture_settings(CaptureSettings())
    for bad, field in [(dict(walls=3), "capture.walls"), (dict(exposure=1.5), "capture.exposure"),
                       (dict(pose_noise_m=-0.01), "capture.pose_noise_m"),
                       (dict(jpeg_quality=101), "capture.jpeg_quality"),
                       (dict(clutter_programs=("no_such_program",)), "capture.clutter_programs"),
                       (dict(clutter=-1), "capture.clutter")]:
        with pytest.raises(SplatError) as err:
            validate_capture_settings(CaptureSettings(**bad))
        assert err.value.field == field


def test_cli_bad_capture_options_one_error_line(tmp_path):
    from splat.commands.make_scene import main

    r = subprocess.run([sys.executable, "-m", "splat", "make-scene", "--program", "chair", "--clutter", "3",
                        "--out", str(tmp_path / "a")], capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr  # a capture option without --capture
    assert len(lines) == 1 and lines[0].startswith("error: --clutter: ") and "--capture" in lines[0], r.stderr
    for argv, field in [(["--walls", "3"], "capture.walls"), (["--exposure", "-0.1"], "capture.exposure"),
                        (["--pose-noise-deg", "30"], "capture.pose_noise_deg"),
                        (["--jpeg-quality", "101"], "capture.jpeg_quality"), (["--n-views", "1"], "loop.n_views")]:
        with pytest.raises(SplatError) as err:  # checked before Blender starts: nothing written
            main(["--program", "chair", "--capture", *argv, "--out", str(tmp_path / "b")])
        assert err.value.field == field
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ------------------------------------------------------------------------------ a rendered capture


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    from splat.blender.make_scene import RenderSettings, SceneRequest
    from splat.blender.scene_capture import CaptureSettings, make_capture_scene

    out = tmp_path_factory.mktemp("capture")
    settings = CaptureSettings(loop=LoopSettings(n_views=8), clutter=5, clutter_programs=("table",))
    make_capture_scene(SceneRequest(out=out, seed=5, program="chair"),
                       cameras=CameraSettings(width=160, height=120, focal_mm=30.0),
                       render=RenderSettings(samples=4, threads=1), capture=settings)
    return out


def _true_points(capture):
    """Per frame: the depth back-projected with the TRUE pose, in the scene frame (floor z = 0)."""
    from splat.blender.scene_capture import read_truth
    from splat.data.camera import rigid_inverse
    from splat.data.images import read_depth
    from splat.io import read_json

    truth = read_truth(capture)
    meta = read_json(capture / "transforms.json")
    from_capture = rigid_inverse(np.array(truth["scene_to_capture"]))
    out = []
    for frame, view in zip(meta["frames"], truth["views"]):
        w, h = meta["w"], meta["h"]
        d, _ = read_depth(capture / frame["depth_file_path"], h, w, meta["depth_unit_scale_factor"])
        v, u = np.nonzero(d > 0)
        z = d[v, u]
        cam = np.stack([(u + 0.5 - meta["cx"]) / meta["fl_x"] * z, (v + 0.5 - meta["cy"]) / meta["fl_y"] * z, z], 1)
        c2w = from_capture @ np.array(view["c2w_true"])
        out.append((cam @ c2w[:3, :3].T + c2w[:3, 3], d))
    return truth, out


@pytest.mark.blender
def test_capture_layout_poses_and_jpeg(capture):
    from splat.blender.scene_capture import read_truth
    from splat.data import load_cameras
    from splat.io import read_json

    meta = read_json(capture / "transforms.json")
    truth = read_truth(capture)
    assert meta["w"] == 160 and meta["h"] == 120 and len(meta["frames"]) == 8
    for frame in meta["frames"]:  # a capture: colour as JPEG, depth, no masks, no ground truth
        assert frame["file_path"].endswith(".jpg") and "mask_path" not in frame and "depth_file_path" in frame
        assert (capture / frame["file_path"]).read_bytes()[:3] == b"\xff\xd8\xff"
    assert "gt_params" not in meta and "program" not in meta
    assert truth["program"] == "chair" and truth["gt_params"]
    for cam, view in zip(load_cameras(capture), truth["views"]):  # written = true pose + exactly 1 cm / 0.5 deg
        c2w_true = np.array(view["c2w_true"])
        c2w = np.linalg.inv(cam.viewmat)
        assert abs(np.linalg.norm(c2w[:3, 3] - c2w_true[:3, 3]) - 0.01) < 1e-5
        assert abs(_angle_deg(c2w[:3, :3] @ c2w_true[:3, :3].T) - 0.5) < 0.01
        g = np.array(view["gain"])
        assert 0.7 - 1e-9 <= g.mean() <= 1.3 + 1e-9
    # the capture world is not the scene's: gravity is not +Z there
    assert np.abs(np.array(truth["scene_to_capture"])[:3, :3] - np.eye(3)).max() > 0.1


@pytest.mark.blender
def test_capture_depth_sees_clutter_walls_and_object(capture):
    from splat.blender.make_scene import read_mesh_ply
    from splat.blender.scene_clutter import rect_circle_gap
    from splat.data.images import read_mask

    truth, frames = _true_points(capture)
    lo = np.array(truth["object_centre"]) - np.array(truth["object_extents"]) / 2
    hi = np.array(truth["object_centre"]) + np.array(truth["object_extents"]) / 2
    pts = np.concatenate([p for p, _ in frames])
    floor = np.abs(pts[:, 2]) < 0.03
    assert floor.mean() > 0.3  # depth of the floor, not only the object
    above = pts[~floor & (pts[:, 2] > 0.05)]
    in_box = np.all((above >= lo - 0.03) & (above <= hi + 0.03), axis=1)
    outside = above[~in_box]
    clutter = truth["clutter"]
    assert clutter
    hits = 0
    for c in clutter:  # readings on clutter: inside its footprint circle, at most its height, clear of the object
        near = np.linalg.norm(outside[:, :2] - np.array(c["centre"]), axis=1) <= c["radius"] + 0.03
        hits += int(near.sum() > 20)
        assert rect_circle_gap(lo[:2], hi[:2], np.array(c["centre"]), c["radius"]) >= 0.25
    assert hits >= 1
    on_wall = 0
    for w in truth["walls"]:
        d = outside[:, :2] @ np.array(w["direction"]) - np.array(truth["object_centre"][:2]) @ np.array(w["direction"])
        on_wall += int((np.abs(d - w["distance"]) < 0.08).sum())
    assert on_wall > 100
    # the object's readings lie on the ground-truth mesh; the truth masks cover them
    verts, _ = read_mesh_ply(capture / "truth" / "gt_mesh.ply")
    from scipy.spatial import cKDTree

    tree = cKDTree(verts)
    for (p, d), view in zip(frames, truth["views"]):
        m = read_mask(capture / "truth" / "masks" / f"{view['name']}.png", 120, 160)
        assert abs(m.mean() - view["object_fraction"]) < 1e-9
        assert (d > 0)[~m].mean() > 0.5  # depth of everything else too
        sel = m[d > 0]
        if sel.sum() > 50:
            inside = np.all((p[sel] >= lo - 0.03) & (p[sel] <= hi + 0.03), axis=1)
            assert inside.mean() > 0.9
    assert tree.n > 0


@pytest.mark.blender
def test_import_isolates_the_object(capture, tmp_path):
    from splat.commands.import_ import main
    from splat.data import load_scene
    from splat.data.images import read_mask

    out = tmp_path / "scene"
    main(["nerfstudio", str(capture), "--out", str(out), "--test-every", "0"])
    scene = load_scene(out)
    assert len(scene) >= 6
    ious = []
    for name, mask in zip(scene.names, scene.masks):
        truth = read_mask(capture / "truth" / "masks" / f"{name}.png", 120, 160)
        ious.append((truth & mask).sum() / max((truth | mask).sum(), 1))
    assert np.mean(ious) > 0.75 and min(ious) > 0.5, ious
    ext = scene.extras["capture"]["object"]["extents"]
    from splat.blender.scene_capture import read_truth

    true_ext = read_truth(capture)["object_extents"]
    assert np.abs(np.sort(ext[:2]) - np.sort(true_ext[:2])).max() < 0.06
    assert abs(ext[2] - true_ext[2]) < 0.06


def test_auto_isolation_keeps_parts_stacked_over_the_object():
    """A pedestal chair seen from standing height: the seat hides the top of its post, so the seat and the
    base are two clusters; both are the object, the box beside it is not."""
    from splat.capture.isolate import IsolateSettings, _auto_cluster

    rng = np.random.default_rng(0)

    def slab(lo, hi, n):
        return rng.uniform(lo, hi, size=(n, 3))

    base = slab([-0.28, -0.28, 0.03], [0.28, 0.28, 0.06], 20000)
    post = slab([-0.02, -0.02, 0.06], [0.02, 0.02, 0.30], 300)
    seat = slab([-0.25, -0.2, 0.43], [0.25, 0.2, 0.48], 20000)
    back = slab([-0.25, 0.17, 0.48], [0.25, 0.2, 0.9], 20000)
    box = slab([0.6, -0.2, 0.03], [0.9, 0.1, 0.4], 20000)
    points = np.concatenate([base, post, seat, back, box])
    ids = rng.integers(0, 8, size=len(points))  # seen by several frames
    region = _auto_cluster(points, ids, 0.02, IsolateSettings())
    assert region.contains(seat).mean() > 0.95 and region.contains(back).mean() > 0.95
    assert region.contains(base).mean() > 0.95
    assert region.contains(box).mean() == 0.0


def test_floor_band_widens_with_a_floor_fused_from_noisy_poses():
    """Poses off by 1 cm / 0.5 deg fuse the floor into a slab ~3 cm thick: its upper side must stay floor, or
    it joins every object standing on it into one cluster (a capture-like cabinet scene: a 2.7 m 'object')."""
    from splat.capture.isolate import Floor, measure_floor_band

    rng = np.random.default_rng(0)
    xy = rng.uniform(-2, 2, size=(50000, 2))
    floor = Floor(normal=np.array([0.0, 0.0, 1.0]), offset=0.0, rms=0.0, inliers=0)
    for sigma, want in [(0.003, 0.02), (0.015, 0.045)]:
        pts = np.c_[xy, rng.normal(0.0, sigma, len(xy))]
        pts = np.concatenate([pts, rng.uniform([-0.3, -0.3, 0], [0.3, 0.3, 1.0], size=(3000, 3))])  # an object
        assert abs(measure_floor_band(pts, floor, np.zeros(3), 0.02) - want) < 0.004
