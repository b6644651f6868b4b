"""splat blender import|export: the command line over the importer and exporter.

Budget: ~8 s (one subprocess for the real `python -m` entry point; the rest in-process).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import BLENDER_PROGRAMS, REPO

from splat.program import PROGRAMS_DIR

pytestmark = pytest.mark.blender


def _run(*args):
    return subprocess.run([sys.executable, "-m", "splat", "blender", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_import_then_export(tmp_path):
    out = tmp_path / "chair_blend"
    res = _run("import", BLENDER_PROGRAMS / "chair.blend", "--out", out)
    assert res.returncode == 0, res.stderr
    graph = json.loads((out / "graph.json").read_text())
    skeleton = json.loads((out / "params.json").read_text())
    assert graph["format"] == "splat.geonodes/1" and graph["main"] in graph["trees"]
    assert skeleton["params"]["Seat Height"]["default"] == 0.6

    values = tmp_path / "values.json"
    values.write_text(json.dumps({"Seat Height": 0.7}))
    blend = tmp_path / "out" / "chair.blend"
    _main_in_process("export", out / "graph.json", "--out", blend, "--params", values)
    from splat.blender.importer import import_blend

    back = import_blend(blend)
    assert back.graph == graph
    assert back.modifier_values["Seat Height"] == 0.7


def _main_in_process(*args):
    from splat.commands.blender import main
    from splat.cli import run_cli

    return run_cli(lambda: main([str(a) for a in args]))


@pytest.mark.parametrize("argv, culprit", [
    (("import", "{tmp}/missing.blend", "--out", "{tmp}/o"), "missing.blend"),
    (("export", "{tmp}/nope.json", "--out", "{tmp}/o/x.blend"), "nope.json"),
    (("export", "{chair}", "--out", "{tmp}/o/x.blend", "--params", "{tmp}/bad_values.json"), "Seat Height"),
])
def test_cli_user_errors_exit_2_with_one_line(argv, culprit, tmp_path, capsys):

    (tmp_path / "bad_values.json").write_text(json.dumps({"Seat Height": 7.0}))
    argv = [a.format(tmp=tmp_path, chair=PROGRAMS_DIR / "chair") for a in argv]
    with pytest.raises(SystemExit) as exit_:
        _main_in_process(*argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.strip().count("\n") == 0 and culprit in err, err
    assert not (tmp_path / "o").exists()
