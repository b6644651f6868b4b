"""render.py / splat.commands.render and splat.params: orbit videos, views from camera files, held-out
views beside their targets, parameter edits (local effect), sweeps, and clear errors for bad edits.

Budget: < 30 s (tiny images; one subprocess for the CLI convention; one 2-step smoke training run).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from export_helpers import make_run, stool_program

from splat.data import Camera, write_scene
from splat.errors import SplatError
from splat.export.asset import load_asset
from splat.workspace import load_run
from splat.render.cameras import look_at_viewmat, orbit_cameras, pinhole_K
from splat.commands.render import RenderConfig, main, render
from splat.params import parse_sets, sweep_values
from splat.render.frames import ViewSettings, render_views
from splat.render.video import count_frames

SMALL = dict(width=48, height=40, frames=5, test_views=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("render") / "run", num=500)


def test_orbit_video_has_the_right_frame_count(run_dir, tmp_path):
    res = render(RenderConfig(run=run_dir, out=tmp_path, strip=3, **SMALL))
    assert sorted(p.name for p in res.files) == ["orbit.gif", "orbit.mp4", "orbit_strip.png"]
    for p in res.files[:2]:
        assert count_frames(p) == 5
    import imageio.v3 as iio

    frame = iio.imread(tmp_path / "orbit.gif", index=0)
    assert frame.shape[:2] == (40, 3 * 48)  # rgb | depth | alpha
    assert iio.imread(tmp_path / "orbit_strip.png").shape == (40, 3 * 3 * 48 + 2 * 2, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orbit.gif", "orbit.mp4", "orbit_strip.png"]  # no temp files


def test_edit_changes_the_edited_part_and_leaves_far_pixels_unchanged(run_dir):
    asset = load_asset(run_dir)
    # a camera in front of the stool, level with z = 0.45, looking along +Y; image rows map to heights
    cam = Camera(K=pinhole_K(96, 128, 50.0), viewmat=look_at_viewmat(np.array([0, -2.2, 0.45]), np.array([0, 0, 0.45])),
                 width=96, height=128, name="front")
    vs = ViewSettings()
    (before,) = render_views(asset.world_gaussians(), [cam], vs)
    (after,) = render_views(asset.with_params({"Back Height": 0.5}).world_gaussians(), [cam], vs)
    # rows of the back's new top (z in [0.8, 0.95]) and of the leg feet (z in [0, 0.12])
    (_, v_top_hi), (_, v_top_lo), (_, v_feet_hi), (_, v_feet_lo) = cam.project(
        np.array([[0, 0.185, 0.95], [0, 0.185, 0.8], [0, -0.15, 0.12], [0, -0.15, 0.0]]))[0]
    top = slice(int(v_top_hi), int(v_top_lo))
    feet = slice(int(v_feet_hi) + 1, int(v_feet_lo))
    assert np.abs(after.alpha[top] - before.alpha[top]).mean() > 0.1  # the back grew into these rows
    assert before.alpha[feet].max() > 0.5  # the feet are in view...
    np.testing.assert_array_equal(after.rgb[feet], before.rgb[feet])  # ...and untouched
    np.testing.assert_array_equal(after.alpha[feet], before.alpha[feet])


def test_set_and_sweep_through_render(run_dir, tmp_path, capsys):
    res = render(RenderConfig(run=run_dir, out=tmp_path, set=("seat height=0.6", "Legs Type=round"),
                              edit_sweep="Legs Type", sweep_frames=4, fps=10, strip=3, **SMALL))
    assert res.params["Seat Height"] == 0.6 and res.params["Legs Type"] == 1
    names = sorted(p.name for p in res.files)
    assert names == ["orbit_edited.gif", "orbit_edited.mp4", "orbit_strip_edited.png", "sweep_legs_type_edited.gif",
                     "sweep_legs_type_edited.mp4", "sweep_legs_type_strip_edited.png"]
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "sweep_legs_type_strip_edited.png").shape == (40, 2 * 3 * 48 + 2, 3)  # 2 values
    assert count_frames(tmp_path / "sweep_legs_type_edited.mp4") == 4
    # GIF stores repeated frames once with a longer duration: the playing time is what counts
    from PIL import Image

    with Image.open(tmp_path / "sweep_legs_type_edited.gif") as im:
        total = 0
        for i in range(im.n_frames):
            im.seek(i)
            total += im.info["duration"]
    assert total == pytest.approx(400, abs=20)
    import imageio.v3 as iio

    sweep = iio.imread(tmp_path / "sweep_legs_type_edited.gif", index=None)[..., :3].astype(int)
    assert np.abs(sweep[0] - sweep[-1]).mean() > 0.5  # square legs, then round legs
    # an edit of an inactive parameter is allowed but says it does nothing
    render(RenderConfig(run=run_dir, out=tmp_path / "n", set=("Has Back=false", "Back Height=0.2"), orbit=False,
                        width=8, height=8, test_views=False))
    assert "'Back Height' is inactive" in capsys.readouterr().out


def test_camera_file_and_test_views(run_dir, tmp_path):
    asset = load_asset(run_dir)
    cams = orbit_cameras(np.array([0, 0, 0.4]), 2.0, 4, width=40, height=32, name="cam")
    targets = [v.rgb for v in render_views(asset.world_gaussians(), cams, ViewSettings())]
    write_scene(tmp_path / "scene", cams, targets, split={"train": ["cam_0000", "cam_0001"], "test": ["cam_0002", "cam_0003"]},
                extras={"background": [1.0, 1.0, 1.0]})  # the test views use the scene's background
    res = render(RenderConfig(run=run_dir, out=tmp_path / "out", orbit=False, scene=tmp_path / "scene",
                              cameras=tmp_path / "scene" / "transforms.json", modes=("rgb", "depth")))
    names = sorted(str(p.relative_to(tmp_path / "out")) for p in res.files)
    assert names == [f"test/cam_000{i}.png" for i in (2, 3)] + [f"views/cam_000{i}.png" for i in range(4)]
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "out" / "test" / "cam_0002.png").shape == (32, 3 * 40, 3)  # target | rgb | depth
    assert iio.imread(tmp_path / "out" / "views" / "cam_0000.png").shape == (32, 2 * 40, 3)
    assert set(res.test_psnr) == {"cam_0002", "cam_0003"}
    assert min(res.test_psnr.values()) > 35  # targets were rendered from this asset (8-bit PNG round trip)


def test_bare_ply_renders(run_dir, tmp_path):
    res = render(RenderConfig(run=run_dir / "assets" / "splats.ply", out=tmp_path, formats=("gif",), **SMALL))
    assert [p.name for p in res.files] == ["orbit_splats.gif"] and count_frames(res.files[0]) == 5
    with pytest.raises(SplatError, match="needs a run folder"):
        render(RenderConfig(run=run_dir / "assets" / "splats.ply", out=tmp_path, set=("Seat Height=0.5",), **SMALL))


def test_bad_sets_list_the_valid_names_and_ranges():
    space = stool_program().space
    assert parse_sets(["Seat Height = 0.5", "Has Back=no", "Legs Type=1"], space) == {
        "Seat Height": 0.5, "Has Back": False, "Legs Type": 1}
    with pytest.raises(SplatError) as e:
        parse_sets(["Seat Heigth=0.5"], space)
    assert e.value.field == "--set" and "unknown parameter 'Seat Heigth'" in str(e.value)
    assert "'Seat Height' (float in [0.3, 0.7])" in str(e.value) and "0=square, 1=round" in str(e.value)
    with pytest.raises(SplatError, match=r"out of range; valid range is \[0.3, 0.7\]"):
        parse_sets(["Seat Height=0.9"], space)
    with pytest.raises(SplatError, match="is an int"):
        parse_sets(["Legs Type=1.5"], space)
    with pytest.raises(SplatError, match="square"):
        parse_sets(["Legs Type=oval"], space)
    with pytest.raises(SplatError, match="is a bool"):
        parse_sets(["Has Back=maybe"], space)
    with pytest.raises(SplatError, match="is a float"):
        parse_sets(["Seat Height=tall"], space)
    with pytest.raises(SplatError, match="must be finite"):
        parse_sets(["Seat Height=nan"], space)
    with pytest.raises(SplatError, match="expected NAME=VALUE"):
        parse_sets(["Seat Height"], space)


def test_sweep_values_cover_the_range():
    space = stool_program().space
    v = sweep_values(space["Seat Height"], 5)
    assert v == pytest.approx([0.3, 0.5, 0.7, 0.5, 0.3])
    assert sweep_values(space["Legs Type"], 4) == [0, 0, 1, 1]
    assert sweep_values(space["Has Back"], 3) == [False, False, True]
    with pytest.raises(SplatError):
        sweep_values(space["Seat Height"], 1)


def test_bad_options_are_clear_errors(run_dir, tmp_path):
    with pytest.raises(SplatError) as e:
        render(RenderConfig(run=run_dir, out=tmp_path, edit_sweep="Nope", **SMALL))
    assert e.value.field == "--edit-sweep" and "Seat Height" in str(e.value)
    with pytest.raises(SplatError) as e:
        main([str(run_dir), "--frames", "0"])
    assert e.value.field == "--frames"
    with pytest.raises(SplatError, match="no such run folder"):
        main([str(tmp_path / "missing")])
    if not torch.cuda.is_available():
        with pytest.raises(SplatError) as e:
            main([str(run_dir), "--device", "cuda"])
        assert e.value.field == "--device"


def test_cli_prints_one_line_and_exits_2(run_dir, repo_root):
    proc = subprocess.run([sys.executable, str(repo_root / "render.py"), str(run_dir), "--set", "Seat Height=5"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --set: 'Seat Height' = 5 is out of range")


def test_a_run_made_by_the_trainer_renders_and_exports(tmp_path):
    """Integration: train 2 smoke steps on the trainer's tiny synthetic scene, then render its held-out
    views (found through config.json), edit it, and export it."""
    import json

    from splat import presets
    from train_fixtures import make_stool_scene

    from splat.commands.export import ExportConfig, export
    from splat.train import TrainConfig, train

    scene = make_stool_scene(tmp_path / "scene", n_train=3, n_test=2, size=32, num_gaussians=600).parent
    cfg = presets.smoke(TrainConfig(scene=str(scene), output_dir=tmp_path / "out", run="r", threads=1))
    run = train(cfg).run_dir.root
    res = render(RenderConfig(run=run, orbit=False, set=("Height=0.5",), modes=("rgb",)))
    test_names = sorted(json.loads((scene / "transforms.json").read_text())["split"]["test"])
    assert sorted(p.name for p in res.files) == [f"{n}_edited.png" for n in test_names]
    assert all(p.parent == run / "renders" / "test" for p in res.files)
    assert sorted(res.test_psnr) == test_names and res.params["Height"] == 0.5
    out = export(ExportConfig(run=run, set=("Has Back=false",), formats=("assets", "glb")))
    assert load_asset(out.out).params["Has Back"] is False
    # a run without assets (killed, or still training) is read from its latest checkpoint
    from_assets = load_run(run)
    from_ckpt_file = load_run(run / "checkpoints" / "latest.pt")  # a checkpoint names its run too
    shutil.rmtree(run / "assets")
    from_ckpt = load_run(run)
    assert from_ckpt_file.params == pytest.approx(from_ckpt.params)
    assert from_ckpt.params == pytest.approx(from_assets.params)
    np.testing.assert_allclose(from_ckpt.placement, from_assets.placement, atol=1e-6)
    torch.testing.assert_close(from_ckpt.world_gaussians().means, from_assets.world_gaussians().means)
