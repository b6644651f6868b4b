"""ShapeProgram: loading, evaluation input handling, gradients vs finite differences, batched == single
(budget: < 15 s)."""

from __future__ import annotations

import json

import pytest
import torch

from splat.errors import SplatError
from splat.geonodes import Geometry
from splat.program import PROGRAMS_DIR, ShapeProgram, available_programs, load_program
from tests.conftest import BLENDER_PROGRAMS

F64 = torch.float64
NAMES = ("chair", "table", "cabinet", "bookshelf")


def test_available_and_load_forms(tmp_path):
    assert set(NAMES) <= set(available_programs())
    p = load_program("chair")
    assert p.name == "chair" and "Seat Height" in p.space
    # single-file form round trip
    p.save(tmp_path / "chair.json")
    q = ShapeProgram.load(tmp_path / "chair.json")
    assert q.space == p.space and q.graph.to_dict() == p.graph.to_dict()
    assert load_program(tmp_path / "chair.json").name == "chair"
    # bare graph: the space comes from the interface
    (tmp_path / "bare.json").write_text(json.dumps(p.graph.to_dict()))
    bare = ShapeProgram.load(tmp_path / "bare.json")
    assert bare.space.names == p.space.names
    assert bare.space["Seat Height"].low == p.space["Seat Height"].low


def test_load_errors(tmp_path):
    with pytest.raises(SplatError, match="no program"):
        load_program("spaceship")
    # a third-party space whose names the graph lacks
    with pytest.raises(SplatError) as e:
        ShapeProgram.from_files(PROGRAMS_DIR / "chair" / "graph.json", BLENDER_PROGRAMS / "sp_chair.json")
    assert e.value.field == "Legs Size"
    (tmp_path / "x.json").write_text("[1, 2")
    with pytest.raises(SplatError, match="not valid JSON"):
        ShapeProgram.load(tmp_path / "x.json")


def test_evaluate_input_forms_agree():
    p = load_program("table")
    d = p.defaults()
    g1 = p.evaluate(d)
    g2 = p.evaluate([d])
    g3 = p.evaluate({k: torch.tensor([v]) for k, v in d.items()})
    g4 = p.evaluate({})
    assert isinstance(g1, Geometry) and g1.batch_size == 1
    v = [g.realize().verts for g in (g1, g2, g3, g4)]
    assert all(torch.equal(v[0], x) for x in v[1:])
    # scalars broadcast against a batch
    g = p.evaluate({"Width": torch.tensor([1.0, 1.5]), "Legs Type": 2})
    assert g.batch_size == 2


def test_evaluate_errors():
    p = load_program("table")
    with pytest.raises(SplatError, match="unknown parameter") as e:
        p.evaluate({"Colour": 1.0})
    assert e.value.field == "Colour"
    with pytest.raises(SplatError, match="outside the range") as e:
        p.evaluate({"Width": 9.0})
    assert e.value.field == "Width"
    with pytest.raises(SplatError, match="outside the range"):
        p.evaluate({"Width": torch.tensor([1.0, 9.0])})
    with pytest.raises(SplatError, match="integer"):
        p.evaluate({"Legs Type": 1.5})
    with pytest.raises(SplatError, match="true or false"):
        p.evaluate([{"Has Shelf": 1}])
    with pytest.raises(SplatError, match="not finite"):
        p.evaluate({"Width": torch.tensor([float("nan")])})
    with pytest.raises(SplatError, match="batch size"):
        p.evaluate({"Width": torch.ones(2), "Depth": torch.full((3,), 0.7)})
    with pytest.raises(SplatError):
        p.evaluate([])


def _active_vertex_loss(prog, batch, weights):
    m = prog.evaluate(batch, dtype=F64, validate=False).realize()
    w = weights[: m.verts.shape[1]]
    return (m.verts * w * m.vert_active[..., None]).sum((1, 2))  # [B]


@pytest.mark.parametrize("name", NAMES)
def test_gradients_match_central_differences(name):
    prog = load_program(name)
    gen = torch.Generator().manual_seed(7)
    pool = prog.space.sample(256, gen, dtype=F64)
    act = prog.space.active_batch(pool, 256)
    # a small batch in which every continuous parameter is active somewhere
    rows = sorted({int(act[k].nonzero()[0, 0]) for k in prog.space.continuous})
    batch = {k: v[rows] for k, v in pool.items()}
    n = len(rows)
    # keep floats away from range ends so +-h stays valid
    for k in prog.space.continuous:
        p = prog.space[k]
        batch[k] = p.low + (p.high - p.low) * (0.2 + 0.6 * torch.rand(n, generator=gen, dtype=F64))
    weights = torch.randn(4096, 3, generator=gen, dtype=F64)
    leaves = {k: v.clone().requires_grad_(True) for k, v in batch.items() if k in prog.space.continuous}
    loss = _active_vertex_loss(prog, {**batch, **leaves}, weights)
    grads = torch.autograd.grad(loss.sum(), list(leaves.values()), allow_unused=True)
    h = 1e-6
    for (k, x), g in zip(leaves.items(), grads):
        g = torch.zeros_like(x) if g is None else g
        plus = _active_vertex_loss(prog, {**batch, k: x.detach() + h}, weights)
        minus = _active_vertex_loss(prog, {**batch, k: x.detach() - h}, weights)
        fd = (plus - minus) / (2 * h)
        torch.testing.assert_close(g, fd, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {k}: {m}")
        # every continuous parameter moves some vertex where it is active (no dead parameter)
        assert g.abs().max() > 0, k


def _vertex_set(m, b):
    v = m.verts[b][m.vert_active[b]]
    order = torch.argsort(v[:, 0] * 1e6 + v[:, 1] * 1e3 + v[:, 2], stable=True)
    return v[order]


@pytest.mark.parametrize("name", NAMES)
def test_batched_equals_single_evaluations(name):
    prog = load_program(name)
    batch = prog.space.sample(64, torch.Generator().manual_seed(11), dtype=F64)
    structures = {tuple(batch[k][i].item() for k in prog.space.discrete) for i in range(64)}
    assert len(structures) > 4  # different discrete structures in one batch
    mb = prog.evaluate(batch, dtype=F64).realize()
    for i, row in enumerate(prog.space.unbatch(batch)):
        ms = prog.evaluate({k: batch[k][i:i + 1] for k in batch}, dtype=F64).realize()
        assert int(mb.n_polys[i]) == int(ms.n_polys[0]), row
        a, b = _vertex_set(mb, i), _vertex_set(ms, 0)
        assert a.shape == b.shape, row
        assert torch.equal(a, b), (row, (a - b).abs().max())


def test_interface_inputs_outside_the_space_take_interface_defaults():
    full = load_program("table")
    from splat.params import ParamSpace

    small = ShapeProgram(full.graph, ParamSpace(tuple(p for p in full.space if p.name != "Width")), name="t")
    iface_width = next(s.default for s in full.graph.interface if s.name == "Width")
    a = small.evaluate({"Depth": 0.8}, dtype=F64).realize()
    b = full.evaluate({"Depth": 0.8, "Width": iface_width}, dtype=F64).realize()
    assert torch.equal(a.verts, b.verts)
    with pytest.raises(SplatError, match="unknown parameter"):
        small.evaluate({"Width": 1.0})


@pytest.mark.blender
@pytest.mark.parametrize("name", ("chair", "table", "cabinet"))
def test_third_party_programs_batched_and_differentiable(name):
    """The .blend programs (imported once with bpy) evaluate without bpy: batched == single, FD grads."""
    from splat.blender.importer import import_blend
    from splat.geonodes import load_graph
    from splat.params import ParamSpace

    imported = import_blend(BLENDER_PROGRAMS / f"{name}.blend")
    prog = ShapeProgram(load_graph(imported.graph), ParamSpace.load(BLENDER_PROGRAMS / f"sp_{name}.json"), name=name)
    batch = prog.space.sample(8, torch.Generator().manual_seed(2), dtype=F64)
    mb = prog.evaluate(batch, dtype=F64).realize()
    for i in range(8):
        ms = prog.evaluate({k: v[i:i + 1] for k, v in batch.items()}, dtype=F64).realize()
        assert torch.equal(_vertex_set(mb, i), _vertex_set(ms, 0)) and int(mb.n_polys[i]) == int(ms.n_polys[0])
    weights = torch.randn(4096, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    for k in prog.space.continuous:
        p = prog.space[k]
        x = torch.full((8,), p.low + 0.37 * (p.high - p.low), dtype=F64, requires_grad=True)
        (g,) = torch.autograd.grad(_active_vertex_loss(prog, {**batch, k: x}, weights).sum(), [x], allow_unused=True)
        g = torch.zeros_like(x) if g is None else g
        h = 1e-6
        fd = (_active_vertex_loss(prog, {**batch, k: x.detach() + h}, weights)
              - _active_vertex_loss(prog, {**batch, k: x.detach() - h}, weights)) / (2 * h)
        torch.testing.assert_close(g, fd, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {k}: {m}")
