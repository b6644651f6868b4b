"""Choosing the program (splat.search.choose, --program auto): ranking, settings, errors, the trainer and
search CLI hooks (budget: ~60 s, the searches are shrunk)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from splat.errors import SplatError
from splat.program import load_program
from splat.search import SearchSettings, synthetic_scan
from splat.search.choose import ChoiceSettings, choose_program, first_round_settings, library_programs
from splat.search.refine import RefineSettings

SMALL = SearchSettings(population=8, generations=2, turned_generations=0, polish_rounds=0, refine_top=2,
                       final_refine=RefineSettings(steps=15, lr=0.01, final_lr_fraction=0.01, samples=512),
                       target_points=1024, final_target_points=1024, compare_samples=2048, samples=256,
                       progress=False)
QUICK = ChoiceSettings(population=6, generations=2, polish_rounds=0, final_steps=5, finalists=2)


def _scan(name: str, params: dict, seed: int = 0):
    prog = load_program(name)
    a = dict(prog.defaults(), **params)
    g = torch.Generator().manual_seed(seed)
    return synthetic_scan(prog, a, 3000, g, translation=(0.05, -0.02, 0.0), yaw=0.2, noise=0.001)


def test_first_round_is_cheaper_and_keeps_scoring():
    s = SearchSettings()
    q = first_round_settings(s, ChoiceSettings())
    assert q.population < s.population and q.generations < s.generations
    assert q.turned_generations == 0 and q.final_refine.steps < s.final_refine.steps
    assert q.polish.steps == 10 < s.polish.steps and q.polish.samples == s.polish.samples
    assert q.chamfer == s.chamfer and q.placement == s.placement and q.seed == s.seed
    q.validate()


@pytest.mark.slow
def test_choice_finds_the_sideboard_among_storage():
    """Two drawers over two doors under an overhanging top: the sideboard, not the cabinet or bookshelf."""
    scan = _scan("sideboard", {"Width": 1.5, "Height": 0.85, "Columns": 2, "Has Drawers": True,
                               "Drawer Rows": 1, "Has Doors": True, "Top Overhang": 0.04})
    lines = []
    choice = choose_program(library_programs("storage"), scan, SMALL, QUICK, log=lines.append)
    assert choice.program.name == "sideboard"
    names = [c.name for c in choice.ranking]
    assert sorted(names) == ["bookshelf", "cabinet", "sideboard"] and names[0] == "sideboard"
    assert choice.margin > 0.1
    finalists = [c for c in choice.ranking if c.fitness is not None]
    assert 1 <= len(finalists) <= QUICK.finalists and choice.ranking[0].fitness == choice.result.fitness
    assert all(c.fitness is not None for c in choice.ranking[: len(finalists)])  # finalists first
    assert choice.result.program == "sideboard" and "Columns" in choice.ranking[0].structure
    assert len(lines) == 3 + len(finalists)
    doc = json.loads(json.dumps(choice.as_dict()))
    assert doc["format"] == "splat.choice/1" and doc["program"] == "sideboard"
    assert "sideboard" in choice.summary().splitlines()[1]


@pytest.mark.slow
def test_choice_tells_a_stool_from_a_chair():
    scan = _scan("stool", {"Seat Shape": 0, "Base Type": 0, "Leg Shape": 0, "Has Stretchers": True,
                           "Height": 0.6, "Seat Width": 0.38, "Seat Depth": 0.36}, seed=1)
    programs = [load_program("chair"), load_program("stool")]
    choice = choose_program(programs, scan, SMALL, dataclasses.replace(QUICK, finalists=1))
    assert choice.program.name == "stool"
    assert [c.fitness is not None for c in choice.ranking] == [True, False]
    assert math.isfinite(choice.margin) and choice.margin > 0  # from the first round (one finalist)


def test_choice_errors():
    scan = _scan("bed", {})
    with pytest.raises(SplatError, match="no candidate programs"):
        choose_program([], scan, SMALL, QUICK)
    with pytest.raises(SplatError, match="share a name"):
        choose_program([load_program("bed"), load_program("bed")], scan, SMALL, QUICK)
    with pytest.raises(SplatError) as err:
        choose_program([load_program("bed")], scan, SMALL, dataclasses.replace(QUICK, finalist_ratio=0.5))
    assert err.value.field == "finalist_ratio"
    with pytest.raises(SplatError) as err:
        library_programs("garden")
    assert err.value.field == "--category"


def test_workspace_hook(tmp_path):
    from splat.data import load_scene
    from splat.workspace import program_for, scene_dir, wants_program_choice

    stool = load_scene(scene_dir("stool"))  # names no program
    chair = load_scene(scene_dir("chair"))
    assert wants_program_choice(stool) and wants_program_choice(chair, "auto")
    assert not wants_program_choice(chair) and not wants_program_choice(stool, "table")
    assert program_for(stool, "table").name == "table"
    with pytest.raises(SplatError, match="chosen by the structure search"):
        program_for(chair, "auto")


@pytest.mark.slow
def test_train_with_program_auto_records_the_choice(tmp_path):
    """The stool scene names no program: auto within a category; config.json then names the winner, so
    export/evaluate/resume find it."""
    from splat import presets
    from splat.config import TrainConfig, load_config
    from splat.train import train

    cfg = presets.smoke(TrainConfig(scene="stool", category="seating", output_dir=tmp_path, run="r", threads=1))
    cfg = dataclasses.replace(cfg, choice=dataclasses.replace(QUICK, finalists=1))
    res = train(cfg)
    choice = json.loads((res.run_dir.root / "choice.json").read_text())
    assert choice["format"] == "splat.choice/1"
    assert sorted(c["name"] for c in choice["ranking"]) == ["chair", "sofa", "stool"]
    saved = load_config(res.run_dir.config)
    assert saved.program == choice["program"] and saved.category == "seating"
    assert json.loads((res.run_dir.root / "assets" / "params.json").read_text())["program"] == choice["program"]


@pytest.mark.slow
def test_search_cli_auto(tmp_path):
    from splat.commands.search import main
    from splat.data import write_ply_points

    write_ply_points(tmp_path / "scan.ply", _scan("bed", {"Has Footboard": True}))
    main(["--program", "auto", "--category", "bed", "--points", str(tmp_path / "scan.ply"), "--out",
          str(tmp_path / "best.json"), "--population", "6", "--generations", "1", "--final-steps", "5",
          "--polish-rounds", "0", "--no-progress"])
    doc = json.loads((tmp_path / "best.json").read_text())
    assert doc["format"] == "splat.search/1" and doc["program"] == "bed"
    assert doc["choice"]["ranking"][0]["name"] == "bed" and "result" not in doc["choice"]
    with pytest.raises(SplatError) as err:
        main(["--program", "chair", "--category", "bed", "--points", "x.ply", "--out", str(tmp_path / "o.json")])
    assert err.value.field == "--category"
