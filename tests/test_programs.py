"""Our own programs (programs/): plausible furniture, meaningful structure, inactive params inert
(budget: < 10 s)."""

from __future__ import annotations

import pytest
import torch

from splat.program import load_program

F64 = torch.float64
NAMES = ("chair", "table", "cabinet", "bookshelf")


def _extent(m):
    big = torch.tensor(1e9, dtype=m.verts.dtype)
    lo = torch.where(m.vert_active[..., None], m.verts, big).amin(1)
    hi = torch.where(m.vert_active[..., None], m.verts, -big).amax(1)
    return lo, hi  # [B, 3] each


@pytest.mark.parametrize("name", NAMES)
def test_programs_stand_on_the_floor_centred(name):
    prog = load_program(name)
    assert prog.space.validate(prog.defaults()) == prog.defaults()
    batch = prog.space.sample(64, torch.Generator().manual_seed(5), dtype=F64)
    m = prog.evaluate(batch, dtype=F64).realize()
    lo, hi = _extent(m)
    torch.testing.assert_close(lo[:, 2], torch.zeros(64, dtype=F64), atol=1e-9, rtol=0)
    torch.testing.assert_close(lo[:, 0], -hi[:, 0], atol=1e-9, rtol=0)  # centred in x
    assert ((lo[:, 1] + hi[:, 1]).abs() < 0.03).all()  # centred in y (handles, doors, back panels stick out)
    size = hi - lo
    assert (size > 0.2).all() and (size < 2.5).all()  # furniture-sized, metres


@pytest.mark.parametrize("name", NAMES)
def test_discrete_structure_is_meaningful(name):
    prog = load_program(name)
    base = prog.defaults()
    ref = prog.evaluate(base, dtype=F64).realize()
    for k in prog.space.discrete:
        p = prog.space[k]
        values = [False, True] if p.type == "bool" else list(range(p.low, p.high + 1))
        seen = set()
        for v in values:
            a = dict(base)
            a[k] = v
            # make the parameter itself active: satisfy its conditions
            for c in p.requires:
                a[c.name] = c.value
                for c2 in prog.space[c.name].requires:
                    a[c2.name] = c2.value
            assert prog.space.active(a)[k], (k, a)
            m = prog.evaluate(a, dtype=F64).realize()
            seen.add((int(m.n_polys[0]), round(float(m.verts[0][m.vert_active[0]].sum()), 6)))
        assert len(seen) == len(values), f"{name}: {k} values do not all change the geometry"
    assert int(ref.n_polys[0]) > 0


@pytest.mark.parametrize("name", NAMES)
def test_inactive_parameters_do_not_change_geometry(name):
    prog = load_program(name)
    gen = torch.Generator().manual_seed(9)
    batch = prog.space.sample(32, gen, dtype=F64)
    other = prog.space.sample(32, gen, dtype=F64)
    act = prog.space.active_batch(batch, 32)
    mixed = {k: torch.where(act[k], batch[k], other[k]) for k in batch}
    a = prog.evaluate(batch, dtype=F64).realize()
    b = prog.evaluate(mixed, dtype=F64).realize()
    for i in range(32):
        va = a.verts[i][a.vert_active[i]]
        vb = b.verts[i][b.vert_active[i]]
        assert va.shape == vb.shape and torch.cdist(va, vb, compute_mode="donot_use_mm_for_euclid_dist").min(1).values.max() < 1e-12


def test_cabinet_shelves_and_drawers_are_instances():
    prog = load_program("cabinet")
    geo = prog.evaluate([{"Interior": 0, "Shelf Count": 4}, {"Interior": 1, "Drawer Count": 5}])
    count = lambda node, b: sum(int(p.active[b]) for p in geo.parts if p.key.node == node)  # noqa: E731
    assert count("Shelf", 0) == 4 and count("Drawer Front", 0) == 0
    # Drawer Count - 1 equal drawers (copies of one primitive) and the top drawer
    assert count("Drawer Front", 1) == 4 and count("Drawer Handle", 1) == 4 and count("Shelf", 1) == 0
    assert count("Top Drawer Front", 1) == 1 and count("Top Drawer Handle", 1) == 1
    keys = {p.key for p in geo.parts if p.key.node == "Shelf"}
    assert len(keys) == 1  # all shelves are copies of one canonical primitive


@pytest.mark.parametrize("count,ratio", [(1, 0.5), (4, 0.45), (4, 1.0), (6, 0.3)])
def test_cabinet_top_drawer_ratio(count, ratio):
    """The top drawer front is Top Drawer Ratio times as tall as the others; all fill the opening."""
    p = {"Interior": 1, "Drawer Count": count, "Top Drawer Ratio": ratio, "Height": 0.7,
         "Board Thickness": 0.02, "Has Legs": False}
    geo = load_program("cabinet").evaluate(p, dtype=F64)
    fronts = [p.key.node for p in geo.parts if bool(p.active[0])]
    mesh = geo.realize()
    v = mesh.verts[0][mesh.vert_active[0]]
    opening = 0.7 - 2 * 0.02
    step = opening / (count - 1 + ratio)
    zs = torch.unique(torch.round(v[:, 2] * 1e6)) / 1e6
    top_lo, top_hi = 0.02 + opening - step * ratio + 0.003, 0.02 + opening - 0.003
    assert any(abs(z - top_lo) < 1e-6 for z in zs.tolist()) and any(abs(z - top_hi) < 1e-6 for z in zs.tolist())
    assert fronts.count("Drawer Front") == count - 1 and fronts.count("Top Drawer Front") == 1


def test_chair_uses_a_nested_group():
    prog = load_program("chair")
    geo = prog.evaluate({"Legs Type": 1})
    legs = [p for p in geo.parts if p.key.tree == "Chair Legs"]
    assert len(legs) == 4 and all(p.kind == "cylinder" for p in legs)
