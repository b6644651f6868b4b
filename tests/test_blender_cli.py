"""python -m splat.blender import|export: the command line over the importer and exporter.

Budget: ~8 s (three subprocesses, each importing bpy).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import BLENDER_PROGRAMS, REPO

pytestmark = pytest.mark.blender


def _run(*args):
    return subprocess.run([sys.executable, "-m", "splat.blender", *map(str, args)], cwd=REPO,
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
    res = _run("export", out / "graph.json", "--out", blend, "--params", values)
    assert res.returncode == 0, res.stderr
    from splat.blender.importer import import_blend

    back = import_blend(blend)
    assert back.graph == graph
    assert back.modifier_values["Seat Height"] == 0.7


def test_cli_user_errors_exit_2_with_one_line(tmp_path):
    res = _run("import", tmp_path / "missing.blend", "--out", tmp_path / "o")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error: ")
    assert "missing.blend" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()
