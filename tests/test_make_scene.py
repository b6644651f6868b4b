"""Tests of the Cycles scene maker (splat.blender.make_scene) and its camera rig.

Budget: ~30 s on 2 shared cores (three tiny 64x64 scenes of 2-4 views at 8 samples). Depth and masks are checked against Blender's own ray casts of the ground-truth mesh
(mathutils BVH), which is independent of the Cycles render.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import POLYHAVEN

from splat.blender.scene_cameras import CameraSettings, plan_cameras
from splat.errors import SplatError

CAMS = CameraSettings(n_train=3, n_test=1, width=64, height=64)


# ------------------------------------------------------------------------------ rig (no bpy)


def test_rig_split_and_look_at():
    s = CameraSettings(n_train=24, n_test=8)
    lo, hi = np.array([-0.3, -0.2, 0.0]), np.array([0.3, 0.2, 0.9])
    rig = plan_cameras(lo, hi, s, np.random.default_rng(0))
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    assert len(rig.train) == 24 and len(rig.test) == 8
    names = [c.name for c in rig.train + rig.test]
    assert len(set(names)) == 32
    for cam in rig.train + rig.test:
        uv, z = cam.project(rig.look_at[None])
        np.testing.assert_allclose(uv[0], [s.width / 2, s.height / 2], atol=1e-6)  # looks at the centre
        assert z[0] > 0
        d = cam.center - rig.look_at
        elev = np.degrees(np.arcsin(d[2] / np.linalg.norm(d)))
        assert 10.0 - 1e-6 <= elev <= 60.0 + 1e-6
        assert np.linalg.norm(d) > rig.radius  # outside the bounding sphere
        uv, z = cam.project(corners)  # the whole object is in view, with the margin
        assert np.all(z > 0) and uv.min() >= s.margin * 256 - 1e-6 and uv.max() <= 256 * (1 - s.margin) + 1e-6
    # Test views are not duplicates of train views: each is well away from every training camera.
    train_dirs = np.stack([(c.center - rig.look_at) / np.linalg.norm(c.center - rig.look_at) for c in rig.train])
    for cam in rig.test:
        d = (cam.center - rig.look_at) / np.linalg.norm(cam.center - rig.look_at)
        assert np.degrees(np.arccos(np.clip(train_dirs @ d, -1, 1))).min() > 3.0


def test_rig_deterministic_and_validated():
    lo, hi = np.zeros(3), np.ones(3)
    a = plan_cameras(lo, hi, CAMS, np.random.default_rng(5))
    b = plan_cameras(lo, hi, CAMS, np.random.default_rng(5))
    for ca, cb in zip(a.train + a.test, b.train + b.test):
        np.testing.assert_array_equal(ca.viewmat, cb.viewmat)
    with pytest.raises(SplatError, match="n_train"):
        plan_cameras(lo, hi, CameraSettings(n_train=0), np.random.default_rng(0))
    with pytest.raises(SplatError, match="elevation_deg"):
        plan_cameras(lo, hi, CameraSettings(elevation_deg=(50.0, 10.0)), np.random.default_rng(0))


# ------------------------------------------------------------------------------ rendered scenes


def _render_small(out, seed=1, **kw):
    from splat.blender.make_scene import RenderSettings, SceneRequest, make_scene

    return make_scene(SceneRequest(out=out, seed=seed, **kw), cameras=CAMS, render=RenderSettings(samples=8))


@pytest.fixture(scope="module")
def chair_scene(tmp_path_factory):
    """Our chair program with random valid parameters from seed 1."""
    out = tmp_path_factory.mktemp("chair")
    _render_small(out, seed=1, program="chair")
    return out


def _raycast(scene, mesh_path):
    """Per frame: exact z-depth of the GT mesh at every pixel centre (0 = miss), via Blender's BVH."""
    from mathutils import Vector
    from mathutils.bvhtree import BVHTree

    from splat.blender.make_scene import read_mesh_ply

    verts, faces = read_mesh_ply(mesh_path)
    bvh = BVHTree.FromPolygons(verts.tolist(), faces.tolist())
    out = []
    for cam in scene.cameras:
        h, w = cam.height, cam.width
        jj, ii = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        rays_cam = np.stack([(jj - cam.K[0, 2]) / cam.K[0, 0], (ii - cam.K[1, 2]) / cam.K[1, 1], np.ones_like(jj)], -1)
        r = cam.viewmat[:3, :3]
        dirs = rays_cam.reshape(-1, 3) @ r  # camera -> world rotation is R^T
        origin = Vector(cam.center.tolist())
        z = np.zeros(h * w)
        for k, d in enumerate(dirs):
            hit, _, _, dist = bvh.ray_cast(origin, Vector((d / np.linalg.norm(d)).tolist()))
            if hit is not None:
                z[k] = (r @ (np.array(hit) - cam.center))[2]
        out.append(z.reshape(h, w))
    return out


@pytest.mark.blender
def test_program_scene_reloads_with_ground_truth(chair_scene):
    import torch

    from splat.blender.make_scene import read_mesh_ply
    from splat.data import load_scene
    from splat.program import load_program

    scene = load_scene(chair_scene)
    assert len(scene) == 4 and len(scene.train_indices) == 3 and len(scene.test_indices) == 1
    assert scene.names[scene.test_indices[0]].startswith("test_")
    m = scene.extras["manifest"]
    assert m["seed"] == 1 and m["blender_version"].startswith("4.")
    assert m["render"]["samples"] == 8 and m["cameras"]["n_train"] == 3
    assert {x["kind"] for x in m["materials"]} <= {"wood", "fabric", "painted"}
    by_part = {}
    for x in m["materials"]:
        by_part.setdefault(x["part"], []).append(x)
    assert all(all(y == group[0] for y in group) for group in by_part.values())  # copies share a material
    assert scene.extras["background"] == [1.0, 1.0, 1.0]
    assert all(d is not None and k is not None for d, k in zip(scene.depths, scene.masks))
    # Ground truth: the program name and valid parameters, and the mesh is exactly the program's.
    program = load_program(scene.program)
    assert scene.program == "chair"
    assert program.space.validate(scene.gt_params) == scene.gt_params
    mesh = program.evaluate(scene.gt_params, dtype=torch.float64).realize()
    keep = mesh.face_active[0].numpy()
    want = mesh.verts[0].numpy()[np.unique(mesh.faces.numpy()[keep])] + np.array(m["placement_offset"])
    verts, faces = read_mesh_ply(scene.extra_path("gt_mesh"))
    assert len(faces) == int(keep.sum())
    np.testing.assert_allclose(np.sort(verts, axis=0), np.sort(want, axis=0), atol=1e-6)
    np.testing.assert_allclose(verts[:, 2].min(), 0.0, atol=1e-6)


@pytest.mark.blender
def test_depth_backprojects_onto_gt_mesh(chair_scene):
    from mathutils import Vector
    from mathutils.bvhtree import BVHTree

    from splat.blender.make_scene import read_mesh_ply
    from splat.data import load_scene

    scene = load_scene(chair_scene)
    verts, faces = read_mesh_ply(scene.extra_path("gt_mesh"))
    bvh = BVHTree.FromPolygons(verts.tolist(), faces.tolist())
    pts = np.concatenate([cam.backproject(d) for cam, d in zip(scene.cameras, scene.depths)])
    assert len(pts) > 500
    dist = np.array([bvh.find_nearest(Vector(p.tolist()))[3] for p in pts])
    assert np.median(dist) < 0.002, np.median(dist)
    assert np.percentile(dist, 95) < 0.005
    # z-depth, not ray length: against exact ray casts the error is millimetric (PNG quantisation).
    exact = _raycast(scene, scene.extra_path("gt_mesh"))
    both = [(d > 0) & (e > 0) for d, e in zip(scene.depths, exact)]
    err = np.concatenate([np.abs(d - e)[b] for d, e, b in zip(scene.depths, exact, both)])
    assert np.median(err) < 0.001 and np.percentile(err, 90) < 0.002


@pytest.mark.blender
def test_masks_match_alpha_and_geometry(chair_scene):
    from scipy.ndimage import binary_dilation, binary_erosion

    from splat.data import load_scene

    scene = load_scene(chair_scene)
    exact = _raycast(scene, scene.extra_path("gt_mesh"))
    bg = np.asarray(scene.extras["background"], dtype=np.float32)
    for img, mask, depth, hit in zip(scene.images, scene.masks, scene.depths, exact):
        cover = hit > 0
        agree = (mask == cover).mean()
        assert agree > 0.97, agree  # differences only on the silhouette boundary
        assert (mask ^ cover)[binary_erosion(cover, iterations=1) | ~binary_dilation(cover, iterations=1)].sum() == 0
        # Alpha: far from the object the composite is exactly the background; depth only on the mask.
        # (a grazing sliver of the object can stay under alpha 0.5 anywhere, so allow a few pixels)
        away = ~binary_dilation(mask, iterations=2)
        off = np.abs(img[away] - bg).max(axis=1) > 1.5 / 255
        assert off.mean() < 0.002, off.sum()
        assert np.abs(img[binary_erosion(mask, iterations=1)] - bg).max() > 0.1
        assert not np.any((depth > 0) & ~mask)


@pytest.mark.blender
def test_same_seed_same_scene(chair_scene, tmp_path):
    from splat.data import load_scene

    _render_small(tmp_path, seed=1, program="chair")
    a, b = load_scene(chair_scene), load_scene(tmp_path)
    assert a.gt_params == b.gt_params
    for ca, cb in zip(a.cameras, b.cameras):
        np.testing.assert_array_equal(ca.viewmat, cb.viewmat)
        np.testing.assert_array_equal(ca.K, cb.K)
    assert json.dumps(a.extras["manifest"], sort_keys=True) == json.dumps(b.extras["manifest"], sort_keys=True)
    for ia, ib in zip(a.images, b.images):
        assert np.abs(ia - ib).max() <= 2 / 255
    for da, db in zip(a.depths, b.depths):
        np.testing.assert_array_equal(da, db)
    for ma, mb in zip(a.masks, b.masks):
        np.testing.assert_array_equal(ma, mb)


@pytest.mark.blender
def test_gltf_scene(tmp_path):
    from splat.blender.make_scene import SceneRequest, RenderSettings, make_scene, read_mesh_ply
    from splat.data import load_scene

    src = POLYHAVEN / "painted_wooden_stool_1k.gltf"
    make_scene(SceneRequest(out=tmp_path, seed=0, mesh_file=src),
               cameras=CameraSettings(n_train=1, n_test=1, width=64, height=64), render=RenderSettings(samples=8))
    scene = load_scene(tmp_path)
    verts, faces = read_mesh_ply(scene.extra_path("gt_mesh"))
    assert len(faces) == 676  # the model's triangles (SOURCE.txt)
    np.testing.assert_allclose(verts[:, 2].min(), 0.0, atol=1e-6)  # base on z=0
    np.testing.assert_allclose(np.ptp(verts, axis=0), [0.385, 0.406, 0.579], atol=0.01)  # Y-up -> Z-up
    np.testing.assert_allclose((verts.min(0) + verts.max(0))[:2], 0.0, atol=1e-6)  # x/y-centred
    m = scene.extras["manifest"]
    assert m["source"]["kind"] == "mesh_file" and len(m["source"]["sha256"]) == 64
    assert np.abs(m["placement_offset"]).max() > 5e-3  # the file's own frame is off-centre: recorded
    for img, mask in zip(scene.images, scene.masks):
        assert mask.mean() > 0.05
        assert img[mask].std(axis=0).max() > 0.02  # textured, not flat


@pytest.mark.blender
def test_bad_inputs(tmp_path):
    from splat.blender.make_scene import SceneRequest, make_scene
    from splat.commands.make_scene import main

    with pytest.raises(SplatError, match="does not exist"):
        make_scene(SceneRequest(out=tmp_path, seed=0, mesh_file=tmp_path / "nope.gltf"))
    (tmp_path / "x.stl").write_text("solid x\nendsolid x\n")
    with pytest.raises(SplatError, match="unsupported mesh type"):
        make_scene(SceneRequest(out=tmp_path, seed=0, mesh_file=tmp_path / "x.stl"))
    with pytest.raises(SplatError, match="--params"):
        main(["--program", "chair", "--params", "{not json", "--out", str(tmp_path)])
    with pytest.raises(SplatError, match="Seat Height"):
        make_scene(SceneRequest(out=tmp_path, seed=0, program="chair", params={"Seat Height": 5.0}))
    with pytest.raises(SplatError, match="no program"):
        make_scene(SceneRequest(out=tmp_path, seed=0, program="no_such_program"))
    with pytest.raises(SplatError, match="render.samples"):
        main(["--program", "chair", "--samples", "0", "--out", str(tmp_path)])
    with pytest.raises(SplatError, match="--out"):
        main(["--mesh", str(POLYHAVEN / "painted_wooden_stool_1k.gltf")])
    with pytest.raises(SplatError, match="exactly one of"):
        main(["--program", "chair", "--all"])


def test_sensor_noise_model():
    from splat.blender.make_scene import SensorNoise, add_sensor_noise

    depth = np.zeros((100, 200), np.float32)
    depth[:, :100] = 0.5  # near plane
    depth[:, 100:150] = 2.0  # far plane; 150: is empty (no reading)
    noisy = add_sensor_noise(depth, SensorNoise(enabled=True), np.random.default_rng(0))
    assert np.all(noisy[:, 150:] == 0)  # no reading stays no reading
    near, far = noisy[:, 5:95], noisy[:, 105:145]
    assert abs((near[near > 0] - 0.5).std() - (0.0012 + 0.0019 * 0.01)) < 3e-4
    assert abs((far[far > 0] - 2.0).std() - (0.0012 + 0.0019 * 2.56)) < 1e-3  # grows with distance
    assert 0.002 < (near == 0).mean() < 0.03  # random holes, about 1 %
    assert 0.3 < (noisy[:, [99, 100, 149]] == 0).mean() < 0.7  # half the edge pixels dropped


@pytest.mark.blender
@pytest.mark.parametrize("suffix", [".obj", ".ply"])
def test_obj_and_ply_import_axes(tmp_path, suffix):
    import trimesh

    from splat.blender.make_scene import _bpy, _import_mesh_file, _reset

    box = trimesh.creation.box(extents=[0.2, 0.4, 0.8])  # tall along its own Z
    if suffix == ".obj":  # OBJ files are Y-up: store the tall axis as Y
        box.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    path = tmp_path / f"box{suffix}"
    box.export(path)
    bpy = _bpy()
    _reset(bpy)
    mesh, offset = _import_mesh_file(bpy, path)
    np.testing.assert_allclose(np.ptp(mesh.verts, axis=0), [0.2, 0.4, 0.8], atol=1e-5)  # tall along world Z
    np.testing.assert_allclose(mesh.verts.min(0), [-0.1, -0.2, 0.0], atol=1e-5)
    np.testing.assert_allclose(offset, [0.0, 0.0, 0.4], atol=1e-5)
    assert len(mesh.faces) == 12


@pytest.mark.blender
def test_cli_user_error_exit_code(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "splat", "make-scene", "--mesh", str(tmp_path / "no.gltf"),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: ") and "does not exist" in r.stderr
    assert "Traceback" not in r.stderr


def test_part_frame_follows_the_long_axis():
    from scipy.spatial.transform import Rotation

    from splat.blender.make_scene import part_frame

    box = np.array([[x, y, z] for x in (-0.3, 0.3) for y in (-0.05, 0.05) for z in (-0.01, 0.01)])
    rot = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    verts = box @ rot.T + np.array([1.0, 2.0, 3.0])
    f = part_frame(verts)
    np.testing.assert_allclose(f[:3, 3], [1.0, 2.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(f[:3, :3].T @ f[:3, :3], np.eye(3), atol=1e-12)
    assert np.linalg.det(f[:3, :3]) > 0
    np.testing.assert_allclose(np.abs(f[:3, :3].T @ rot), np.eye(3), atol=1e-9)  # x long, y wide, z thin
