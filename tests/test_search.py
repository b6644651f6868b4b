"""Structure search: genomes, fitness, bad input, determinism, CLI (fast; budget < 25 s in all)."""

import json
import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from splat.data import write_ply_points
from splat.errors import SplatError
from splat.ops.chamfer import ChamferSettings
from splat.params import Param, ParamSpace
from splat.program import ShapeProgram, load_program
from splat.search import (
    GenomeSpace,
    PlacementBox,
    PlacementSettings,
    RefineSettings,
    SearchSettings,
    population_fitness,
    search,
    synthetic_scan,
)
from splat.search.genome import Population

# A one-cube program whose cube a bool switches off: "no active geometry" for some genomes.
BOX_GRAPH = {"format": "splat.geonodes/1", "main": "Box", "trees": {"Box": {
    "interface": {"inputs": [{"name": "Size", "type": "FLOAT", "default": 0.5, "min": 0.1, "max": 1.0},
                             {"name": "Has Box", "type": "BOOLEAN", "default": True}],
                  "outputs": [{"name": "Geometry", "type": "GEOMETRY"}]},
    "nodes": {"Group Input": {"type": "NodeGroupInput"}, "Group Output": {"type": "NodeGroupOutput"},
              "Cube": {"type": "GeometryNodeMeshCube"},
              "Switch": {"type": "GeometryNodeSwitch", "properties": {"input_type": "GEOMETRY"}}},
    "links": [{"from_node": "Group Input", "from_socket": "Size", "to_node": "Cube", "to_socket": "Size"},
              {"from_node": "Cube", "from_socket": "Mesh", "to_node": "Switch", "to_socket": "True"},
              {"from_node": "Group Input", "from_socket": "Has Box", "to_node": "Switch", "to_socket": "Switch"},
              {"from_node": "Switch", "from_socket": "Output", "to_node": "Group Output", "to_socket": "Geometry"}]}}}

TINY = SearchSettings(population=8, generations=3, samples=128, target_points=256, refine_top=2,
                      refine=RefineSettings(steps=2, samples=128),
                      final_refine=RefineSettings(steps=3, samples=256), final_target_points=512,
                      polish=RefineSettings(steps=3, samples=128), progress=False)


@pytest.fixture(scope="module")
def box():
    return ShapeProgram.from_dict({"format": "splat.program/1", "name": "box", "graph": BOX_GRAPH})


@pytest.fixture(scope="module")
def chair():
    return load_program("chair")


def _scan(program, params, n=2000, seed=0, **kw):
    return synthetic_scan(program, params, n, torch.Generator().manual_seed(seed), **kw)


def test_canonical_genomes_ignore_inactive_genes(chair):
    box = PlacementBox((-1, -1, 0), (1, 1, 0.1), yaw_range=0.5)
    gs = GenomeSpace(chair.space, box)
    pop = gs.random(64, torch.Generator().manual_seed(0))
    da, ca = gs.active_masks(pop)
    assert bool((pop.disc[~da] == gs.disc_default.expand_as(pop.disc)[~da]).all())
    assert bool((pop.cont[~ca] == gs.cont_default.expand_as(pop.cont)[~ca]).all())
    # Two genomes differing only in an inactive gene are the same genome (same key, same fitness).
    j = [p.name for p in gs.continuous].index("Arm Height")
    i = int(torch.nonzero(~ca[:, j])[0])
    other = Population(pop.disc[i : i + 1].clone(), pop.cont[i : i + 1].clone())
    other.cont[0, j] = 0.123
    assert gs.keys(gs.canonical(other)) == gs.keys(Population(pop.disc[i : i + 1], pop.cont[i : i + 1]))
    # Mutation and crossover keep genomes canonical and genes in range.
    kids = gs.mutate(gs.crossover(pop, pop.__class__(pop.disc.flip(0), pop.cont.flip(0)),
                                  torch.Generator().manual_seed(1)), torch.Generator().manual_seed(2),
                     rate=0.5, sigma=0.2)
    assert gs.keys(gs.canonical(kids)) == gs.keys(kids)
    assert bool(((kids.disc >= gs.disc_low) & (kids.disc <= gs.disc_high)).all())
    assert bool(((kids.cont >= 0) & (kids.cont <= 1)).all())


def test_placement_decodes_the_box():
    box = PlacementBox.from_scan(torch.tensor([[0.0, 0, 1], [2, 4, 3]]), margin=0.5, z_margin=1.0, yaw_range=1.0,
                                 snap_to_floor=False)
    assert not box.snap and PlacementBox.from_scan(torch.tensor([[0.0, 0, 1], [2, 4, 3]])).snap
    assert box.translation_low[:2] == (0.0, 0.0) and box.translation_high[:2] == (2.0, 4.0)
    assert box.translation_low[2] == pytest.approx(0.0, abs=0.01) and box.translation_high[2] == pytest.approx(2.0, abs=0.01)
    space = ParamSpace((Param("a", "float", 0.0, 1.0, 0.5),))
    pl = GenomeSpace(space, box).placement_of(torch.tensor([[0.3, 0.5, 0.5, 0.5, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(pl.translation[:, :2], torch.tensor([[1.0, 2.0]]))
    assert float(pl.translation[0, 2]) == pytest.approx(1.0, abs=0.01)
    assert float(pl.yaw) == pytest.approx(1.0) and float(pl.scale) == 1.0


def test_no_active_geometry_scores_inf_and_search_still_works(box):
    scan = _scan(box, {"Size": 0.4, "Has Box": True})
    gs = GenomeSpace(box.space, PlacementBox.from_scan(scan, yaw_range=0.0))
    pop = Population(torch.tensor([[1], [0]]), torch.tensor([[0.3333, 0.5, 0.5, 0.5, 0.5]] * 2, dtype=torch.float64))
    pop = Population(pop.disc, pop.cont[:, : gs.n_cont])
    fit = population_fitness(box, gs, pop, scan, 256, torch.Generator().manual_seed(0), ChamferSettings())
    assert math.isfinite(float(fit[0])) and math.isinf(float(fit[1]))
    res = search(box, scan, replace(TINY, generations=6, placement=PlacementSettings(yaw_range=0.0)))
    assert res.params["Has Box"] is True and abs(res.params["Size"] - 0.4) < 0.02
    assert all(math.isfinite(h) for h in res.history) and list(res.history) == sorted(res.history, reverse=True)


@pytest.mark.parametrize("points,match", [
    (np.zeros((0, 3)), "0 finite points"),
    (np.full((500, 3), np.nan), "0 finite points"),
    (np.random.default_rng(0).random((5, 3)), "5 finite points"),
    (np.zeros((10, 2)), r"\[P, 3\]"),
    (np.ones((100, 3)), "coincide"),
])
def test_bad_scans_raise(box, points, match):
    with pytest.raises(SplatError, match=match) as e:
        search(box, points, TINY, scan_file="scan.ply")
    assert e.value.file == "scan.ply" and e.value.field == "points"


def test_empty_ranges_raise():
    scan = torch.rand(100, 3, generator=torch.Generator().manual_seed(0))
    box = PlacementBox.from_scan(scan)
    with pytest.raises(SplatError, match="empty") as e:
        GenomeSpace(ParamSpace((Param("w", "float", 1.0, 0.5, 0.7),)), box, file="p.json")
    assert e.value.field == "w" and e.value.file == "p.json"
    with pytest.raises(SplatError, match="not finite"):
        GenomeSpace(ParamSpace((Param("w", "float", 0.0, math.inf, 0.7),)), box)
    with pytest.raises(SplatError, match="nothing|no parameter"):
        GenomeSpace(ParamSpace((Param("w", "float", 0.5, 0.5, 0.5), Param("n", "int", 2, 2, 2))), box)
    with pytest.raises(SplatError, match="no parameter"):
        GenomeSpace(ParamSpace(()), box)


def test_deterministic_for_a_seed(box):
    scan = _scan(box, {"Size": 0.7, "Has Box": True}, seed=3)
    a = search(box, scan, replace(TINY, seed=5))
    b = search(box, scan, replace(TINY, seed=5))
    assert a == b
    assert a.program == "box" and a.evaluations > 0 and len(a.history) >= 1


def test_cli_writes_json_and_reports_bad_input(tmp_path, box, capsys):
    # In-process (run_cli + main) to keep the test fast; `splat search` is the same main.
    from splat.cli import run_cli
    from splat.commands.search import main

    scan = _scan(box, {"Size": 0.6, "Has Box": True}, n=1500)
    ply = tmp_path / "scan.ply"
    write_ply_points(ply, scan.numpy())
    program = tmp_path / "box.json"
    box.save(program)
    out = tmp_path / "best.json"
    argv = ["--program", str(program), "--points", str(ply), "--out", str(out),
            "--population", "6", "--generations", "2", "--no-progress", "--yaw-range", "0", "--final-steps", "10",
            "--polish-rounds", "0"]
    run_cli(lambda: main(argv))
    best = json.loads(out.read_text())
    assert best["format"] == "splat.search/1" and best["program"] == "box"
    assert set(best["params"]) == {"Size", "Has Box"} and len(best["placement"]["translation"]) == 3
    assert best["params"]["Has Box"] is True and abs(best["params"]["Size"] - 0.6) < 0.05
    capsys.readouterr()
    few = tmp_path / "few.ply"
    write_ply_points(few, scan[:5].numpy())
    for bad_argv, needle in [(argv[:3] + [str(tmp_path / "missing.ply")] + argv[4:], "missing.ply"),
                             (argv[:3] + [str(few)] + argv[4:], "few.ply: points:"),
                             (argv + ["--trim", "1.5"], "--trim")]:
        with pytest.raises(SystemExit) as e:
            run_cli(lambda: main(bad_argv))
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("error: ") and needle in err
        assert len(err.strip().splitlines()) == 1


def test_module_entry_point_help():
    run = subprocess.run([sys.executable, "-m", "splat", "search", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0
    assert all(flag in run.stdout for flag in ("--program", "--points", "--scene", "--no-views", "--no-progress"))


def test_cli_on_a_scene_fuses_its_depth(tmp_path, box):
    from splat.cli import run_cli
    from splat.data.synthetic import write_plane_scene
    from splat.commands.search import main

    write_plane_scene(tmp_path / "scene")  # depth maps of a 1 m square at z = 0, no scan.ply
    program = tmp_path / "box.json"
    box.save(program)
    out = tmp_path / "best.json"
    run_cli(lambda: main(["--program", str(program), "--scene", str(tmp_path / "scene"), "--out", str(out),
                          "--population", "4", "--generations", "1", "--no-progress", "--final-steps", "2",
                          "--polish-rounds", "0"]))
    best = json.loads(out.read_text())
    assert best["program"] == "box" and math.isfinite(best["fitness"])
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: main(["--program", str(program), "--scene", str(tmp_path / "nope"), "--out", str(out)]))
    assert e.value.code == 2
    for sources in ([], ["--scene", str(tmp_path / "scene"), "--points", str(tmp_path / "scan.ply")]):
        with pytest.raises(SystemExit) as e:  # exactly one of --scene / --points
            run_cli(lambda: main(["--program", str(program), "--out", str(out), *sources]))
        assert e.value.code == 2


def test_scan_blind_parameters_are_held_at_their_defaults():
    """The cabinet's Handle Height (where a handle sits on its front) is ``scan_blind``: no gene, its
    default in every decoded genome and in every random sample (the photos set it, splat.train.facade)."""
    from splat.params import ParamSpace

    cabinet = load_program("cabinet")
    assert cabinet.space["Handle Height"].scan_blind and not cabinet.space["Drawer Count"].scan_blind
    gs = GenomeSpace(cabinet.space, PlacementBox((-1, -1, 0), (1, 1, 0.1), yaw_range=0.5))
    assert "Handle Height" not in gs.gene_names and "Top Drawer Ratio" in gs.gene_names
    pop = gs.random(8, torch.Generator().manual_seed(0))
    assert torch.all(gs.params(pop)["Handle Height"] == cabinet.space["Handle Height"].default)
    samples = cabinet.space.sample(16, torch.Generator().manual_seed(0))
    assert torch.all(samples["Handle Height"] == 0.5) and samples["Width"].std() > 0.1
    again = ParamSpace.from_dict(cabinet.space.to_dict())
    assert again["Handle Height"].scan_blind
    bad = cabinet.space.to_dict()
    bad["params"][-1]["scan_blind"] = "yes"
    with pytest.raises(SplatError, match="true or false"):
        ParamSpace.from_dict(bad)
