"""`splat import`: captures in, scene folders out. End to end on analytic captures (tests/capture_fixtures.py)
in every format, the scene loading back with the poses to 1e-6 through the stored transform, frame
selection and split, every bad input as one `error:` line with exit status 2 and nothing written, the
staging folder, the shipped tum_cabinet scene, and (slow) the real TUM development capture.

Budget: ~7 s fast (one subprocess; small captures), ~12-30 s slow (the real capture at 320x240).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import capture_fixtures as cf
from splat.capture import ImportSettings, IsolateSettings, import_capture
from splat.capture.importer import parse_frame_list, test_positions as split_positions
from splat.cli import run_cli
from splat.commands.import_ import main
from splat.data import load_scene, read_ply_points
from splat.errors import SplatError

N = 16


@pytest.fixture(scope="module")
def tum(tmp_path_factory):
    """A TUM capture whose frame 5 has a pose 4 cm off (its depth was taken from the true one)."""
    root = tmp_path_factory.mktemp("src") / "tum"
    return cf.write_tum_cubeslam(root, N, bad={5: np.array([0.0, -0.04, 0.0])})


@pytest.fixture(scope="module")
def imported(tum, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "scene"
    report = import_capture(ImportSettings(format="tum", source=tum.root, out=out, test_every=4, program="cabinet",
                                           attribution="made by the test"))
    return report, load_scene(out)


def test_import_writes_a_scene_that_loads_and_maps_back_to_the_capture(tum, imported):
    report, scene = imported
    names = [f"{i:04d}" for i in range(N) if i != 5]
    assert list(scene.names) == names and report.kept == tuple(names)
    assert report.dropped == (("0005", report.dropped[0][1]),) and "disagrees with its neighbours" in report.dropped[0][1]
    rec = scene.extras["capture"]
    assert rec["dropped_frames"] == [{"name": "0005", "reason": report.dropped[0][1]}]
    assert rec["source_format"] == "tum" and rec["attribution"] == "made by the test" and scene.program == "cabinet"
    to_capture = np.array(rec["to_capture_world"])
    for cam in scene.cameras:
        c2w_scene = np.linalg.inv(cam.viewmat)  # OpenCV axes, floor frame
        np.testing.assert_allclose(to_capture @ c2w_scene, tum.poses_world[int(cam.name)], atol=1e-6)
        np.testing.assert_allclose(cam.K, tum.K, atol=1e-9)
    # floor frame: the scene's floor is z = 0 and the object stands centred on it
    scan = read_ply_points(scene.scan_path).numpy()
    assert abs(np.percentile(scan[:, 2], 99) - 0.6) < 0.015 and np.percentile(scan[:, 2], 1) < 0.05
    np.testing.assert_allclose((np.percentile(scan, 99, 0) + np.percentile(scan, 1, 0))[:2] / 2, 0.0, atol=0.01)
    np.testing.assert_allclose(rec["object"]["extents"], [0.8, 0.5, 0.6], atol=0.015)


def test_import_keeps_colour_and_depth_and_masks_the_object(tum, imported):
    report, scene = imported
    for i, name in enumerate(scene.names):
        view = tum.views[int(name)]
        np.testing.assert_allclose(scene.images[i], np.round(view.rgb * 255) / 255, atol=0.5 / 255)  # unmasked
        np.testing.assert_allclose(scene.depths[i], view.depth, atol=0.6e-3)  # mm PNG
        truth = view.hit == 1
        assert (scene.masks[i] & truth).sum() / (scene.masks[i] | truth).sum() > 0.9


def test_split_is_spread_over_the_trajectory(imported):
    report, scene = imported
    assert [scene.names[i] for i in scene.test_indices] == ["0002", "0007", "0011", "0015"]  # positions 2, 6, 10, 14
    assert split_positions(15, every=None, fraction=None) == [4, 12]  # default: one in 8
    assert split_positions(10, every=None, fraction=0.2) == [2, 7]
    assert split_positions(10, every=0, fraction=None) == []
    assert parse_frame_list(["0-2", "5,7", "7"], 10) == [0, 1, 2, 5, 7]
    with pytest.raises(SplatError, match="--frames: frame 12 does not exist: the capture has frames 0..9"):
        parse_frame_list(["12"], 10)
    with pytest.raises(SplatError, match="--frames: 'x' is not a frame index"):
        parse_frame_list(["x"], 10)


def test_scannet_and_nerfstudio_imports(tmp_path):
    cf.write_scannet(tmp_path / "sn", 12)
    (tmp_path / "sn" / "pose" / "4.txt").write_text("-inf -inf -inf -inf\n" * 4)
    out = tmp_path / "s1"
    run_cli(lambda: main(["scannet", str(tmp_path / "sn"), "--out", str(out), "--frames", "0-9", "--every", "2",
                          "--test-every", "0"]))
    scene = load_scene(out)
    assert list(scene.names) == ["0", "2", "6", "8"] and scene.test_indices == ()
    rec = scene.extras["capture"]
    assert rec["dropped_frames"] == [{"name": "4", "reason": "pose marked invalid in the source"}]
    assert scene.cameras[0].width == 80  # the depth camera's grid
    cf.write_nerfstudio(tmp_path / "ns", 12, depth_scale=2)
    out = tmp_path / "s2"
    run_cli(lambda: main(["nerfstudio", str(tmp_path / "ns" / "transforms.json"), "--out", str(out),
                          "--test-fraction", "0.25", "--downscale", "2", "--image-format", "jpg"]))
    scene = load_scene(out)
    assert len(scene) == 12 and len(scene.test_indices) == 3 and scene.cameras[0].width == 40
    assert all(p.suffix == ".jpg" for p in (out / "images").iterdir())
    np.testing.assert_allclose(scene.extras["capture"]["object"]["extents"], [0.8, 0.5, 0.6], atol=0.03)


def test_frames_without_the_object_in_view_are_dropped(tmp_path):
    cap = cf.write_tum_cubeslam(tmp_path / "tum", 12, away=(4,))
    assert not np.any(cap.views[4].hit == 1)
    report = import_capture(ImportSettings(format="tum", source=tmp_path / "tum", out=tmp_path / "s", test_every=0))
    assert len(report.kept) == 11 and report.dropped[0][0] == "0004"
    assert report.dropped[0][1].startswith("object not in view (mask 0.00% of the image)")


def test_cli_summary_and_unknown_format_by_subprocess(tum, tmp_path):
    out = tmp_path / "scene"
    res = subprocess.run([sys.executable, "-m", "splat", "import", "tum", str(tum.root), "--out", str(out),
                          "--every", "2"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "frames     16 in the capture, 8 selected, 8 kept" in res.stdout  # frame 5 is not among the even ones
    assert "object     auto: 0.80" in res.stdout
    bad = subprocess.run([sys.executable, "-m", "splat", "import", "colmap", str(tum.root), "--out",
                          str(tmp_path / "x")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: FORMAT: unknown capture format 'colmap' (formats: tum, scannet, nerfstudio)")
    assert not (tmp_path / "x").exists()


def _fails(tmp_path, capsys, argv, expected):
    out = tmp_path / "out" / "scene"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as exc:
        run_cli(lambda: main([*argv, "--out", str(out)]))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, no staging left
    return err


def test_every_bad_input_is_one_error_line_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "cap"
    cf.write_tum_cubeslam(src, 6)
    s = str(src)
    _fails(tmp_path, capsys, ["colmap", s], "unknown capture format 'colmap'")
    _fails(tmp_path, capsys, ["tum", s, "--crop", "50", "50", "50", "51", "51", "51"],
           "--crop: the crop box [50.0, 50.0, 50.0, 51.0, 51.0, 51.0] holds no point")
    _fails(tmp_path, capsys, ["tum", s, "--crop", "1", "0", "0", "0", "1", "1"], "each minimum must be below")
    _fails(tmp_path, capsys, ["tum", s, "--crop", "0", "0", "0", "1", "1", "1", "--auto"], "not both")
    _fails(tmp_path, capsys, ["tum", s, "--test-every", "4", "--test-fraction", "0.2"], "not both")
    _fails(tmp_path, capsys, ["tum", s, "--frames", "7"], "frame 7 does not exist")
    _fails(tmp_path, capsys, ["tum", s, "--frames", "2"], "only 1 frame(s) selected")
    _fails(tmp_path, capsys, ["tum", str(tmp_path / "nope")], "capture folder not found")
    # a frame's depth map missing / a pose line missing
    (src / "depth" / "0003_depth_raw.png").rename(tmp_path / "moved.png")
    _fails(tmp_path, capsys, ["tum", s], "unmatched frames, colour frames without a depth map: [3]")
    (tmp_path / "moved.png").rename(src / "depth" / "0003_depth_raw.png")
    poses = (src / "truth_cam_poses.txt").read_text()
    (src / "truth_cam_poses.txt").write_text("\n".join(poses.splitlines()[:5]) + "\n")
    _fails(tmp_path, capsys, ["tum", s], "unmatched frames: 6 frames but 5 poses")
    lines = poses.splitlines()
    vals = lines[2].split()
    vals[4:8] = ["0", "0", "0", "2"]
    (src / "truth_cam_poses.txt").write_text("\n".join(lines[:2] + ["\t".join(vals)] + lines[3:]) + "\n")
    _fails(tmp_path, capsys, ["tum", s], "line 3: pose is not rigid: its quaternion has norm 2")
    (src / "truth_cam_poses.txt").write_text(poses)
    # depth of another size than the intrinsics say; a depth map with no reading
    import imageio.v3 as iio

    good = iio.imread(src / "depth" / "0004_depth_raw.png")
    iio.imwrite(src / "depth" / "0004_depth_raw.png", good[:30, :40])
    _fails(tmp_path, capsys, ["tum", s], "depth map of frame 0004 is 40x30, its intrinsics are for 80x60")
    iio.imwrite(src / "depth" / "0004_depth_raw.png", np.zeros_like(good))
    _fails(tmp_path, capsys, ["tum", s], "depth map of frame 0004 is all zero (no reading)")
    iio.imwrite(src / "depth" / "0004_depth_raw.png", good)
    # an existing, non-empty --out is not touched without --overwrite
    (tmp_path / "out" / "scene").mkdir(parents=True)
    (tmp_path / "out" / "scene" / "keep.txt").write_text("mine")
    _fails(tmp_path, capsys, ["tum", s], "exists and is not empty (--overwrite replaces it")


def test_a_failure_while_writing_leaves_nothing_and_overwrite_swaps_at_the_end(tmp_path, monkeypatch):
    src = tmp_path / "cap"
    cf.write_tum_cubeslam(src, 6)
    out = tmp_path / "out" / "scene"
    import splat.capture.importer as importer

    def boom(path, points):
        raise SplatError("disk full", file=path)

    monkeypatch.setattr(importer, "write_ply_points", boom)
    settings = ImportSettings(format="tum", source=src, out=out, test_every=0)
    with pytest.raises(SplatError, match="disk full"):
        import_capture(settings)
    assert not (tmp_path / "out").exists()  # the staging folder and the parent it made are gone
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("old")
    with pytest.raises(SplatError, match="disk full"):
        import_capture(ImportSettings(format="tum", source=src, out=out, test_every=0, overwrite=True))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scene"] and (out / "keep.txt").exists()
    monkeypatch.undo()
    import_capture(ImportSettings(format="tum", source=src, out=out, test_every=0, overwrite=True))
    assert not (out / "keep.txt").exists() and (out / "scan.ply").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scene"]


def test_tum_cabinet_scene_loads_with_its_attribution():
    from splat.workspace import scene_dir

    root = scene_dir("tum_cabinet")
    scene = load_scene(root)
    rec = scene.extras["capture"]
    assert "CC BY 4.0" in rec["attribution"] and "TUM" in rec["attribution"]
    assert [d["name"] for d in rec["dropped_frames"]] == ["0000"]
    assert len(scene) == 57 and len(scene.test_indices) >= 5 and all(m is not None for m in scene.masks)
    assert scene.scan_path is not None and (root / "README.md").is_file()
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) <= 4_000_000
    ex = rec["object"]["extents"]
    assert abs(ex[0] - 0.83) < 0.03 and abs(ex[1] - 0.49) < 0.03 and abs(ex[2] - 0.58) < 0.03


@pytest.mark.slow
def test_real_tum_capture_drops_frame_0_and_finds_the_cabinet(tmp_path):
    from conftest import SHARED

    src = SHARED / "data" / "real" / "tum_fr3_cabinet"
    if not src.is_dir():
        pytest.skip("no real TUM capture in ../shared/data/real")
    report = import_capture(ImportSettings(format="tum", source=src, out=tmp_path / "scene", downscale=2))
    assert [name for name, _ in report.dropped] == ["0000"]  # SOURCE.txt: its pose is several cm off
    ex = report.extents  # SOURCE.txt: footprint ~0.83 x 0.49 m, top ~0.58 m
    assert abs(ex[0] - 0.83) < 0.03 and abs(ex[1] - 0.49) < 0.03 and abs(ex[2] - 0.58) < 0.03
    n = report.isolation.floor.normal
    assert n[2] > 0.999  # the mocap world has z up and its floor at z = 0
    to_capture = np.linalg.inv(report.isolation.to_floor)
    assert abs(to_capture[2, 3]) < 0.02  # the scene's floor is within 2 cm of the capture's z = 0
    centre = to_capture[:2, 3]
    assert np.linalg.norm(centre - [-1.52, 0.45]) < 0.05  # SOURCE.txt: centre near world (-1.52, 0.45)
    scene = load_scene(tmp_path / "scene")
    assert len(scene) == 57 and scene.cameras[0].width == 320
    assert IsolateSettings().floor_band == 0.02  # the threshold the extents above were measured with
    json.dumps(scene.extras["capture"])  # JSON-clean
    assert Path(scene.root / "scan.ply").is_file()
