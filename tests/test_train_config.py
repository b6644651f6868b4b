"""Training config: presets, CLI overrides, validation errors, config.json round trip, checkpoints.

Budget: < 10 s (the two CLI subprocess checks dominate).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from splat import presets
from splat.errors import SplatError
from splat.train import TrainConfig, config_from_dict, config_to_dict, load_config, save_config, validate_config
from splat.runs import load_checkpoint, resolve_run_dir, save_checkpoint
from splat.workspace import SCENES_DIR

REPO = Path(__file__).resolve().parents[1]


def _parse(argv):
    from splat.commands.train import parse_config

    return parse_config(argv)


def test_every_preset_is_valid_and_has_its_scene():
    for name in presets.PRESETS:
        cfg = presets.preset(name)
        validate_config(cfg)
        assert (SCENES_DIR / name / "transforms.json").is_file()
        validate_config(presets.smoke(cfg))


def test_cli_overrides_any_preset_field():
    cfg = _parse(["--scene", "chair", "--optim.steps", "7", "--gaussians.sh-degree", "1", "--search.no-enabled",
                  "--background", "0.1", "0.2", "0.3"])
    assert cfg.scene == "chair" and cfg.optim.steps == 7 and cfg.gaussians.sh_degree == 1
    assert not cfg.search.enabled and cfg.background == (0.1, 0.2, 0.3)
    assert cfg.densify == presets.preset("chair").densify  # untouched fields keep the preset's values


def test_scene_folder_path_is_accepted(tmp_path):
    assert _parse(["--scene", str(tmp_path)]).scene == str(tmp_path)


@pytest.mark.parametrize("argv, field", [
    (["--optim.steps", "-1"], "optim.steps"),
    (["--gaussians.init-opacity", "1.5"], "gaussians.init_opacity"),
    (["--loss.ssim", "2"], "loss.ssim"),
    (["--gaussians.sh-degree", "9"], "gaussians.sh_degree"),
    (["--densify.max-gaussians", "10"], "densify.max_gaussians"),
    (["--optim.lr-means", "nan"], "optim.lr_means"),
])
def test_bad_values_name_the_field(argv, field):
    with pytest.raises(SplatError) as err:
        _parse(argv)
    assert err.value.field == field


def test_unknown_scene_is_a_clear_error():
    with pytest.raises(SplatError, match="unknown scene 'nope'"):
        presets.preset("nope")


@pytest.mark.parametrize("argv, text", [
    (["--scene", "nope"], "unknown scene 'nope'"),
    (["--optim.steps", "-3"], "optim.steps: must be >= 0"),
])
def test_cli_prints_one_line_and_exits_2(argv, text):
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0]


def test_config_json_round_trip(tmp_path):
    cfg = dataclasses.replace(presets.preset("chair"), background=(1.0, 1.0, 1.0), output_dir=tmp_path)
    save_config(tmp_path / "config.json", cfg)
    assert load_config(tmp_path / "config.json") == cfg
    assert config_from_dict(TrainConfig, json.loads(json.dumps(config_to_dict(cfg)))) == cfg


@pytest.mark.parametrize("patch, field", [
    ({"optim": {"steps": "ten"}}, "optim.steps"),
    ({"optim": {"stepz": 3}}, "optim.stepz"),
    ({"backend": "metal"}, "backend"),
    ({"gaussians": {"constant_color": [0.5, 0.5]}}, "gaussians.constant_color"),
])
def test_bad_config_json_names_file_and_field(tmp_path, patch, field):
    data = config_to_dict(TrainConfig())
    for k, v in patch.items():
        data[k] = {**data[k], **v} if isinstance(v, dict) else v
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SplatError) as err:
        load_config(path)
    assert err.value.field == field and err.value.file == str(path)


def test_malformed_config_json(tmp_path):
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(SplatError, match="malformed JSON"):
        load_config(tmp_path / "config.json")


def test_checkpoint_is_atomic_and_weights_only(tmp_path):
    g = torch.Generator().manual_seed(3)
    state = {"step": 5, "stage": "joint", "params": {"a": torch.randn(4, generator=g)}, "rng": g.get_state(),
             "names": ["x", "y"], "flag": True}
    save_checkpoint(tmp_path, state)
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]  # no temporary file left behind
    back = load_checkpoint(tmp_path)
    assert back["step"] == 5 and back["names"] == ["x", "y"]
    torch.testing.assert_close(back["params"]["a"], state["params"]["a"])
    assert load_checkpoint(tmp_path / "missing") is None
    (tmp_path / "latest.pt").write_bytes(b"garbage")
    with pytest.raises(SplatError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path)


def test_run_dir_resolution(tmp_path):
    rd = resolve_run_dir(tmp_path, "assets/scenes/chair/", "", resume=False)
    assert rd.root.parent == tmp_path / "chair"
    with pytest.raises(SplatError, match="resume"):
        resolve_run_dir(tmp_path, "chair", "", resume=True)
    with pytest.raises(SplatError, match="plain folder name"):
        resolve_run_dir(tmp_path, "chair", "../x", resume=False)
