"""Scene loader and writer: round trips, tensors, split handling, and every bad input of issue 2.

Budget: < 4 s (scenes are 3 views of 32x24, written once per module and copied per test).
"""

from __future__ import annotations

import json
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from splat.data import Camera, intrinsics_matrix, load_scene, write_scene
from splat.data.synthetic import look_at_c2w, plane_cameras, render_plane, write_plane_scene
from splat.errors import SplatError


@pytest.fixture(scope="module")
def plane_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("plane")
    write_plane_scene(root, n_views=3, n_test=1)
    return root


@pytest.fixture
def scene_dir(plane_dir, tmp_path):
    dst = tmp_path / "scene"
    shutil.copytree(plane_dir, dst)
    return dst


def edit_json(root, fn):
    path = root / "transforms.json"
    meta = json.loads(path.read_text())
    fn(meta)
    path.write_text(json.dumps(meta))


def expect_error(root, field, words=""):
    with pytest.raises(SplatError) as info:
        load_scene(root)
    err = info.value
    assert err.file is not None and err.file.endswith("transforms.json"), err
    assert err.field == field, err
    assert words in err.message, err
    return err


# ---------------------------------------------------------------------------------------------- loading


def test_load_plane_scene(scene_dir):
    scene = load_scene(scene_dir)
    assert len(scene) == 3
    assert scene.names == ("view_000", "view_001", "view_002")
    assert scene.train_indices == (0, 1) and scene.test_indices == (2,)
    assert scene.program == "plane" and scene.gt_params == {"half_extent": 0.5}
    img, depth, mask = scene.images[0], scene.depths[0], scene.masks[0]
    assert img.shape == (24, 32, 3) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    assert depth.shape == (24, 32) and depth.dtype == np.float32
    assert mask.shape == (24, 32) and mask.dtype == np.bool_ and mask.any() and not mask.all()


def test_tensors(scene_dir):
    scene = load_scene(scene_dir)
    v = scene.viewmats_tensor("train", device="cpu")
    assert v.shape == (2, 4, 4) and v.dtype == torch.float32
    assert scene.Ks_tensor([2], device="cpu").shape == (1, 3, 3)
    imgs = scene.images_tensor("test", device=torch.device("cpu"))
    assert imgs.shape == (1, 24, 32, 3) and imgs.dtype == torch.float32
    assert scene.depths_tensor(device="cpu").shape == (3, 24, 32)
    m = scene.masks_tensor("train", device="cpu")
    assert m.dtype == torch.bool and m.shape == (2, 24, 32)
    assert scene.images_tensor([], device="cpu").shape == (0, 24, 32, 3)
    torch.testing.assert_close(imgs[0], torch.from_numpy(scene.images[2]))


def test_round_trip_cameras_images_depth_masks(tmp_path):
    cams = plane_cameras(3, 32, 24)
    # make one camera's intrinsics differ, so the writer must use per-frame overrides
    cams[1] = Camera(intrinsics_matrix(40.0, 41.0, 15.5, 12.25), cams[1].viewmat, 32, 24, cams[1].name)
    views = [render_plane(c) for c in cams]
    for fmt, tol in (("png", 0.5e-3 + 1e-6), ("npy", 1e-6)):
        root = tmp_path / fmt
        write_scene(root, cams, [v.image for v in views], depths=[v.depth for v in views],
                    masks=[v.mask for v in views], split={"test": ["view_001"]}, program="plane",
                    gt_params={"a": 1.5, "b": True}, extras={"gt_mesh": "gt.ply", "manifest": {"seed": 3, "note": "a [1,\n 2]"}},
                    depth_format=fmt)
        scene = load_scene(root)
        for a, b in zip(cams, scene.cameras):
            np.testing.assert_allclose(b.viewmat, a.viewmat, atol=1e-6)
            np.testing.assert_allclose(b.K, a.K, atol=1e-6)
            assert (b.width, b.height, b.name) == (a.width, a.height, a.name)
        for v, img, d, m in zip(views, scene.images, scene.depths, scene.masks):
            np.testing.assert_allclose(img, v.image, atol=0.5 / 255 + 1e-6)
            np.testing.assert_allclose(d, v.depth, atol=tol)
            np.testing.assert_array_equal(m, v.mask)
        assert scene.split == {"test": (1,), "train": (0, 2)}
        assert scene.gt_params == {"a": 1.5, "b": True}
        assert scene.extras == {"gt_mesh": "gt.ply", "manifest": {"seed": 3, "note": "a [1,\n 2]"}}
        assert scene.extra_path("gt_mesh") == root / "gt.ply"


def test_no_split_means_all_train(scene_dir):
    edit_json(scene_dir, lambda m: m.pop("split"))
    scene = load_scene(scene_dir)
    assert scene.train_indices == (0, 1, 2) and scene.test_indices == ()


def test_explicit_frame_name_and_transforms_path(scene_dir):
    edit_json(scene_dir, lambda m: (m["frames"][0].__setitem__("name", "first"),
                                    m["split"].__setitem__("train", ["first", "view_001"])))
    scene = load_scene(scene_dir / "transforms.json")
    assert scene.names[0] == "first" and scene.train_indices == (0, 1)


def test_writer_rejects_misuse(tmp_path):
    cams = plane_cameras(2, 8, 6)
    imgs = [np.zeros((6, 8, 3))] * 2
    with pytest.raises(ValueError, match="unique"):
        write_scene(tmp_path, [cams[0], cams[0]], imgs)
    with pytest.raises(ValueError, match="safe file stem"):
        write_scene(tmp_path, [Camera(cams[0].K, cams[0].viewmat, 8, 6, "../x")], imgs[:1])
    with pytest.raises(ValueError, match="reuse keys"):
        write_scene(tmp_path, cams, imgs, extras={"frames": []})
    with pytest.raises(ValueError, match="shape"):
        write_scene(tmp_path, cams, [np.zeros((5, 8, 3))] * 2)
    with pytest.raises(SplatError, match="do not exist"):
        write_scene(tmp_path, cams, imgs, split={"train": ["nope"]})
    assert not (tmp_path / "transforms.json").exists()


# ------------------------------------------------------------------------------------------- bad input


def test_missing_transforms(tmp_path):
    with pytest.raises(SplatError) as info:
        load_scene(tmp_path)
    assert info.value.file.endswith("transforms.json") and "no transforms.json" in info.value.message


def test_malformed_json(scene_dir):
    (scene_dir / "transforms.json").write_text('{"frames": [')
    err = expect_error(scene_dir, None, "malformed JSON")
    assert "line 1" in err.message


def test_image_missing(scene_dir):
    (scene_dir / "images" / "view_001.png").unlink()
    expect_error(scene_dir, "frames[1].file_path", "does not exist")


def test_image_unreadable(scene_dir):
    (scene_dir / "images" / "view_002.png").write_bytes(b"not a png at all")
    expect_error(scene_dir, "frames[2].file_path", "cannot read")


def test_image_size_mismatch(scene_dir):
    iio.imwrite(scene_dir / "images" / "view_000.png", np.zeros((24, 31, 3), np.uint8))
    expect_error(scene_dir, "frames[0].file_path", "expected 32x24")


def test_global_size_mismatch(scene_dir):
    edit_json(scene_dir, lambda m: m.__setitem__("w", 64))
    expect_error(scene_dir, "frames[0].file_path", "expected 64x24")


@pytest.mark.parametrize("key, folder", [("depth_file_path", "depth"), ("mask_path", "masks")])
def test_depth_or_mask_missing(scene_dir, key, folder):
    (scene_dir / folder / "view_001.png").unlink()
    expect_error(scene_dir, f"frames[1].{key}", "does not exist")


def test_depth_wrong_shape(scene_dir):
    np.save(scene_dir / "depth" / "d.npy", np.ones((24, 30), np.float32))
    edit_json(scene_dir, lambda m: m["frames"][1].__setitem__("depth_file_path", "depth/d.npy"))
    expect_error(scene_dir, "frames[1].depth_file_path", "shape")


def test_depth_negative(scene_dir):
    d = np.ones((24, 32), np.float32)
    d[3, 4] = -0.1
    np.save(scene_dir / "depth" / "d.npy", d)
    edit_json(scene_dir, lambda m: m["frames"][0].__setitem__("depth_file_path", "depth/d.npy"))
    expect_error(scene_dir, "frames[0].depth_file_path", "negative")


def test_depth_8bit_png_rejected(scene_dir):
    iio.imwrite(scene_dir / "depth" / "view_000.png", np.ones((24, 32), np.uint8))
    expect_error(scene_dir, "frames[0].depth_file_path", "16-bit")


def test_depth_nan_is_missing_with_one_warning(scene_dir):
    d = np.full((24, 32), 1.5, np.float32)
    d[:2] = np.nan
    for name in ("a", "b"):
        np.save(scene_dir / "depth" / f"{name}.npy", d)
    edit_json(scene_dir, lambda m: (m["frames"][0].__setitem__("depth_file_path", "depth/a.npy"),
                                    m["frames"][1].__setitem__("depth_file_path", "depth/b.npy")))
    with pytest.warns(UserWarning, match="NaN") as record:
        scene = load_scene(scene_dir)
    assert len([w for w in record if "NaN" in str(w.message)]) == 1
    assert (scene.depths[0][:2] == 0).all() and (scene.depths[0][2:] == 1.5).all()


@pytest.mark.parametrize("key", ["file_path", "depth_file_path", "mask_path"])
@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "images/../../x.png"])
def test_escaping_paths(scene_dir, key, bad):
    edit_json(scene_dir, lambda m: m["frames"][2].__setitem__(key, bad))
    err = expect_error(scene_dir, f"frames[2].{key}")
    assert "escapes" in err.message or "absolute" in err.message


def test_inner_dotdot_allowed(scene_dir):
    edit_json(scene_dir, lambda m: m["frames"][0].__setitem__("file_path", "depth/../images/view_000.png"))
    assert load_scene(scene_dir).names[0] == "view_000"


def test_extra_path_escaping(scene_dir):
    edit_json(scene_dir, lambda m: m.__setitem__("gt_mesh", "../mesh.ply"))
    with pytest.raises(SplatError) as info:
        load_scene(scene_dir).extra_path("gt_mesh")
    assert info.value.field == "gt_mesh"


@pytest.mark.parametrize("matrix, words", [
    (np.diag([1.0, 1.0, 2.0, 1.0]), "not rigid"),
    (np.zeros((4, 4)), "last row"),
    (np.diag([1.0, 0.0, 1.0, 1.0]), "singular"),
    ([[1, 2], [3, 4]], "4x4"),
    ("identity", "4x4"),
])
def test_bad_transform_matrix(scene_dir, matrix, words):
    value = matrix.tolist() if isinstance(matrix, np.ndarray) else matrix
    edit_json(scene_dir, lambda m: m["frames"][1].__setitem__("transform_matrix", value))
    expect_error(scene_dir, "frames[1].transform_matrix", words)


def test_split_unknown_frame(scene_dir):
    edit_json(scene_dir, lambda m: m["split"].__setitem__("test", ["view_002", "view_099"]))
    expect_error(scene_dir, "split.test", "view_099")


def test_split_overlap(scene_dir):
    edit_json(scene_dir, lambda m: m["split"].__setitem__("test", ["view_000"]))
    expect_error(scene_dir, "split.test", "both train and test")


def test_empty_mask(scene_dir):
    iio.imwrite(scene_dir / "masks" / "view_001.png", np.zeros((24, 32), np.uint8))
    expect_error(scene_dir, "frames[1].mask_path", "empty")


def test_missing_intrinsic(scene_dir):
    edit_json(scene_dir, lambda m: m.pop("fl_y"))
    expect_error(scene_dir, "fl_y", "missing")


def test_bad_per_frame_intrinsic(scene_dir):
    edit_json(scene_dir, lambda m: m["frames"][2].__setitem__("fl_x", -3))
    expect_error(scene_dir, "frames[2].fl_x", "> 0")


def test_distortion_rejected(scene_dir):
    edit_json(scene_dir, lambda m: m.__setitem__("k1", 0.1))
    expect_error(scene_dir, "k1", "distortion")


def test_duplicate_names(scene_dir):
    edit_json(scene_dir, lambda m: m["frames"][1].__setitem__("name", "view_000"))
    expect_error(scene_dir, "frames[1].file_path", "duplicate")


def test_no_frames(scene_dir):
    edit_json(scene_dir, lambda m: m.__setitem__("frames", []))
    expect_error(scene_dir, "frames", "non-empty")


def test_look_at_helper_is_rigid():
    from splat.data.camera import rigidity_error

    assert rigidity_error(look_at_c2w([0.0, 0.0, 3.0])) is None  # straight down the up axis


def test_load_cameras_only(scene_dir):
    from splat.data import load_cameras

    for p in (scene_dir / "images").iterdir():
        p.unlink()  # no image file is needed
    cams = load_cameras(scene_dir)
    assert [c.name for c in cams] == ["view_000", "view_001", "view_002"]
    edit_json(scene_dir, lambda m: [f.pop("file_path") for f in m["frames"]])
    assert [c.name for c in load_cameras(scene_dir)] == ["view_0000", "view_0001", "view_0002"]
    edit_json(scene_dir, lambda m: m["frames"][0].__setitem__("transform_matrix", np.eye(3).tolist()))
    with pytest.raises(SplatError) as info:
        load_cameras(scene_dir)
    assert info.value.field == "frames[0].transform_matrix"
