"""Training config: presets, CLI overrides, validation errors, config.json round trip, checkpoints.

The config's library sections (search, gaussians, densify, raster) are the library's settings classes
themselves; the pinned chair values below are the ones the trainer used before they were embedded.

Budget: < 10 s (the two CLI subprocess checks dominate).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import math
import subprocess
import typing
import sys
from pathlib import Path

import pytest
import torch

from splat import presets
from splat.errors import SplatError
from splat.gaussians import DensifySettings, InitSettings
from splat.ops import ChamferSettings
from splat.render import RasterSettings
from splat.search import SearchSettings
from splat.config import TrainConfig, config_from_dict, config_to_dict, load_config, save_config, validate_config
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


def test_chair_preset_resolves_to_the_values_the_trainer_used():
    cfg = presets.preset("chair")
    assert isinstance(cfg.search, SearchSettings) and isinstance(cfg.gaussians, InitSettings)
    assert isinstance(cfg.densify, DensifySettings) and isinstance(cfg.raster, RasterSettings)
    s = cfg.search
    assert (s.population, s.generations, s.final_refine.steps) == (32, 20, 150)
    assert s.placement == dataclasses.replace(SearchSettings().placement)  # floor None: the trainer's scan floor
    assert cfg.structure.search and cfg.structure.silhouette_check
    assert (cfg.scan.points, cfg.scan.voxel) == (20000, 0.005)
    g = cfg.gaussians
    assert (g.num_init, g.sh_degree, g.flatness, g.init_opacity, g.color_mode, g.constant_color,
            g.per_copy_residuals) == (12000, 0, 0.15, 0.7, "project", (0.5, 0.5, 0.5), True)
    o = cfg.optim
    assert (o.steps, o.lr_program, o.lr_placement, o.program_start) == (1000, 5e-3, 1e-3, 100)
    lc = cfg.loss
    assert (lc.mesh_silhouette, lc.mesh_depth, lc.mesh_max_residual, lc.gaussian_geometry_grad) == (1.0, 1.0, 0.02, False)
    assert (o.lr_means, o.lr_scales, o.lr_quats, o.lr_opacities, o.lr_colors) == (2e-3, 5e-3, 1e-3, 5e-2, 2.5e-3)
    d = cfg.densify
    assert (d.enabled, d.start, d.stop, d.every, d.max_gaussians) == (True, 100, 800, 100, 40000)
    assert (d.grad_threshold, d.split_scale, d.prune_opacity) == (2e-4, 0.01, 0.01)
    assert cfg.raster == RasterSettings() and cfg.backend == "auto"
    assert cfg.seed == 0 and cfg.background is None
    for name in ("table", "cabinet"):  # the chair's settings
        assert presets.preset(name) == dataclasses.replace(cfg, scene=name)


def test_one_default_per_concept():
    assert TrainConfig().gaussians == InitSettings() and InitSettings().num_init == 12000
    assert TrainConfig().densify == DensifySettings() and TrainConfig().search == SearchSettings()
    assert TrainConfig().raster == RasterSettings()


def _class_docstrings(cls) -> set[str]:
    """Names of the fields of ``cls`` followed by a docstring in its source (what tyro shows as help)."""
    body = ast.parse(inspect.getsource(cls).strip()).body[0].body
    return {a.target.id for a, b in zip(body, body[1:]) if isinstance(a, ast.AnnAssign)
            and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)}


def test_every_config_field_has_a_docstring():
    todo, seen, missing = [TrainConfig], set(), []
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        documented = _class_docstrings(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in documented:
                missing.append(f"{cls.__name__}.{f.name}")
            tps = [hints[f.name], *typing.get_args(hints[f.name])]
            todo += [t for t in tps if dataclasses.is_dataclass(t)]
    assert not missing, missing
    assert {SearchSettings, InitSettings, DensifySettings, RasterSettings, ChamferSettings} <= seen


def test_cli_overrides_any_preset_field():
    cfg = _parse(["--scene", "chair", "--optim.steps", "7", "--gaussians.sh-degree", "1", "--structure.no-search",
                  "--background", "0.1", "0.2", "0.3", "--search.population", "6", "--search.final-refine.steps",
                  "3", "--gaussians.num-init", "8000", "--raster.backend", "torch", "--densify.every", "50"])
    assert cfg.scene == "chair" and cfg.optim.steps == 7 and cfg.gaussians.sh_degree == 1
    assert not cfg.structure.search and cfg.background == (0.1, 0.2, 0.3)
    assert cfg.search.population == 6 and cfg.search.final_refine.steps == 3 and cfg.gaussians.num_init == 8000
    assert cfg.raster.backend == "torch" and cfg.densify.every == 50
    chair = presets.preset("chair")
    assert cfg.densify == dataclasses.replace(chair.densify, every=50)  # untouched fields keep the preset's values
    assert cfg.search.generations == chair.search.generations and cfg.loss == chair.loss


def test_densify_schedule():
    d = DensifySettings(start=3, stop=10, every=2)
    assert [s for s in range(12) if d.collects(s)] == list(range(10))
    assert [s for s in range(12) if d.due(s)] == [4, 6, 8]  # after steps 4, 6, 8 (0-based): (s+1-start) % every
    assert not any(dataclasses.replace(d, enabled=False).collects(s) for s in range(12))


def test_trainer_hands_the_search_section_through(monkeypatch):
    """The search gets ``cfg.search`` itself, with the run's seed, progress setting and scan floor."""
    import splat.search
    from splat.train.search_stage import search_stage

    class Stop(Exception):
        pass

    got = {}

    def fake_search(program, scan, settings, views=None):
        got["settings"] = settings
        raise Stop

    monkeypatch.setattr(splat.search, "search", fake_search)
    data = type("Data", (), {"floor": -0.25, "depths": None, "scan": torch.zeros(4, 3), "masks": None})()
    cfg = dataclasses.replace(presets.preset("chair"), seed=7, log=dataclasses.replace(TrainConfig().log, progress=False))
    with pytest.raises(Stop):
        search_stage(None, data, cfg, torch.Generator())
    want = dataclasses.replace(cfg.search, seed=7, progress=False,
                               placement=dataclasses.replace(cfg.search.placement, floor=-0.25))
    assert got["settings"] == want
    stated = dataclasses.replace(cfg, search=dataclasses.replace(
        cfg.search, placement=dataclasses.replace(cfg.search.placement, floor=0.5)))
    with pytest.raises(Stop):
        search_stage(None, data, stated, torch.Generator())
    assert got["settings"].placement.floor == 0.5  # a stated floor wins over the scan's


def test_scene_folder_path_is_accepted(tmp_path):
    assert _parse(["--scene", str(tmp_path)]).scene == str(tmp_path)


@pytest.mark.parametrize("argv, field", [
    (["--optim.steps", "-1"], "optim.steps"),
    (["--gaussians.init-opacity", "1.5"], "gaussians.init_opacity"),
    (["--loss.ssim", "2"], "loss.ssim"),
    (["--gaussians.sh-degree", "9"], "gaussians.sh_degree"),
    (["--densify.max-gaussians", "10"], "densify.max_gaussians"),
    (["--optim.lr-means", "nan"], "optim.lr_means"),
    (["--gaussians.num-init", "0"], "gaussians.num_init"),
    (["--search.population", "1"], "search.population"),
    (["--search.final-refine.steps", "-1"], "search.final_refine.steps"),
    (["--search.placement.yaw-range", "-1"], "search.placement.yaw_range"),
    (["--search.seed", "3"], "search.seed"),
    (["--densify.every", "0"], "densify.every"),
    (["--scan.points", "3"], "scan.points"),
    (["--raster.render-mode", "RGB+D"], "raster.render_mode"),
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
    base = presets.preset("chair")
    search = dataclasses.replace(base.search, margin_scale=None, selection="truncation",
                                 final_chamfer=ChamferSettings(squared=True, clamp=0.5),
                                 placement=dataclasses.replace(base.search.placement, floor=-0.1))
    cfg = dataclasses.replace(base, background=(1.0, 1.0, 1.0), output_dir=tmp_path, search=search,
                              gaussians=dataclasses.replace(base.gaussians, color_mode="constant",
                                                            constant_color=(0.2, 0.3, 0.4)),
                              raster=RasterSettings(backend="torch", eps2d=0.1))
    save_config(tmp_path / "config.json", cfg)
    assert load_config(tmp_path / "config.json") == cfg
    assert config_from_dict(TrainConfig, json.loads(json.dumps(config_to_dict(cfg)))) == cfg
    assert load_config(tmp_path / "config.json").search.placement.yaw_range == math.pi


def _merge(data, patch):
    for k, v in patch.items():
        data[k] = _merge(dict(data[k]), v) if isinstance(v, dict) and isinstance(data.get(k), dict) else v
    return data


@pytest.mark.parametrize("patch, field", [
    ({"optim": {"steps": "ten"}}, "optim.steps"),
    ({"optim": {"stepz": 3}}, "optim.stepz"),
    ({"raster": {"backend": "metal"}}, "raster.backend"),
    ({"raster": {"eps2d": -1.0}}, "raster.eps2d"),  # RasterSettings checks itself on construction
    ({"search": {"chamfer": {"trim": 2.0}}}, "search.chamfer"),  # so does ChamferSettings (ValueError)
    ({"search": {"final_refine": {"steps": -2}}}, "search.final_refine.steps"),
    ({"search": {"selection": "roulette"}}, "search.selection"),
    ({"gaussians": {"constant_color": [0.5, 0.5]}}, "gaussians.constant_color"),
    ({"gaussians": {"init_color": "project"}}, "gaussians.init_color"),  # the former layout's key
    ({"backend": "cpu"}, "backend"),  # the former layout's top-level backend
])
def test_bad_config_json_names_file_and_field(tmp_path, patch, field):
    data = _merge(config_to_dict(TrainConfig()), patch)
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
