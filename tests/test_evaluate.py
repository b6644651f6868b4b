"""Tests of the one evaluation (:mod:`splat.evaluate`): ``splat evaluate RUN_DIR`` and the trainer's stage (c).

Budget: < 40 s (one 2-step smoke training run on the trainer's tiny synthetic stool scene, a few
evaluations of it, one subprocess for the CLI convention).
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from splat.errors import SplatError
from splat.commands.evaluate import main
from splat.evaluate import FORMAT, EvalReport


@pytest.fixture(scope="module")
def run_and_scene(tmp_path_factory):
    from splat import presets
    from train_fixtures import make_stool_scene

    from splat.train import TrainConfig, train

    tmp = tmp_path_factory.mktemp("evaluate")
    scene = make_stool_scene(tmp / "scene", n_train=3, n_test=2, size=32, num_gaussians=600).parent
    cfg = presets.smoke(TrainConfig(scene=str(scene), output_dir=tmp / "out", run="r", threads=1))
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, save_renders=True))
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
    assert m["format"] == FORMAT == "splat.eval/1"
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
    for row in test["per_view"].values():
        assert set(row) == {"psnr", "ssim", "psnr_masked", "ssim_masked", "psnr_masked_cc", "depth_err_cm"}
        assert row["psnr_masked_cc"] >= row["psnr_masked"] - 0.05  # the best affine fit can only help (up to clipping)
        assert 0 <= row["depth_err_cm"] < 5  # cm, a tiny run of an exact synthetic scene
    assert test["depth_err_cm"] == pytest.approx(float(np.median([r["depth_err_cm"] for r in test["per_view"].values()])))
    held = m["geometry_vs_test_depth"]  # the held-out views' own points, never seen in training
    assert held["source"] == "test depth fused" and held["reference_points"] > 100
    assert 0 <= held["completeness"] < 0.05 and held["fscore@5cm"] > 0.5
    scan = m["geometry_vs_scan"]
    assert scan["source"] == "train depth fused" and scan["reference_points"] > 100
    for key in ("chamfer_l1", "chamfer_l2", "fscore@1cm", "fscore@2cm", "fscore@5cm"):
        assert math.isfinite(scan[key]) and scan[key] >= 0, key
    assert scan["fscore@1cm"] <= scan["fscore@2cm"] <= scan["fscore@5cm"] <= 1
    assert scan["chamfer_l2"] <= scan["chamfer_l1"]  # distances well under 1 m
    assert scan["normal_consistency"] is None  # a bare point scan has no normals
    size = m["size_vs_scan"]  # the fitted program as the cameras see it against the scan, same estimator
    assert size["source"] == scan["source"] and len(size["fitted_m"]) == len(size["scan_m"]) == 3
    assert size["error_cm"] == pytest.approx([(a - b) * 100 for a, b in zip(size["fitted_m"], size["scan_m"])])
    assert size["max_abs_error_cm"] == pytest.approx(max(abs(e) for e in size["error_cm"]))
    assert all(0.1 < x < 2.0 for x in size["scan_m"])
    assert m["geometry_vs_gt_mesh"] is None  # every key present; null where the part does not apply
    assert m["settings"] == {"surface_samples": 2000, "seed": 0, "backend": "auto", "near_plane": 0.01,
                             "background": [1.0, 1.0, 1.0]}
    assert m["program"] == "stool" and m["num_gaussians"] > 0 and m["run"] == str(run.resolve())
    pe = m["param_errors"]
    assert math.isfinite(pe["continuous_mae_pct"]) and pe["n_continuous"] == 2
    assert pe["discrete_accuracy"] in (0.0, 1.0) and pe["n_discrete"] == 1
    assert pe["discrete_structure_recovered"] == (pe["discrete_accuracy"] == 1.0)
    assert pe["continuous_max_pct"] >= pe["continuous_mae_pct"]
    assert set(pe["per_param"]) == {"Width", "Height", "Has Back"}
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
    gm = json.loads((tmp_path / "m.json").read_text())["geometry_vs_gt_mesh"]
    assert gm["source"] == "gt_mesh.ply" and gm["reference_points"] == 500
    assert m.geometry_vs_gt_mesh.chamfer_l1 == gm["chamfer_l1"]
    assert gm["chamfer_l2"] == pytest.approx(0.0, abs=1e-12) and gm["fscore@1cm"] == 1.0
    assert gm["normal_consistency"] == pytest.approx(1.0)


def _assert_same(a, b, path="") -> None:
    """Same keys everywhere, same strings/bools/nulls, numbers within float tolerance."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, sorted(a), sorted(b) if isinstance(b, dict) else b)
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert isinstance(b, (int, float)) and b == pytest.approx(a, rel=1e-6, abs=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_trainer_metrics_and_splat_evaluate_are_one_report(run_and_scene):
    """metrics.json (the trainer's stage (c)) and eval_metrics.json (``splat evaluate RUN`` with its
    defaults, read from the run's config.json) have one schema and, for the same run, the same numbers."""
    run, _ = run_and_scene
    trained = json.loads((run / "metrics.json").read_text())
    report = main([str(run)])
    evaluated = json.loads((run / "eval_metrics.json").read_text())
    assert evaluated == report.as_dict()
    assert trained["format"] == evaluated["format"] == FORMAT
    assert trained["seconds"] > 0 and evaluated["seconds"] > 0  # wall times: the one field that differs
    trained.pop("seconds"), evaluated.pop("seconds")
    _assert_same(trained, evaluated)
    # the typed report reads back what it wrote
    assert EvalReport.from_dict(evaluated | {"seconds": 1.0}).as_dict() == evaluated | {"seconds": 1.0}


def test_trainer_saves_test_view_renders(run_and_scene):
    run, scene = run_and_scene
    names = json.loads((scene / "transforms.json").read_text())["split"]["test"]
    got = sorted(p.name for p in (run / "renders").glob("*.png"))
    assert got == sorted([f"{n}.png" for n in names] + [f"{n}_target.png" for n in names])


def test_renders_option_and_report_round_trip(run_and_scene, tmp_path):
    run, _ = run_and_scene
    report = main([str(run), "--out", str(tmp_path / "m.json"), "--renders", str(tmp_path / "r")])
    assert len(list((tmp_path / "r").glob("*_target.png"))) == report.test.num_views == 2
    back = EvalReport.from_dict(json.loads((tmp_path / "m.json").read_text()))
    assert back.as_dict() == report.as_dict()
    assert back.param_errors.n_discrete == 1 and back.geometry_vs_gt_mesh is None
    with pytest.raises(SplatError, match="format"):
        EvalReport.from_dict({"format": "other/1"})


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
