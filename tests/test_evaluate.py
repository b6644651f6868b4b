"""Tests of the evaluation entry point ``splat evaluate RUN_DIR``.

Budget: < 30 s (one 2-step smoke training run on the trainer's tiny synthetic stool scene, one
subprocess for the CLI convention).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from splat.errors import SplatError
from splat.commands.evaluate import main


@pytest.fixture(scope="module")
def run_and_scene(tmp_path_factory):
    from splat import presets
    from train_fixtures import make_stool_scene

    from splat.train import TrainConfig, train

    tmp = tmp_path_factory.mktemp("evaluate")
    scene = make_stool_scene(tmp / "scene", n_train=3, n_test=2, size=32, num_gaussians=600).parent
    cfg = presets.smoke(TrainConfig(scene=str(scene), output_dir=tmp / "out", run="r", threads=1))
    return train(cfg).run_dir.root, scene


def _finite_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _finite_numbers(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _finite_numbers(v)
    elif isinstance(obj, float):
        yield obj


def test_writes_metrics_with_expected_keys(run_and_scene, tmp_path, capsys):
    run, scene = run_and_scene
    out = tmp_path / "m.json"
    main([str(run), "--out", str(out), "--surface-samples", "2000"])
    printed = capsys.readouterr().out
    assert "PSNR full / masked" in printed and f"wrote {out}" in printed
    m = json.loads(out.read_text())
    test = m["test"]
    test_names = json.loads((scene / "transforms.json").read_text())["split"]["test"]
    assert test["num_views"] == 2 and sorted(test["per_view"]) == sorted(test_names)
    # the same model on the same views as the trainer's own stage (c)
    trained = json.loads((run / "metrics.json").read_text())
    assert test["psnr"] == pytest.approx(trained["test"]["psnr"], abs=1e-3)
    assert test["ssim"] == pytest.approx(trained["test"]["ssim"], abs=1e-4)
    for key in ("psnr", "ssim", "psnr_masked", "ssim_masked"):
        assert math.isfinite(test[key]), key
    assert 0 < test["ssim"] <= 1 and test["psnr"] > 5
    scan = m["geometry_vs_scan"]
    assert scan["source"] == "train depth fused"
    for key in ("chamfer_l1", "chamfer_l2", "fscore@1cm", "fscore@2cm", "fscore@5cm"):
        assert math.isfinite(scan[key]) and scan[key] >= 0, key
    assert scan["fscore@1cm"] <= scan["fscore@2cm"] <= scan["fscore@5cm"] <= 1
    assert scan["chamfer_l2"] <= scan["chamfer_l1"]  # distances well under 1 m
    assert scan["normal_consistency"] is None  # a bare point scan has no normals
    pe = m["param_errors"]
    assert math.isfinite(pe["continuous_mae_pct"]) and pe["n_continuous"] == 2
    assert pe["discrete_accuracy"] in (0.0, 1.0) and pe["n_discrete"] == 1
    assert set(m["params"]) == {"Width", "Height", "Has Back"}
    assert all(math.isfinite(x) for x in _finite_numbers(m))


def test_gt_mesh_metrics_and_scene_override(run_and_scene, tmp_path):
    """With a gt_mesh in the scene, the mesh block appears with a normal consistency; exact self-match:
    the run's own program surface written as the GT mesh scores Chamfer 0 and F-score 1."""
    import shutil

    import torch
    import trimesh

    from splat.export import load_asset

    run, scene = run_and_scene
    scene2 = tmp_path / "scene"
    shutil.copytree(scene, scene2)
    rm = load_asset(run).geometry(dtype=torch.float64).realize()
    faces = rm.faces[rm.face_active[0]].numpy()
    trimesh.Trimesh(rm.verts[0].numpy(), faces, process=False).export(scene2 / "gt_mesh.ply")
    meta = json.loads((scene2 / "transforms.json").read_text())
    meta["gt_mesh"] = "gt_mesh.ply"
    (scene2 / "transforms.json").write_text(json.dumps(meta))
    m = main([str(run), "--scene", str(scene2), "--out", str(tmp_path / "m.json"), "--surface-samples", "500"])
    gm = m["geometry_vs_gt_mesh"]
    assert gm["chamfer_l2"] == pytest.approx(0.0, abs=1e-12) and gm["fscore@1cm"] == 1.0
    assert gm["normal_consistency"] == pytest.approx(1.0)


def test_bad_run_dir_is_a_user_error(tmp_path):
    with pytest.raises(SplatError):
        main([str(tmp_path / "missing")])
    with pytest.raises(SplatError):
        main([str(tmp_path)])  # exists but holds no run


def test_cli_bad_path_prints_one_line_and_exits_2(tmp_path, repo_root):
    proc = subprocess.run([sys.executable, "-m", "splat", "evaluate", str(tmp_path / "nope")], cwd=repo_root,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nope" in lines[0]
