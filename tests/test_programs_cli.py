"""``splat programs``: the catalogue (table and JSON) and ``sample`` (variants on disk) (budget: ~10 s)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from splat.commands import main as splat_main
from splat.commands.programs import catalogue, format_table
from splat.errors import SplatError
from splat.program import available_programs, load_program


def test_list_table_names_every_program_and_parameter(capsys):
    splat_main(["programs"])
    out = capsys.readouterr().out
    for name in available_programs():
        assert f"\n{name} (" in "\n" + out
        for p in load_program(name).space.params:
            assert p.name in out
    # a row: name, type, range, default, group, labels, requires
    row = next(line for line in out.splitlines() if line.strip().startswith("Handle Type"))
    assert "int" in row and "0..2" in row and "none/bar/knob" in row
    assert "Drawer Fraction" in out and "Has Drawers" in next(
        line for line in out.splitlines() if line.strip().startswith("Drawer Fraction"))


def test_list_json_is_the_catalogue(capsys):
    splat_main(["programs", "--json", "--category", "storage"])
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads(json.dumps(catalogue("storage")))
    assert doc["format"] == "splat.library/1"
    assert [p["name"] for p in doc["programs"]] == ["bookshelf", "cabinet", "sideboard"]
    side = doc["programs"][2]
    rows = {p["name"]: p for p in side["params"]}
    assert rows["Base Type"]["labels"] == ["plinth", "legs"] and rows["Base Type"]["range"] == [0, 1]
    assert rows["Leg Size"]["requires"] == [["Base Type", 1]]
    assert rows["Drawer Rows"]["requires"] == ["Has Drawers"] and rows["Has Doors"]["type"] == "bool"
    assert side["category"] == "storage" and side["continuous"] + side["discrete"] == len(side["params"])
    assert "sideboard (storage)" in format_table(doc)


def test_sample_writes_variants(tmp_path):
    import trimesh

    out = tmp_path / "variants"
    folders = splat_main(["programs", "sample", "stool", "-n", "3", "--out", str(out), "--seed", "4",
                          "--size", "64"])
    assert [f.name for f in folders] == ["stool_00", "stool_01", "stool_02"]
    index = json.loads((out / "samples.json").read_text())
    assert index["program"] == "stool" and len(index["variants"]) == 3
    prog = load_program("stool")
    structures = set()
    for f, row in zip(folders, index["variants"]):
        assert sorted(p.name for p in f.iterdir()) == ["model.glb", "params.json", "preview.png", "program.json"]
        params = json.loads((f / "params.json").read_text())
        assert params == row["params"] and prog.space.validate(params) == params
        active = prog.space.active(params)
        assert all(params[k] == prog.space[k].default for k, a in active.items() if not a)  # inactive at defaults
        assert load_program(f / "program.json").space == prog.space
        scene = trimesh.load(f / "model.glb")
        assert len(scene.geometry) >= 2
        import imageio.v3 as iio

        img = iio.imread(f / "preview.png")
        assert img.shape == (64, 64, 3) and (img < 250).any(axis=-1).mean() > 0.05  # something drawn
        structures.add(tuple(params[k] for k in prog.space.discrete))
    assert len(structures) >= 2
    again = splat_main(["programs", "sample", "stool", "-n", "3", "--out", str(tmp_path / "again"), "--seed", "4",
                        "--formats", "json"])
    assert [json.loads((f / "params.json").read_text()) for f in again] == [r["params"] for r in index["variants"]]
    assert not (again[0] / "model.glb").exists()


@pytest.mark.parametrize("argv, field", [
    (["sample", "throne", "--out", "x"], "NAME"),
    (["sample", "stool", "-n", "0", "--out", "x"], "-n"),
    (["sample", "stool", "--size", "4", "--out", "x"], "--size"),
    (["--category", "garden"], "--category"),
])
def test_sample_and_list_errors(tmp_path, argv, field):
    argv = [a if a != "x" else str(tmp_path / "x") for a in argv]
    with pytest.raises(SplatError) as err:
        splat_main(["programs", *argv])
    assert err.value.field == field
    assert not (tmp_path / "x").exists()  # nothing written


def test_preview_draws_the_object():
    from splat.preview import preview_image

    prog = load_program("table")
    img = preview_image(prog.evaluate(prog.defaults()), size=48, samples=20000)
    assert img.dtype == np.uint8 and img.shape == (48, 48, 3)
    drawn = (img < 250).any(axis=-1)
    assert 0.05 < drawn.mean() < 0.9 and not drawn[0].any() and not drawn[:, 0].any()  # inside the frame
