"""The program library beyond the first four: stool, sideboard, desk, sofa, bed; categories and the
parameter catalogues (budget: < 10 s). Blender parity of every library program, these included, is
tests/test_blender_parity.py::test_parity_own_programs (it lists splat/programs/)."""

from __future__ import annotations

import math

import pytest
import torch

from splat.errors import SplatError
from splat.library import categories, entry, library
from splat.program import available_programs, load_program

F64 = torch.float64
NEW = ("stool", "sideboard", "desk", "sofa", "bed")


def _extent(m, b=0):
    v = m.verts[b][m.vert_active[b]]
    return v.amin(0), v.amax(0)


def _set_active(prog, a, name):
    """``a`` with the conditions of ``name`` (and theirs) satisfied."""
    todo = list(prog.space[name].requires)
    while todo:
        c = todo.pop()
        a[c.name] = c.value
        todo += list(prog.space[c.name].requires)
    return a


def test_library_has_the_furniture_classes():
    assert set(NEW) | {"chair", "table", "cabinet", "bookshelf"} <= set(available_programs())
    assert set(categories()) == {"seating", "table", "storage", "bed"}
    assert {e.name for e in library("storage")} == {"cabinet", "sideboard", "bookshelf"}
    assert {e.name for e in library("seating")} == {"chair", "stool", "sofa"}
    assert [e.name for e in library()] == sorted(available_programs())
    assert entry("desk").category == "table" and "pedestal" in entry("desk").description


def test_unknown_category_and_program_are_user_errors():
    with pytest.raises(SplatError, match="categories: bed, seating, storage, table") as err:
        library("kitchen")
    assert err.value.field == "--category"
    with pytest.raises(SplatError, match="no library program 'throne'"):
        entry("throne")


@pytest.mark.parametrize("name", available_programs())
def test_catalogue_groups_labels_requires(name):
    space = load_program(name).space
    for p in space.params:
        assert p.group, f"{name}: {p.name} has no group"
        if p.type == "int" and p.labels:
            assert len(p.labels) == p.high - p.low + 1, f"{name}: {p.name} labels do not cover its range"
    assert any(p.requires for p in space.params), f"{name}: no conditional parameter"


@pytest.mark.parametrize("name", NEW)
def test_new_programs_stand_on_the_floor_centred(name):
    prog = load_program(name)
    assert prog.space.validate(prog.defaults()) == prog.defaults()
    n = 48
    batch = prog.space.sample(n, torch.Generator().manual_seed(7), dtype=F64)
    m = prog.evaluate(batch, dtype=F64).realize()
    big = torch.tensor(1e9, dtype=F64)
    lo = torch.where(m.vert_active[..., None], m.verts, big).amin(1)
    hi = torch.where(m.vert_active[..., None], m.verts, -big).amax(1)
    torch.testing.assert_close(lo[:, 2], torch.zeros(n, dtype=F64), atol=1e-9, rtol=0)
    torch.testing.assert_close(lo[:, 0], -hi[:, 0], atol=1e-9, rtol=0)  # centred in x
    # centred in y up to what sticks out at one side only (handles, overhangs, a headboard)
    assert ((lo[:, 1] + hi[:, 1]).abs() < 0.1).all()
    size = hi - lo
    assert (size > 0.1).all() and (size < 3.0).all()
    # no part hangs below the floor or inverts: every active vertex is finite
    assert torch.isfinite(m.verts[m.vert_active]).all()


@pytest.mark.parametrize("name", NEW)
def test_new_programs_discrete_values_change_the_geometry(name):
    prog = load_program(name)
    base = prog.defaults()
    for k in prog.space.discrete:
        p = prog.space[k]
        values = [False, True] if p.type == "bool" else list(range(p.low, p.high + 1))
        seen = set()
        for v in values:
            a = _set_active(prog, dict(base), k)
            a[k] = v
            assert prog.space.active(a)[k]
            m = prog.evaluate(a, dtype=F64).realize()
            seen.add((int(m.n_polys[0]), round(float(m.verts[0][m.vert_active[0]].sum()), 6)))
        assert len(seen) == len(values), f"{name}: {k} values do not all change the geometry"


@pytest.mark.parametrize("name", NEW)
def test_new_programs_inactive_parameters_are_inert(name):
    prog = load_program(name)
    base = prog.defaults()
    ref = prog.evaluate(base, dtype=F64).realize()
    active = prog.space.active(base)
    for p in prog.space.params:
        if active[p.name]:
            continue
        a = dict(base)
        a[p.name] = (not base[p.name]) if p.type == "bool" else p.high if base[p.name] != p.high else p.low
        m = prog.evaluate(a, dtype=F64).realize()
        assert int(m.n_polys[0]) == int(ref.n_polys[0]), (name, p.name)
        torch.testing.assert_close(m.verts[0][m.vert_active[0]], ref.verts[0][ref.vert_active[0]])


def _part_boxes(prog, params, node):
    """World boxes ``[(lo, hi)]`` of the active parts made by the node called ``node``."""
    geo = prog.evaluate(params, dtype=F64)
    out = []
    for part in geo.parts:
        if part.key.node == node and bool(part.active[0]):
            v = part.world_verts()[0]
            out.append((v.amin(0), v.amax(0)))
    return out


def test_sideboard_drawers_above_doors_with_an_overhanging_top():
    prog = load_program("sideboard")
    a = dict(prog.defaults(), **{"Columns": 2, "Has Drawers": True, "Drawer Rows": 1, "Has Doors": True,
                                 "Top Overhang": 0.04, "Base Type": 0, "Handle Type": 1})
    drawers = _part_boxes(prog, a, "Drawer Front")
    doors = _part_boxes(prog, a, "Door")
    assert len(drawers) == 2 and len(doors) == 2  # two drawers above two doors
    assert min(float(lo[2]) for lo, _ in drawers) > max(float(hi[2]) for _, hi in doors) - 1e-9
    (top_lo, top_hi), = _part_boxes(prog, a, "Top Board")
    sides = _part_boxes(prog, a, "Side Panel")
    carcass_w = max(float(hi[0]) for _, hi in sides) - min(float(lo[0]) for lo, _ in sides)
    assert float(top_hi[0] - top_lo[0]) == pytest.approx(carcass_w + 0.08)
    assert len(_part_boxes(prog, a, "Drawer Handle Bar")) == 2 and len(_part_boxes(prog, a, "Door Handle Bar")) == 2
    assert len(_part_boxes(prog, a, "Plinth")) == 1 and not _part_boxes(prog, a, "Leg")
    b = dict(a, **{"Columns": 3, "Drawer Rows": 2, "Base Type": 1, "Handle Type": 2})
    assert len(_part_boxes(prog, b, "Drawer Front")) == 6 and len(_part_boxes(prog, b, "Door")) == 3
    assert len(_part_boxes(prog, b, "Leg")) == 4 and len(_part_boxes(prog, b, "Drawer Handle Knob")) == 6


def test_stool_round_seat_on_four_legs_and_pedestal():
    prog = load_program("stool")
    a = dict(prog.defaults(), **{"Seat Shape": 1, "Base Type": 0, "Has Stretchers": True})
    assert len(_part_boxes(prog, a, "Round Seat")) == 1 and not _part_boxes(prog, a, "Square Seat")
    assert len(_part_boxes(prog, a, "Square Leg")) + len(_part_boxes(prog, a, "Round Leg")) == 4
    assert len(_part_boxes(prog, a, "Stretcher X")) == 2 and len(_part_boxes(prog, a, "Stretcher Y")) == 2
    m = prog.evaluate(a, dtype=F64).realize()
    lo, hi = _extent(m)
    assert float(hi[2]) == pytest.approx(a["Height"])
    assert float(hi[0] - lo[0]) == pytest.approx(a["Seat Width"], abs=1e-3)  # the seat's diameter
    b = dict(a, **{"Base Type": 1})
    assert len(_part_boxes(prog, b, "Column")) == 1 and not _part_boxes(prog, b, "Round Leg")


def test_desk_pedestal_side_and_drawers():
    prog = load_program("desk")
    a = dict(prog.defaults(), **{"Has Pedestal": True, "Pedestal Side": 0, "Drawer Count": 3, "Support Type": 0})
    (body_lo, body_hi), = _part_boxes(prog, a, "Pedestal Body")
    assert float(body_lo[0]) > 0  # right (+X)
    assert len(_part_boxes(prog, a, "Drawer Front")) == 3
    assert len(_part_boxes(prog, a, "Leg")) == 2  # the free side's pair; the pedestal carries the other side
    b = dict(a, **{"Pedestal Side": 1})
    (body_lo, body_hi), = _part_boxes(prog, b, "Pedestal Body")
    assert float(body_hi[0]) < 0  # left
    c = dict(a, **{"Has Pedestal": False})
    assert len(_part_boxes(prog, c, "Leg")) == 4 and not _part_boxes(prog, c, "Pedestal Body")


def test_sofa_cushions_and_bed_boards():
    sofa = load_program("sofa")
    a = dict(sofa.defaults(), **{"Seat Cushions": 3})
    cushions = _part_boxes(sofa, a, "Cushion")
    assert len(cushions) == 3
    assert float(cushions[0][1][2]) == pytest.approx(a["Seat Height"])
    bed = load_program("bed")
    b = dict(bed.defaults(), **{"Has Headboard": True, "Has Footboard": True})
    (head_lo, head_hi), = _part_boxes(bed, b, "Headboard")
    (foot_lo, foot_hi), = _part_boxes(bed, b, "Footboard")
    assert float(head_lo[1]) > 0 > float(foot_hi[1])
    assert float(head_hi[2]) == pytest.approx(b["Frame Height"] + b["Headboard Height"])


def _stool_legs(prog, a):
    """The stool's active leg parts (whichever leg shape) as ``(key, world verts [V, 3], part)``."""
    geo = prog.evaluate(a, dtype=F64)
    return [(p.key, p.world_verts()[0], p) for p in geo.parts
            if p.key.node in ("Square Leg", "Round Leg") and bool(p.active[0])]


def _leg_axis(part):
    """(top centre, foot centre) of a leg part: its local z axis end points in the world."""
    m = part.transform[0]
    length = float(part.shape["size"][0][2]) if part.kind == "cube" else float(part.shape["depth"][0])
    ends = torch.tensor([[0.0, 0.0, length / 2.0, 1.0], [0.0, 0.0, -length / 2.0, 1.0]], dtype=F64)
    top, foot = (m @ ends.T).T[:, :3]
    return top, foot, length


@pytest.mark.parametrize("leg_shape", [0, 1])
def test_stool_splay_moves_the_feet_out_and_keeps_them_on_the_floor(leg_shape):
    prog = load_program("stool")
    a = dict(prog.defaults(), **{"Seat Shape": 0, "Base Type": 0, "Leg Shape": leg_shape, "Leg Splay": 0.0,
                                 "Side Splay": 0.0})
    lh = a["Height"] - a["Seat Thickness"]

    def legs_by_corner(params):
        legs = [(*_leg_axis(p), v) for _, v, p in _stool_legs(prog, params)]
        return sorted(legs, key=lambda e: (float(e[0][1]), float(e[0][0])))

    straight = legs_by_corner(a)
    for top, foot, length, _ in straight:
        assert length == pytest.approx(lh) and float(foot[2]) == pytest.approx(0.0, abs=1e-12)
    for front, side in ((8.0, 0.0), (0.0, 8.0), (5.0, 11.0)):
        b = dict(a, **{"Leg Splay": front, "Side Splay": side})
        splayed = legs_by_corner(b)
        assert len(splayed) == 4
        m = prog.evaluate(b, dtype=F64).realize()
        assert float(m.verts[0][m.vert_active[0]][:, 2].min()) == pytest.approx(0.0, abs=1e-12)
        ry, rx = math.radians(front), math.radians(side)
        for (top0, _, _, _), (top, foot, length, v) in zip(straight, splayed):
            torch.testing.assert_close(top, top0)  # the leg turns about its top under the seat
            assert float(v[:, 2].min()) == pytest.approx(0.0, abs=1e-12)  # the lowest point of the foot on the floor
            assert 0.0 <= float(foot[2]) < a["Leg Size"] * 0.2  # the foot's centre just above it
            out_x, out_y = float((foot[0] - top[0]) * torch.sign(top[0])), float((foot[1] - top[1]) * torch.sign(top[1]))
            # Euler XYZ (side, front) about the top: outward by length * sin(angle) seen along each axis
            assert out_x == pytest.approx(length * math.cos(rx) * math.sin(ry), abs=1e-9)
            assert out_y == pytest.approx(length * math.sin(rx), abs=1e-9)
            if side == 0.0:
                assert out_x == pytest.approx(length * math.sin(ry), abs=1e-9) and out_y == pytest.approx(0.0, abs=1e-12)


def test_stool_legs_are_copies_of_one_primitive():
    prog = load_program("stool")
    for leg_shape in (0, 1):
        a = dict(prog.defaults(), **{"Base Type": 0, "Leg Shape": leg_shape, "Leg Splay": 7.0, "Side Splay": 3.0,
                                     "Has Apron": True, "Has Stretchers": True})
        keys = {k for k, _, _ in _stool_legs(prog, a)}
        assert len(keys) == 1 and len(_stool_legs(prog, a)) == 4
        (key,) = keys
        assert key.node == prog.space["Leg Shape"].labels[leg_shape].capitalize() + " Leg"  # 0 square, 1 round
        geo = prog.evaluate(a, dtype=F64)
        rails = [p.key for p in geo.parts if p.key.node.startswith(("Apron", "Stretcher")) and bool(p.active[0])]
        assert len(rails) == 8 and len(set(rails)) == 4  # each rail kind: two copies of one cube


def test_stool_apron_under_the_seat_only_with_has_apron():
    prog = load_program("stool")
    a = dict(prog.defaults(), **{"Seat Shape": 0, "Base Type": 0, "Leg Splay": 4.0, "Side Splay": 6.0,
                                 "Has Apron": False, "Apron Height": 0.06})
    assert not _part_boxes(prog, a, "Apron X") and not _part_boxes(prog, a, "Apron Y")
    b = dict(a, **{"Has Apron": True})
    seat_bottom = b["Height"] - b["Seat Thickness"]
    for node, axis in (("Apron X", 1), ("Apron Y", 0)):
        boxes = _part_boxes(prog, b, node)
        assert len(boxes) == 2
        for lo, hi in boxes:
            assert float(hi[2]) == pytest.approx(seat_bottom) and float(lo[2]) == pytest.approx(seat_bottom - 0.06)
        assert float(boxes[0][1][axis]) < 0 < float(boxes[1][0][axis])  # one rail on either side
    assert not _part_boxes(prog, dict(b, **{"Base Type": 1}), "Apron X")  # not under a pedestal stool


def _rail_touches_legs(prog, a, node, axis):
    """Each end of every ``node`` rail lies on the inner face of the leg there, at the rail's mid-height."""
    legs = [_leg_axis(p) for _, _, p in _stool_legs(prog, a)]
    half = a["Leg Size"] / 2.0
    for lo, hi in _part_boxes(prog, a, node):
        z = float(lo[2] + hi[2]) / 2.0
        across = float(lo[1 - axis] + hi[1 - axis]) / 2.0
        for end, sign in ((float(lo[axis]), -1.0), (float(hi[axis]), 1.0)):
            # the leg on that end and on the rail's side: its axis at height z
            top, foot, _ = next(e for e in legs if float(e[0][axis]) * sign > 0 and float(e[0][1 - axis]) * across > 0)
            at = top + (foot - top) * (float(top[2]) - z) / float(top[2] - foot[2])
            assert abs(float(at[1 - axis]) - across) < 1e-9  # the rail runs in the legs' plane
            assert end * sign == pytest.approx(float(at[axis]) * sign - half, abs=1e-9)  # ends at the inner face


@pytest.mark.parametrize("splay", [(0.0, 0.0), (6.0, 0.0), (3.0, 9.0), (12.0, 12.0)])
def test_stool_stretchers_and_apron_meet_the_legs_at_any_splay(splay):
    prog = load_program("stool")
    for leg_shape, seat_shape in ((1, 0), (0, 1)):
        a = dict(prog.defaults(), **{"Seat Shape": seat_shape, "Base Type": 0, "Leg Shape": leg_shape,
                                     "Leg Splay": splay[0], "Side Splay": splay[1], "Has Apron": True,
                                     "Has Stretchers": True, "Stretcher Height": 0.15})
        for node, axis in (("Stretcher X", 0), ("Stretcher Y", 1), ("Apron X", 0), ("Apron Y", 1)):
            assert len(_part_boxes(prog, a, node)) == 2
            _rail_touches_legs(prog, a, node, axis)
        (lo, hi), _ = _part_boxes(prog, a, "Stretcher X")
        assert float(lo[2] + hi[2]) / 2.0 == pytest.approx(0.15)
