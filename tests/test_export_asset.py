"""splat.export.asset and python -m splat.export: editable assets written and loaded back.

Budget: < 12 s (a small stool program with ~600 Gaussians; the .blend test needs bpy).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import trimesh
from export_helpers import make_run, stool_gaussians, stool_program
from scipy.spatial import cKDTree

from splat.errors import SplatError
from splat.export.asset import (
    load_asset,
    read_params_json,
    state_keys,
    uncovered_keys,
    write_assets,
    write_params_json,
)
from splat.export.ply import read_splats_ply
from splat.commands.export import ExportConfig, export
from splat.gaussians import key_id
from splat.render.cameras import look_at_viewmat, pinhole_K
from splat.render.frames import ViewSettings, render_views, splats_from_cloud
from splat.data import Camera


def _yaw_placement(yaw: float, t=(0.3, -0.2, 0.05), s: float = 1.2) -> np.ndarray:
    c, sn = math.cos(yaw), math.sin(yaw)
    m = np.eye(4)
    m[:3, :3] = s * np.array([[c, -sn, 0], [sn, c, 0], [0, 0, 1]])
    m[:3, 3] = t
    return m


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "stool_run", num=600)


def test_assets_round_trip(run_dir):
    asset = load_asset(run_dir)
    assert asset.root == run_dir and asset.scene == "stool"
    assert asset.params == {"Seat Height": 0.45, "Back Height": 0.3, "Legs Type": 0, "Has Back": True}
    assert isinstance(asset.params["Legs Type"], int) and isinstance(asset.params["Has Back"], bool)
    np.testing.assert_array_equal(asset.placement, np.eye(4))
    assert {k.node for k in asset.gaussians.keys} == {"Seat", "Leg", "Round Leg", "Back"}
    again = load_asset(run_dir / "assets")  # the assets folder itself works too
    for name, p in asset.gaussians.params.items():
        torch.testing.assert_close(again.gaussians.params[name], p, rtol=0, atol=0)
    # program.json re-evaluates without bpy to the same geometry
    ref = stool_program().evaluate(asset.params).realize().verts
    torch.testing.assert_close(asset.geometry().realize().verts, ref)


def test_splats_ply_matches_the_asset_and_renders_the_same(run_dir):
    asset = load_asset(run_dir)
    cloud = read_splats_ply(run_dir / "assets" / "splats.ply")
    world = asset.world_gaussians()
    assert cloud.num_gaussians == world.means.shape[0]
    torch.testing.assert_close(cloud.means, world.means, rtol=0, atol=1e-6)
    torch.testing.assert_close(cloud.covariances(), world.covars, rtol=1e-3, atol=1e-8)
    cam = Camera(K=pinhole_K(64, 64, 40.0), viewmat=look_at_viewmat(np.array([1.2, -1.6, 1.0]), np.array([0, 0, 0.4])),
                 width=64, height=64, name="c")
    vs = ViewSettings()
    (a,) = render_views(world, [cam], vs)
    (b,) = render_views(splats_from_cloud(cloud), [cam], vs)
    assert a.alpha.max() > 0.9
    np.testing.assert_allclose(b.rgb, a.rgb, atol=2e-3)
    np.testing.assert_allclose(b.alpha, a.alpha, atol=2e-3)


def test_placement_moves_geometry_and_gaussians(tmp_path):
    m = _yaw_placement(0.7)
    placed = load_asset(make_run(tmp_path / "placed", num=200, placement=m))
    plain = load_asset(make_run(tmp_path / "plain", num=200))
    np.testing.assert_allclose(placed.placement, m)
    w0, w1 = plain.world_gaussians(), placed.world_gaussians()
    M = torch.as_tensor(m, dtype=torch.float32)
    torch.testing.assert_close(w1.means, w0.means @ M[:3, :3].T + M[:3, 3], atol=1e-5, rtol=0)
    torch.testing.assert_close(w1.covars, M[:3, :3] @ w0.covars @ M[:3, :3].T, atol=1e-7, rtol=1e-4)


def test_edits_move_the_gaussians_with_their_parts(run_dir):
    asset = load_asset(run_dir)
    taller = asset.with_params({"Seat Height": 0.6})
    assert taller.params["Seat Height"] == 0.6 and asset.params["Seat Height"] == 0.45
    w0, w1 = asset.world_gaussians(), taller.world_gaussians()
    keys = [p.key.node for p in asset.geometry().parts]
    seat0 = w0.means[torch.tensor([keys[i] == "Seat" for i in w0.part.tolist()])]
    seat1 = w1.means[torch.tensor([keys[i] == "Seat" for i in w1.part.tolist()])]
    torch.testing.assert_close(seat1[:, 2] - seat0[:, 2], torch.full_like(seat0[:, 2], 0.15), atol=1e-5, rtol=0)
    round_legs = asset.with_params({"Legs Type": 1})
    nodes = {p.key.node for p in round_legs.geometry().parts}
    assert "Round Leg" in nodes and "Leg" not in nodes
    with pytest.raises(SplatError) as e:
        asset.with_params({"Seat Height": 2.0})
    assert e.value.field == "Seat Height"


def test_structure_edit_covers_primitives_without_gaussians(tmp_path):
    asset = load_asset(make_run(tmp_path / "square_only", num=400, all_keys=False))
    assert "Round Leg" not in {k.node for k in asset.gaussians.keys}
    bare = asset.with_params({"Legs Type": 1}, cover_new=False)
    assert [k.node for k in uncovered_keys(bare)] == ["Round Leg"]
    covered = asset.with_params({"Legs Type": 1})
    assert uncovered_keys(covered) == [] and len(covered.gaussians) > len(asset.gaussians)
    world = covered.world_gaussians()
    nodes = [p.key.node for p in covered.geometry().parts]
    on_legs = torch.tensor([nodes[i] == "Round Leg" for i in world.part.tolist()])
    assert int(on_legs.sum()) >= 4 * 64 // 4  # four copies share the new canonical Gaussians
    # the new Gaussians take the opacity-weighted mean colour of the existing ones (one tree here)
    rgb = 0.5 + 0.28209479177387814 * world.sh[on_legs, 0]
    assert torch.allclose(rgb, rgb[:1].expand_as(rgb), atol=1e-5)
    # deterministic, and the old Gaussians are untouched
    again = asset.with_params({"Legs Type": 1})
    torch.testing.assert_close(again.gaussians.params["means"], covered.gaussians.params["means"])
    n = len(asset.gaussians)
    torch.testing.assert_close(covered.gaussians.params["means"][:n], asset.gaussians.params["means"])


def test_float32_rounding_past_a_bound_is_snapped_not_rejected(tmp_path):
    program = stool_program()
    high = float(torch.tensor(0.3, dtype=torch.float32) + torch.tensor(1.0) * torch.tensor(0.7 - 0.3))
    assert high > 0.7  # float32 rounding lands just past the range's end
    values = {"Seat Height": high, "Back Height": 0.15 - 1e-9, "Legs Type": 0,
              "Has Back": True}
    model = stool_gaussians(program, program.space.validate({}), num=100)
    asset = write_assets(tmp_path / "a", program, values, model)
    assert asset.params["Seat Height"] == 0.7 and asset.params["Back Height"] == 0.15
    with pytest.raises(SplatError):  # a real excess is still an error
        write_assets(tmp_path / "b", program, dict(values, **{"Seat Height": 0.71}), model)


def test_params_json_errors_and_bare_form(tmp_path):
    program = stool_program()
    write_params_json(tmp_path / "p.json", program, {"Seat Height": 0.5, "Legs Type": 1})
    params, placement = read_params_json(tmp_path / "p.json", program.space)
    assert params["Seat Height"] == 0.5 and params["Legs Type"] == 1 and params["Has Back"] is True
    (tmp_path / "bare.json").write_text(json.dumps({"Seat Height": 0.4}))
    params, placement = read_params_json(tmp_path / "bare.json", program.space)
    assert params["Seat Height"] == 0.4 and (placement == np.eye(4)).all()
    (tmp_path / "bad.json").write_text(json.dumps({"Seat Hight": 0.4}))
    with pytest.raises(SplatError) as e:
        read_params_json(tmp_path / "bad.json", program.space)
    assert e.value.field == "Seat Hight" and e.value.file.endswith("bad.json")
    (tmp_path / "pl.json").write_text(json.dumps({"format": "splat.fitted/1", "params": {}, "placement": [[1, 0]]}))
    with pytest.raises(SplatError) as e:
        read_params_json(tmp_path / "pl.json", program.space)
    assert e.value.field == "placement"
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(SplatError, match="malformed JSON"):
        read_params_json(tmp_path / "junk.json")


def test_missing_files_are_clear_errors(tmp_path, run_dir):
    with pytest.raises(SplatError, match="no such run folder"):
        load_asset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SplatError, match="program.json"):
        load_asset(tmp_path / "empty")


def test_state_keys_parse_trainer_key_ids(run_dir):
    asset = load_asset(run_dir)
    state = asset.gaussians.state()  # the trainer's checkpoint form: key_ids only
    assert "keys" not in state
    assert state_keys(state, asset.program) == list(asset.gaussians.keys)
    assert [key_id(k) for k in state_keys(state, asset.program)] == state["key_ids"]


def test_export_edited_assets_round_trip(run_dir):
    res = export(ExportConfig(run=run_dir, set=("Legs Type=round", "Back Height=0.4"),
                              formats=("assets", "ply", "glb")))
    assert res.out == run_dir / "edited"
    assert {p.name for p in res.files} == {"program.json", "params.json", "gaussians.pt", "splats.ply", "mesh.glb"}
    edited = load_asset(res.out)
    assert edited.params["Legs Type"] == 1 and edited.params["Back Height"] == 0.4
    cloud = read_splats_ply(res.out / "splats.ply")
    torch.testing.assert_close(cloud.means, edited.world_gaussians().means, atol=1e-6, rtol=0)
    # mesh.glb: seat, back and the four round legs; the legs share one mesh
    scene = trimesh.load(res.out / "mesh.glb")
    assert len(scene.graph.nodes_geometry) == 6 and len(scene.geometry) == 3
    used = [scene.graph[n][1] for n in scene.graph.nodes_geometry]
    assert sorted(used.count(g) for g in set(used)) == [1, 1, 4]
    assert any("Round Leg" in g for g in scene.geometry)


@pytest.mark.blender
def test_object_blend_reopens_and_evaluates_to_our_geometry(tmp_path):
    from splat.blender.evaluate import BlenderProgram

    run_dir = make_run(tmp_path / "placed", num=200, placement=_yaw_placement(0.7))

    asset = load_asset(run_dir).with_params({"Seat Height": 0.55, "Legs Type": 1})
    res = export(ExportConfig(run=run_dir, out=tmp_path / "blend", set=("Seat Height=0.55", "Legs Type=1"),
                              formats=("blend",)))
    assert [p.name for p in res.files] == ["object.blend"]
    mesh = BlenderProgram.open(res.files[0]).evaluate({})  # the modifier carries the edited values
    ours = asset.program.evaluate(dict(asset.params), dtype=torch.float64).realize()
    verts = ours.verts[0][ours.vert_active[0]].numpy()
    d1, _ = cKDTree(verts).query(mesh.vertices)
    d2, _ = cKDTree(mesh.vertices).query(verts)
    assert max(d1.max(), d2.max()) < 1e-5
    assert mesh.polygons == int(ours.n_polys[0])
    import bpy

    bpy.ops.wm.open_mainfile(filepath=str(res.files[0]))
    obj = bpy.data.objects[asset.program.name]
    np.testing.assert_allclose(np.array(obj.matrix_world), asset.placement, atol=1e-6)
