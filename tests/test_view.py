"""splat.viewer and ``splat view`` through viser's Python API: one control per parameter, edits that move
the Gaussians of the parts they drive (and only those), clamped ranges, controls disabled by ``requires``,
structure edits that add and remove the right Gaussians, reset / random variant, export that loads back,
and the command's one-line errors.

Needs the ``viewer`` extra (viser); skipped without it. Budget: < 20 s (a 600-Gaussian stool run, one
server on a free port, one subprocess for the command).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from export_helpers import make_run, stool_program

from splat.errors import SplatError
from splat.viewer.controls import DEFAULT_GROUP, control_for, controls_for, param_value, slider_step, ui_value

REPO = Path(__file__).resolve().parents[1]


# ---- controls (no viser needed) -----------------------------------------------------------------------


def test_controls_follow_the_param_space():
    space = stool_program().space
    fitted = {"Seat Height": 0.45, "Back Height": 0.3, "Legs Type": 0, "Has Back": True}
    cs = {c.name: c for c in controls_for(space, fitted, {"Legs Type": (1,), "Has Back": ()})}
    assert [c.name for c in cs.values()] == list(space.names)
    assert (cs["Seat Height"].kind, cs["Seat Height"].low, cs["Seat Height"].high) == ("slider", 0.3, 0.7)
    assert cs["Legs Type"].kind == "dropdown" and cs["Legs Type"].options == ("square", "round")
    assert cs["Has Back"].kind == "checkbox" and all(c.group == DEFAULT_GROUP for c in cs.values())
    assert "Not live-fitted at round" in cs["Legs Type"].hint and "Live" in cs["Has Back"].hint
    assert "Needs Has Back" in cs["Back Height"].hint
    assert slider_step(0.3, 0.7) == pytest.approx(1e-4)
    # a plain int is an integer slider; an unchecked wide int says it may not be live
    p = type(space["Legs Type"])("Count", "int", 0, 1000, 5)
    c = control_for(p, 5, None)
    assert c.kind == "int_slider" and "Not live-fitted" in c.hint
    assert param_value(c, 2000) == (1000, True) and param_value(c, 3.0) == (3, False)
    assert ui_value(cs["Legs Type"], 1) == "round" and param_value(cs["Legs Type"], "round") == (1, False)
    with pytest.raises(SplatError, match="Legs Type"):
        param_value(cs["Legs Type"], "hexagonal")


def test_library_groups_become_folders():
    from splat.program import load_program
    from splat.viewer.controls import groups

    space = load_program("chair").space
    folders = groups(controls_for(space, space.defaults()))
    assert list(folders) == ["Seat", "Legs", "Back", "Arms"]
    assert [c.name for c in folders["Seat"]][0] == "Seat Height"


# ---- the app -----------------------------------------------------------------------------------------

needs_viser = pytest.mark.skipif(importlib.util.find_spec("viser") is None,
                                 reason="needs the `viewer` extra (viser)")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    # Gaussians only on the square legs: round legs are a structure edit the run never trained
    return make_run(tmp_path_factory.mktemp("view") / "run", num=600, all_keys=False)


@pytest.fixture(scope="module")
def app(run_dir):
    if importlib.util.find_spec("viser") is None:
        pytest.skip("needs the `viewer` extra (viser)")
    from splat.commands.view import ViewConfig, start

    app = start(ViewConfig(run=run_dir, port=0, export_formats=("assets", "ply", "glb")))
    yield app
    app.close()


@pytest.fixture
def fresh(app):
    app.reset()
    return app


def _nodes(app) -> np.ndarray:
    keys = app.session.keys
    return np.array([keys[int(k)].node for k in app.session.frame.key])


def test_one_control_per_parameter_with_range(app):
    assert list(app.controls) == ["Seat Height", "Back Height", "Legs Type", "Has Back"]
    sh = app.controls["Seat Height"]
    assert (sh.min, sh.max, sh.value) == (0.3, 0.7, 0.45)
    assert app.controls["Legs Type"].options == ("square", "round") and app.controls["Legs Type"].value == "square"
    assert app.controls["Has Back"].value is True
    assert "Not live-fitted at round" in app.controls["Legs Type"].hint
    assert app.url.startswith("http://127.0.0.1:")
    assert app.cameras is not None  # the run's scene (the shipped stool) gives the training cameras


def test_a_slider_moves_only_the_gaussians_of_its_part(fresh):
    before = fresh.session.frame
    nodes = _nodes(fresh)
    fresh.controls["Back Height"].value = 0.45
    after = fresh.session.frame
    assert fresh.session.params["Back Height"] == 0.45
    np.testing.assert_array_equal(after.key, before.key)  # same Gaussians, same order
    back = nodes == "Back"
    moved = np.abs(after.centers - before.centers).max(axis=1) > 1e-6
    assert back.any() and moved[back].mean() > 0.9
    np.testing.assert_array_equal(after.centers[~back], before.centers[~back])  # seat and legs untouched
    np.testing.assert_array_equal(after.covariances[~back], before.covariances[~back])
    # the scene node holds the new Gaussians (magnified by display_scale under a 1/k node scale)
    k = fresh.display_scale
    np.testing.assert_allclose(fresh.splats.centers / k, after.centers, rtol=1e-6, atol=1e-7)
    assert fresh.splats.scale == pytest.approx(1.0 / k)
    # Seat Height drives the seat, the legs (their height) and the back (it stands on the seat)
    fresh.controls["Seat Height"].value = 0.6
    again = fresh.session.frame
    for node in ("Seat", "Leg", "Back"):
        assert np.abs(again.centers[nodes == node] - after.centers[nodes == node]).max() > 0.01
    assert fresh.update_seconds > 0


def test_values_outside_the_range_cannot_be_set(fresh):
    h = fresh.controls["Seat Height"]
    h.value = 5.0
    assert h.value == 0.7 and fresh.session.params["Seat Height"] == 0.7
    h.value = -1.0
    assert h.value == 0.3 and fresh.session.params["Seat Height"] == 0.3
    fresh.controls["Legs Type"].value = "hexagonal"  # not an option: the control goes back
    assert fresh.controls["Legs Type"].value == "square" and fresh.session.params["Legs Type"] == 0
    with pytest.raises(SplatError, match="Back Height"):
        fresh.session.update({"Back Height": 0.9})
    assert fresh.session.params["Back Height"] == 0.3  # nothing changed


def test_requires_disable_controls_and_a_bool_removes_its_gaussians(fresh):
    n_back = int((_nodes(fresh) == "Back").sum())
    n = len(fresh.session.frame.centers)
    assert n_back > 0 and not fresh.controls["Back Height"].disabled
    fresh.controls["Has Back"].value = False
    assert fresh.controls["Back Height"].disabled
    assert len(fresh.session.frame.centers) == n - n_back and "Back" not in set(_nodes(fresh))
    fresh.controls["Has Back"].value = True
    assert not fresh.controls["Back Height"].disabled and len(fresh.session.frame.centers) == n


def test_a_structure_change_adds_and_removes_the_right_gaussians(fresh):
    nodes0 = _nodes(fresh)
    seat0 = fresh.session.frame.centers[nodes0 == "Seat"]
    fresh.controls["Legs Type"].value = "round"
    nodes = _nodes(fresh)
    assert fresh.session.params["Legs Type"] == 1
    assert "Leg" not in set(nodes)  # square legs gone
    round_legs = nodes == "Round Leg"
    assert round_legs.sum() > 0  # untrained: covered with new Gaussians
    np.testing.assert_array_equal(fresh.session.frame.centers[nodes == "Seat"], seat0)
    assert (nodes == "Back").sum() == (nodes0 == "Back").sum()
    # the four copies sit on the four legs: new Gaussians within the round legs' radius of their axes
    xy = fresh.session.frame.centers[round_legs, :2]
    axes = np.array([(-0.15, -0.15), (0.15, -0.15), (-0.15, 0.15), (0.15, 0.15)])
    dist = np.linalg.norm(xy[:, None] - axes[None], axis=-1).min(axis=1)
    assert dist.max() < 0.03
    assert "new Gaussians" in fresh.status.content
    fresh.controls["Legs Type"].value = "square"
    np.testing.assert_array_equal(_nodes(fresh), nodes0)


def test_reset_and_random_variant(fresh, app):
    fitted = dict(fresh.session.fitted.params)
    frame0 = fresh.session.frame
    values = fresh.random_variant()
    space = fresh.session.space
    assert fresh.session.params == space.validate(values) and values != fitted
    assert all(p.low <= values[p.name] <= p.high for p in space.params if p.type != "bool")
    assert fresh.controls["Seat Height"].value == pytest.approx(values["Seat Height"])
    fresh.reset_button.value = True  # a click, through viser's API
    assert fresh.session.params == fitted
    np.testing.assert_array_equal(fresh.session.frame.centers, frame0.centers)


def test_export_writes_a_folder_that_loads_back(fresh, tmp_path):
    from splat.export import load_asset, read_splats_ply

    fresh.controls["Back Height"].value = 0.42
    fresh.controls["Legs Type"].value = "round"
    fresh.export_dir.value = str(tmp_path / "edited")
    fresh.export_button.value = True  # a click
    assert "Exported" in fresh.edit_status.content
    names = sorted(p.name for p in (tmp_path / "edited").iterdir())
    assert names == ["gaussians.pt", "mesh.glb", "params.json", "program.json", "splats.ply"]
    back = load_asset(tmp_path / "edited")
    assert back.params == fresh.session.params
    world = back.world_gaussians()
    assert len(read_splats_ply(tmp_path / "edited" / "splats.ply").means) == len(world.means)
    # the same Gaussians on the trained parts as in the editor
    keys = back.gaussians.keys
    nodes_back = np.array([keys[int(back.gaussians.prim[s])].node for s in world.source])
    nodes = _nodes(fresh)
    for node in ("Seat", "Back"):
        a = np.sort(world.means[torch.from_numpy(nodes_back == node)].numpy(), axis=0)
        b = np.sort(fresh.session.frame.centers[nodes == node], axis=0)
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert (nodes_back == "Round Leg").sum() > 0


# ---- the command -------------------------------------------------------------------------------------


def _cli(argv, capsys):
    from splat.cli import run_cli
    from splat.commands import main

    with pytest.raises(SystemExit) as exc:
        run_cli(lambda: main(argv))
    return exc.value.code, capsys.readouterr().err.strip().splitlines()


def test_without_the_extra_it_names_the_extra(run_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "viser", None)  # import viser -> ImportError
    code, err = _cli(["view", str(run_dir)], capsys)
    assert code == 2 and len(err) == 1
    assert err[0] == "error: splat view needs the `viewer` extra: pip install -e '.[viewer]'"


@needs_viser
def test_a_bad_run_path_gets_the_render_error(tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    code, err = _cli(["view", str(missing)], capsys)
    code_r, err_r = _cli(["render", str(missing)], capsys)
    assert code == code_r == 2 and len(err) == 1 and err == err_r
    code, err = _cli(["view", str(missing), "--port", "70000"], capsys)
    assert code == 2 and "--port" in err[0]


@needs_viser
def test_splat_view_serves_the_page_and_prints_its_url(run_dir):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "splat", "view", str(run_dir), "--port", "0"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = None
        for line in proc.stdout:  # the URL line comes once the server listens
            if line.startswith("splat view: http://127.0.0.1:"):
                url = line.split()[2]
                break
        assert url, "no URL printed"
        with urllib.request.urlopen(url, timeout=20) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=90)  # drains its output while it stops (slow on a busy machine)
            assert proc.returncode == 0  # Ctrl-C stops it cleanly
        finally:
            if proc.poll() is None:
                proc.kill()
