"""Write the project's own shape programs: programs/<name>/{graph.json, params.json}.

Run ``python programs/build_programs.py`` after changing a program; the JSON is committed and loads
without this script (or bpy). Conventions: metres, +Z up, objects stand on z = 0 centred on the origin
in x/y, the front faces -Y. Defaults are plausible furniture deliberately away from the shipped scenes' ground truth
(assets/scenes/*/transforms.json "gt_params"), so that fitting has to move them.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from builder import Tree, graph  # noqa: E402

HERE = Path(__file__).resolve().parent


def P(name, type_, rng=None, default=None, requires=(), group=None, labels=None, scan_blind=False) -> dict:
    d = {"name": name, "type": type_}
    if rng is not None:
        d["range"] = list(rng)
    d["default"] = default
    if requires:
        d["requires"] = list(requires)
    if group:
        d["group"] = group
    if labels:
        d["labels"] = list(labels)
    if scan_blind:
        d["scan_blind"] = True
    return d


def add_inputs(t: Tree, params: list[dict]) -> dict:
    sock = {"float": "FLOAT", "int": "INT", "bool": "BOOLEAN"}
    refs = {}
    for p in params:
        lo, hi = (p["range"] if "range" in p else (None, None))
        refs[p["name"]] = t.input(p["name"], sock[p["type"]], p["default"], lo, hi)
    return refs


# ---------------------------------------------------------------------------------------------- chair

CHAIR_PARAMS = [
    P("Seat Height", "float", (0.35, 0.60), 0.52, group="Seat"),
    P("Seat Width", "float", (0.38, 0.65), 0.56, group="Seat"),
    P("Seat Depth", "float", (0.36, 0.60), 0.52, group="Seat"),
    P("Seat Thickness", "float", (0.02, 0.08), 0.06, group="Seat"),
    P("Legs Type", "int", (0, 2), 0, group="Legs", labels=("square", "round", "pedestal")),
    P("Leg Size", "float", (0.025, 0.07), 0.05, group="Legs"),
    P("Has Stretchers", "bool", None, False, requires=[["Legs Type", 0]], group="Legs"),
    P("Stretcher Height", "float", (0.08, 0.25), 0.18, requires=[["Legs Type", 0], "Has Stretchers"], group="Legs"),
    P("Base Radius", "float", (0.18, 0.32), 0.25, requires=[["Legs Type", 2]], group="Legs"),
    P("Has Back", "bool", None, True, group="Back"),
    P("Back Type", "int", (0, 1), 0, requires=["Has Back"], group="Back", labels=("solid", "slats")),
    P("Back Height", "float", (0.25, 0.60), 0.34, requires=["Has Back"], group="Back"),
    P("Back Thickness", "float", (0.015, 0.06), 0.04, requires=["Has Back"], group="Back"),
    P("Slat Count", "int", (2, 6), 3, requires=["Has Back", ["Back Type", 1]], group="Back"),
    P("Has Arms", "bool", None, False, group="Arms"),
    P("Arm Height", "float", (0.15, 0.30), 0.22, requires=["Has Arms"], group="Arms"),
    P("Arm Width", "float", (0.03, 0.08), 0.05, requires=["Has Arms"], group="Arms"),
]


def chair_legs_tree() -> Tree:
    t = Tree("Chair Legs")
    lt = t.input("Legs Type", "INT", 0)
    s = t.input("Leg Size", "FLOAT", 0.04)
    lh = t.input("Leg Height", "FLOAT", 0.42)
    w = t.input("Width", "FLOAT", 0.5)
    d = t.input("Depth", "FLOAT", 0.47)
    has_st = t.input("Has Stretchers", "BOOLEAN", False)
    sh = t.input("Stretcher Height", "FLOAT", 0.15)
    br = t.input("Base Radius", "FLOAT", 0.25)
    corners = t.grid(w - s, d - s, 2, 2, name="Leg Corners")
    square = t.transform(t.cube(t.vec(s, s, lh), name="Square Leg"), translation=t.vec(0.0, 0.0, lh / 2.0))
    rnd = t.transform(t.cylinder(s / 2.0, lh, 16, name="Round Leg"), translation=t.vec(0.0, 0.0, lh / 2.0))
    four = t.instance(corners, t.switch("GEOMETRY", t.eq(lt, 1), square, rnd))
    bar = t.cube(t.vec(s * 0.6, d - s, s * 0.6), name="Stretcher")
    bar_pts = t.line(2, t.vec(-((w - s) / 2.0), 0.0, sh), t.vec(w - s, 0.0, 0.0), name="Stretcher Points")
    stretchers = t.switch("GEOMETRY", has_st * t.eq(lt, 0), None, t.instance(bar_pts, bar))
    col_h = lh - 0.03
    column = t.transform(t.cylinder(s, col_h, 24, name="Column"), translation=t.vec(0.0, 0.0, col_h / 2.0 + 0.03))
    base = t.transform(t.cylinder(br, 0.03, 32, name="Base"), translation=t.vec(0.0, 0.0, 0.015))
    legs = t.switch("GEOMETRY", t.eq(lt, 2), t.join(four, stretchers), t.join(column, base))
    t.output(legs)
    return t


def chair() -> tuple[dict, list]:
    t = Tree("Chair")
    p = add_inputs(t, CHAIR_PARAMS)
    h, w, d, th = p["Seat Height"], p["Seat Width"], p["Seat Depth"], p["Seat Thickness"]
    seat = t.transform(t.cube(t.vec(w, d, th), name="Seat"), translation=t.vec(0.0, 0.0, h - th / 2.0))
    legs_tree = chair_legs_tree()
    g = t.group(legs_tree, name="Legs", **{
        "Legs Type": p["Legs Type"], "Leg Size": p["Leg Size"], "Leg Height": h - th, "Width": w, "Depth": d,
        "Has Stretchers": p["Has Stretchers"], "Stretcher Height": p["Stretcher Height"],
        "Base Radius": p["Base Radius"]})
    from builder import Ref
    legs = Ref(t, g, "Geometry")
    bh, bt = p["Back Height"], p["Back Thickness"]
    back_y = d / 2.0 - bt / 2.0
    panel = t.transform(t.cube(t.vec(w, bt, bh), name="Back Panel"), translation=t.vec(0.0, back_y, h + bh / 2.0))
    rail = t.transform(t.cube(t.vec(w, bt, 0.05), name="Back Rail"), translation=t.vec(0.0, back_y, h + bh - 0.025))
    slat_h = bh - 0.05
    slat = t.cube(t.vec(0.04, bt, slat_h), name="Back Slat")
    slat_pts = t.line(p["Slat Count"], t.vec(-(w / 2.0 - 0.02), back_y, h + slat_h / 2.0),
                      t.vec(w / 2.0 - 0.02, back_y, h + slat_h / 2.0), mode="END_POINTS", name="Slat Points")
    slats = t.join(rail, t.instance(slat_pts, slat))
    back = t.switch("GEOMETRY", p["Has Back"], None, t.switch("GEOMETRY", t.eq(p["Back Type"], 1), panel, slats))
    ah, aw = p["Arm Height"], p["Arm Width"]
    rest = t.transform(t.cube(t.vec(aw, d * 0.8, 0.03), name="Arm Rest"), translation=t.vec(0.0, 0.0, ah - 0.015))
    post_h = ah - 0.03
    post = t.transform(t.cube(t.vec(aw, aw, post_h), name="Arm Post"),
                       translation=t.vec(0.0, -(d * 0.3), post_h / 2.0))
    arm_pts = t.line(2, t.vec(-(w / 2.0 - aw / 2.0), 0.0, h), t.vec(w - aw, 0.0, 0.0), name="Arm Points")
    arms = t.switch("GEOMETRY", p["Has Arms"], None, t.instance(arm_pts, t.join(rest, post)))
    t.output(t.realize(t.join(seat, legs, back, arms)))
    return graph(t, legs_tree), CHAIR_PARAMS


# ---------------------------------------------------------------------------------------------- table

TABLE_PARAMS = [
    P("Width", "float", (0.6, 2.0), 1.1, group="Top"),
    P("Depth", "float", (0.5, 1.1), 0.7, group="Top"),
    P("Height", "float", (0.55, 0.80), 0.72, group="Top"),
    P("Top Thickness", "float", (0.02, 0.06), 0.035, group="Top"),
    P("Top Shape", "int", (0, 1), 0, group="Top", labels=("rectangular", "oval")),
    P("Legs Type", "int", (0, 2), 0, group="Legs", labels=("square", "round", "trestle")),
    P("Leg Size", "float", (0.03, 0.10), 0.05, group="Legs"),
    P("Leg Inset", "float", (0.0, 0.12), 0.04, group="Legs"),
    P("Has Apron", "bool", None, False, requires=[["Legs Type", 0]], group="Legs"),
    P("Apron Height", "float", (0.05, 0.15), 0.08, requires=[["Legs Type", 0], "Has Apron"], group="Legs"),
    P("Has Shelf", "bool", None, False, group="Shelf"),
    P("Shelf Height", "float", (0.10, 0.30), 0.18, requires=["Has Shelf"], group="Shelf"),
]


def table() -> tuple[dict, list]:
    t = Tree("Table")
    p = add_inputs(t, TABLE_PARAMS)
    w, d, h, tt = p["Width"], p["Depth"], p["Height"], p["Top Thickness"]
    lt, s, inset = p["Legs Type"], p["Leg Size"], p["Leg Inset"]
    oval = t.eq(p["Top Shape"], 1)
    rect_top = t.cube(t.vec(w, d, tt), name="Top Board")
    oval_top = t.transform(t.cylinder(0.5, tt, 48, name="Oval Top"), scale=t.vec(w, d, 1.0))
    top = t.transform(t.switch("GEOMETRY", oval, rect_top, oval_top), translation=t.vec(0.0, 0.0, h - tt / 2.0))
    f = t.switch("FLOAT", oval, 1.0, 0.7071)
    span_x = (w - s - inset * 2.0) * f
    span_y = (d - s - inset * 2.0) * f
    lh = h - tt
    square = t.transform(t.cube(t.vec(s, s, lh), name="Square Leg"), translation=t.vec(0.0, 0.0, lh / 2.0))
    rnd = t.transform(t.cylinder(s / 2.0, lh, 16, name="Round Leg"), translation=t.vec(0.0, 0.0, lh / 2.0))
    four = t.instance(t.grid(span_x, span_y, 2, 2, name="Leg Corners"), t.switch("GEOMETRY", t.eq(lt, 1), square, rnd))
    ah = p["Apron Height"]
    az = lh - ah / 2.0
    apron_x = t.instance(t.line(2, t.vec(0.0, -(span_y / 2.0), az), t.vec(0.0, span_y, 0.0), name="Apron X Points"),
                         t.cube(t.vec(span_x, 0.02, ah), name="Apron X"))
    apron_y = t.instance(t.line(2, t.vec(-(span_x / 2.0), 0.0, az), t.vec(span_x, 0.0, 0.0), name="Apron Y Points"),
                         t.cube(t.vec(0.02, span_y, ah), name="Apron Y"))
    apron = t.switch("GEOMETRY", p["Has Apron"] * t.eq(lt, 0), None, t.join(apron_x, apron_y))
    panels = t.instance(t.line(2, t.vec(-(span_x / 2.0), 0.0, lh / 2.0), t.vec(span_x, 0.0, 0.0), name="Trestle Points"),
                        t.cube(t.vec(s, span_y + s, lh), name="Trestle Panel"))
    beam = t.transform(t.cube(t.vec(span_x, s, s), name="Trestle Beam"), translation=t.vec(0.0, 0.0, lh * 0.3))
    legs = t.switch("GEOMETRY", t.eq(lt, 2), t.join(four, apron), t.join(panels, beam))
    shelf = t.transform(t.cube(t.vec(span_x + s, span_y + s, 0.02), name="Shelf Board"),
                        translation=t.vec(0.0, 0.0, p["Shelf Height"]))
    shelf = t.switch("GEOMETRY", p["Has Shelf"], None, shelf)
    t.output(t.realize(t.join(top, legs, shelf)))
    return graph(t), TABLE_PARAMS


# -------------------------------------------------------------------------------------------- cabinet

CABINET_PARAMS = [
    P("Width", "float", (0.4, 1.6), 0.8, group="Body"),
    P("Height", "float", (0.5, 2.0), 0.9, group="Body"),
    P("Depth", "float", (0.3, 0.9), 0.45, group="Body"),  # to 0.9: office pedestals are ~0.8 deep (TUM fr3/cabinet 0.83)
    P("Board Thickness", "float", (0.012, 0.03), 0.018, group="Body"),
    P("Has Back", "bool", None, True, group="Body"),
    P("Has Legs", "bool", None, False, group="Legs"),
    P("Leg Height", "float", (0.05, 0.20), 0.10, requires=["Has Legs"], group="Legs"),
    P("Leg Size", "float", (0.03, 0.06), 0.04, requires=["Has Legs"], group="Legs"),
    P("Interior", "int", (0, 1), 0, group="Interior", labels=("shelves", "drawers")),
    P("Shelf Count", "int", (1, 6), 2, requires=[["Interior", 0]], group="Interior"),
    P("Has Doors", "bool", None, False, requires=[["Interior", 0]], group="Interior"),
    P("Drawer Count", "int", (1, 6), 3, requires=[["Interior", 1]], group="Interior"),
    # office pedestals have a shallow top drawer (a pen tray) over equal ones (TUM fr3/cabinet: ~0.45)
    P("Top Drawer Ratio", "float", (0.3, 1.0), 1.0, requires=[["Interior", 1]], group="Interior"),
    # where the handle sits on each front, as a fraction of its height from the bottom (pedestals: near
    # the top, TUM fr3/cabinet ~0.75; 0.5: centred); the search holds it (a scan sees a 2 cm bar poorly,
    # and with it free the drawer count was recovered in 6 of 10 synthetic scans, not 10), the photos set it
    P("Handle Height", "float", (0.2, 0.8), 0.5, requires=[["Interior", 1]], group="Interior", scan_blind=True),
]


def cabinet() -> tuple[dict, list]:
    t = Tree("Cabinet")
    p = add_inputs(t, CABINET_PARAMS)
    w, h, d, th = p["Width"], p["Height"], p["Depth"], p["Board Thickness"]
    z0 = t.switch("FLOAT", p["Has Legs"], 0.0, p["Leg Height"])
    hb = h - z0
    wi = w - th * 2.0
    hi = hb - th * 2.0
    sides = t.instance(t.line(2, t.vec(-(w / 2.0 - th / 2.0), 0.0, z0 + hb / 2.0), t.vec(w - th, 0.0, 0.0),
                              name="Side Points"), t.cube(t.vec(th, d, hb), name="Side Panel"))
    caps = t.instance(t.line(2, t.vec(0.0, 0.0, z0 + th / 2.0), t.vec(0.0, 0.0, hb - th), name="Cap Points"),
                      t.cube(t.vec(wi, d, th), name="Top Bottom Panel"))
    back = t.transform(t.cube(t.vec(wi, th, hi), name="Back Panel"), translation=t.vec(0.0, d / 2.0 - th / 2.0, z0 + hb / 2.0))
    back = t.switch("GEOMETRY", p["Has Back"], None, back)
    n = p["Shelf Count"]
    step = hi / (n + 1.0)
    shelves = t.instance(t.line(n, t.vec(0.0, 0.0, z0 + th + step), t.vec(0.0, 0.0, step), name="Shelf Points"),
                         t.cube(t.vec(wi, d - th, th), name="Shelf"))
    doors = t.instance(t.line(2, t.vec(-(w / 4.0), -(d / 2.0 + 0.009), z0 + hb / 2.0), t.vec(w / 2.0, 0.0, 0.0),
                              name="Door Points"), t.cube(t.vec(w / 2.0 - 0.004, 0.018, hb - 0.004), name="Door"))
    open_part = t.join(shelves, t.switch("GEOMETRY", p["Has Doors"], None, doors))
    # Drawer Count - 1 equal drawers, then a top drawer Top Drawer Ratio times their height
    m = p["Drawer Count"]
    r = p["Top Drawer Ratio"]
    dstep = hi / (m - 1.0 + r)
    yf = -(d / 2.0 - 0.01)
    hz = p["Handle Height"] - 0.5  # the handle's offset from the front's centre, in front heights
    front = t.cube(t.vec(wi - 0.006, 0.02, dstep - 0.006), name="Drawer Front")
    handle = t.transform(t.cube(t.vec(0.12, 0.025, 0.02), name="Drawer Handle"),
                         translation=t.vec(0.0, -0.0225, (dstep - 0.006) * hz))
    drawers = t.instance(t.line(m - 1.0, t.vec(0.0, yf, z0 + th + dstep / 2.0), t.vec(0.0, 0.0, dstep),
                                name="Drawer Points"), t.join(front, handle))
    top_front = t.cube(t.vec(wi - 0.006, 0.02, dstep * r - 0.006), name="Top Drawer Front")
    top_handle = t.transform(t.cube(t.vec(0.12, 0.025, 0.02), name="Top Drawer Handle"),
                             translation=t.vec(0.0, -0.0225, (dstep * r - 0.006) * hz))
    top_drawer = t.transform(t.join(top_front, top_handle),
                             translation=t.vec(0.0, yf, z0 + th + hi - dstep * r / 2.0))
    drawers = t.join(drawers, top_drawer)
    interior = t.switch("GEOMETRY", t.eq(p["Interior"], 1), open_part, drawers)
    lh, ls = p["Leg Height"], p["Leg Size"]
    leg = t.transform(t.cube(t.vec(ls, ls, lh), name="Cabinet Leg"), translation=t.vec(0.0, 0.0, lh / 2.0))
    legs = t.switch("GEOMETRY", p["Has Legs"], None, t.instance(t.grid(w - ls, d - ls, 2, 2, name="Leg Corners"), leg))
    t.output(t.realize(t.join(sides, caps, back, interior, legs)))
    return graph(t), CABINET_PARAMS


# ------------------------------------------------------------------------------------------ bookshelf

BOOKSHELF_PARAMS = [
    P("Width", "float", (0.4, 1.6), 0.9, group="Body"),
    P("Height", "float", (0.6, 2.2), 1.6, group="Body"),
    P("Depth", "float", (0.2, 0.6), 0.3, group="Body"),  # to 0.6: the Poly Haven wooden_bookshelf_worn is 0.58 deep
    P("Board Thickness", "float", (0.015, 0.05), 0.022, group="Body"),  # to 0.05: solid-wood frames
    P("Has Back", "bool", None, True, group="Body"),
    # a cornice: the top board reaching past the sides and the front (off by default: today's shape)
    P("Has Top Overhang", "bool", None, False, group="Top"),
    P("Top Overhang", "float", (0.005, 0.03), 0.015, requires=["Has Top Overhang"], group="Top"),
    P("Shelf Count", "int", (1, 8), 3, group="Shelves"),
    P("Divider Count", "int", (0, 3), 0, group="Shelves"),
    P("Has Kick Plate", "bool", None, False, group="Base"),
    P("Kick Height", "float", (0.04, 0.12), 0.07, requires=["Has Kick Plate"], group="Base"),
]


def bookshelf() -> tuple[dict, list]:
    t = Tree("Bookshelf")
    p = add_inputs(t, BOOKSHELF_PARAMS)
    w, h, d, th = p["Width"], p["Height"], p["Depth"], p["Board Thickness"]
    kick = t.switch("FLOAT", p["Has Kick Plate"], 0.0, p["Kick Height"])
    wi = w - th * 2.0
    sides = t.instance(t.line(2, t.vec(-(w / 2.0 - th / 2.0), 0.0, h / 2.0), t.vec(w - th, 0.0, 0.0), name="Side Points"),
                       t.cube(t.vec(th, d, h), name="Side Panel"))
    top = t.transform(t.cube(t.vec(wi, d, th), name="Top Board"), translation=t.vec(0.0, 0.0, h - th / 2.0))
    ov = p["Top Overhang"]
    cornice = t.transform(t.cube(t.vec(w + ov * 2.0, d + ov, th), name="Cornice"),
                          translation=t.vec(0.0, -(ov / 2.0), h - th / 2.0))
    top = t.switch("GEOMETRY", p["Has Top Overhang"], top, cornice)
    bottom = t.transform(t.cube(t.vec(wi, d, th), name="Bottom Board"), translation=t.vec(0.0, 0.0, kick + th / 2.0))
    plate = t.transform(t.cube(t.vec(wi, th, kick), name="Kick Plate"),
                        translation=t.vec(0.0, -(d / 2.0 - th / 2.0 - 0.01), kick / 2.0))
    plate = t.switch("GEOMETRY", p["Has Kick Plate"], None, plate)
    zb = kick + th
    zt = h - th
    n = p["Shelf Count"]
    step = (zt - zb) / (n + 1.0)
    shelves = t.instance(t.line(n, t.vec(0.0, 0.0, zb + step), t.vec(0.0, 0.0, step), name="Shelf Points"),
                         t.cube(t.vec(wi, d - 0.01, th), name="Shelf"))
    k = p["Divider Count"]
    xstep = wi / (k + 1.0)
    dividers = t.instance(t.line(k, t.vec(xstep - wi / 2.0, 0.0, (zb + zt) / 2.0), t.vec(xstep, 0.0, 0.0),
                                 name="Divider Points"), t.cube(t.vec(th, d - 0.01, zt - zb), name="Divider"))
    back = t.transform(t.cube(t.vec(w, 0.006, h), name="Back Panel"), translation=t.vec(0.0, d / 2.0 + 0.003, h / 2.0))
    back = t.switch("GEOMETRY", p["Has Back"], None, back)
    t.output(t.realize(t.join(sides, top, bottom, plate, shelves, dividers, back)))
    return graph(t), BOOKSHELF_PARAMS


# ------------------------------------------------------------------------------------------------ stool

STOOL_PARAMS = [
    P("Height", "float", (0.40, 0.85), 0.66, group="Seat"),
    P("Seat Shape", "int", (0, 1), 1, group="Seat", labels=("square", "round")),
    P("Seat Width", "float", (0.25, 0.50), 0.34, group="Seat"),  # the diameter of a round seat
    P("Seat Depth", "float", (0.25, 0.50), 0.32, requires=[["Seat Shape", 0]], group="Seat"),
    P("Seat Thickness", "float", (0.015, 0.06), 0.03, group="Seat"),
    P("Seat Overhang", "float", (0.0, 0.05), 0.02, group="Seat"),
    P("Base Type", "int", (0, 1), 0, group="Base", labels=("legs", "pedestal")),
    P("Leg Shape", "int", (0, 1), 1, requires=[["Base Type", 0]], group="Base", labels=("square", "round")),
    P("Leg Size", "float", (0.02, 0.06), 0.035, group="Base"),
    # splay, in degrees: each leg leans outward about its top under the seat; Leg Splay is the lean seen
    # from the front (the feet spread along X), Side Splay the lean about X (the feet spread along Y)
    P("Leg Splay", "float", (0.0, 12.0), 0.0, requires=[["Base Type", 0]], group="Base"),
    P("Side Splay", "float", (0.0, 12.0), 0.0, requires=[["Base Type", 0]], group="Base"),
    P("Has Apron", "bool", None, False, requires=[["Base Type", 0]], group="Base"),
    P("Apron Height", "float", (0.03, 0.15), 0.07, requires=[["Base Type", 0], "Has Apron"], group="Base"),
    P("Has Stretchers", "bool", None, False, requires=[["Base Type", 0]], group="Base"),
    P("Stretcher Height", "float", (0.08, 0.35), 0.2, requires=[["Base Type", 0], "Has Stretchers"], group="Base"),
    P("Base Radius", "float", (0.12, 0.25), 0.18, requires=[["Base Type", 1]], group="Base"),
]

# cos/sin of the angles of a 16-gon's vertices in the first quadrant (the round leg's lowest vertex)
_Q16 = [(math.cos(k * math.pi / 8.0), math.sin(k * math.pi / 8.0)) for k in range(5)]


def stool() -> tuple[dict, list]:
    t = Tree("Stool")
    p = add_inputs(t, STOOL_PARAMS)
    h, w, th, ov, s = p["Height"], p["Seat Width"], p["Seat Thickness"], p["Seat Overhang"], p["Leg Size"]
    rnd_seat = t.eq(p["Seat Shape"], 1)
    d = t.switch("FLOAT", rnd_seat, p["Seat Depth"], w)
    square_seat = t.cube(t.vec(w, p["Seat Depth"], th), name="Square Seat")
    round_seat = t.cylinder(w / 2.0, th, 32, name="Round Seat")
    seat = t.transform(t.switch("GEOMETRY", rnd_seat, square_seat, round_seat), translation=t.vec(0.0, 0.0, h - th / 2.0))
    # leg tops on the corners of the seat's inner rectangle (of the square inscribed in a round seat)
    f = t.switch("FLOAT", rnd_seat, 1.0, 0.7071)
    hx = ((w - ov * 2.0) * f - s) / 2.0
    hy = ((d - ov * 2.0) * f - s) / 2.0
    lh = h - th
    round_legs = t.eq(p["Leg Shape"], 1)
    # splay: the leg at the corner (sx, sy) is rotated by Euler XYZ (sy * ax, -sx * ay, 0) about its top
    # centre (lh above the floor), so its axis drops by lh while moving out by lh * tx along X and
    # lh * ty along Y
    ay = t.math("RADIANS", p["Leg Splay"])
    ax = t.math("RADIANS", p["Side Splay"])
    sin_y, cos_y = t.math("SINE", ay), t.math("COSINE", ay)
    sin_x, cos_x = t.math("SINE", ax), t.math("COSINE", ax)
    tx = t.math("TANGENT", ay)
    ty = t.math("TANGENT", ax) / cos_y
    # the lowest point of the tilted foot lies r * m below the foot's centre: (a, b) is the horizontal
    # direction of the axis' lean, m = max over the foot's corners (square) or its 16-gon's vertices
    # (round) of (a, b) . (corner / r)
    a, b = sin_y, sin_x * cos_y
    m_round = t.math("MAXIMUM", t.math("MAXIMUM", a, b),
                     t.math("MAXIMUM", t.math("MAXIMUM", a * _Q16[1][0] + b * _Q16[1][1],
                                                        a * _Q16[2][0] + b * _Q16[2][1]),
                            a * _Q16[3][0] + b * _Q16[3][1]))
    m = t.switch("FLOAT", round_legs, a + b, m_round)
    length = (lh - s / 2.0 * m) / (cos_x * cos_y)  # so that the lowest point of the foot is on the floor
    square = t.transform(t.cube(t.vec(s, s, length), name="Square Leg"), translation=t.vec(0.0, 0.0, -(length / 2.0)))
    rnd = t.transform(t.cylinder(s / 2.0, length, 16, name="Round Leg"), translation=t.vec(0.0, 0.0, -(length / 2.0)))
    leg = t.switch("GEOMETRY", round_legs, square, rnd)  # top centre at the origin
    four = []
    for sx, sy in ((-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)):
        four.append(t.transform(leg, translation=t.vec(hx * sx, hy * sy, lh), rotation=t.vec(ax * sy, ay * -sx, 0.0)))
    legs = t.join(*four)

    def rails(z_centre, height, thick, tag):
        """Rails between adjacent legs with their centres at ``z_centre``: two along X (front and back),
        two along Y (the sides), each from the inner face of one leg to the next at that height."""
        depth = lh - z_centre  # below the leg tops
        ox = hx + depth * tx  # leg axes at that height
        oy = hy + depth * ty
        along_x = t.instance(t.line(2, t.vec(0.0, -oy, z_centre), t.vec(0.0, oy * 2.0, 0.0), name=f"{tag} X Points"),
                             t.cube(t.vec(ox * 2.0 - s, thick, height), name=f"{tag} X"))
        along_y = t.instance(t.line(2, t.vec(-ox, 0.0, z_centre), t.vec(ox * 2.0, 0.0, 0.0), name=f"{tag} Y Points"),
                             t.cube(t.vec(thick, oy * 2.0 - s, height), name=f"{tag} Y"))
        return t.join(along_x, along_y)

    ah = p["Apron Height"]
    apron = rails(lh - ah / 2.0, ah, s * 0.5, "Apron")
    sb = s * 0.6
    stretchers = rails(p["Stretcher Height"], sb, sb, "Stretcher")
    legs = t.join(legs, t.switch("GEOMETRY", p["Has Apron"], None, apron),
                  t.switch("GEOMETRY", p["Has Stretchers"], None, stretchers))
    col_h = lh - 0.03
    column = t.transform(t.cylinder(s, col_h, 24, name="Column"), translation=t.vec(0.0, 0.0, col_h / 2.0 + 0.03))
    disc = t.transform(t.cylinder(p["Base Radius"], 0.03, 32, name="Base Disc"), translation=t.vec(0.0, 0.0, 0.015))
    base = t.switch("GEOMETRY", t.eq(p["Base Type"], 1), legs, t.join(column, disc))
    t.output(t.realize(t.join(seat, base)))
    return graph(t), STOOL_PARAMS


# ------------------------------------------------------------------------------------ shared: fronts

def handle_geometry(t: Tree, handle_type, name: str):
    """A handle centred on the origin, standing out towards -Y from a front whose face is at y = -0.01:
    0 none, 1 a horizontal bar, 2 a round knob."""
    bar = t.transform(t.cube(t.vec(0.10, 0.02, 0.015), name=f"{name} Bar"), translation=t.vec(0.0, -0.02, 0.0))
    knob = t.transform(t.cylinder(0.012, 0.02, 12, name=f"{name} Knob"), translation=t.vec(0.0, -0.02, 0.0),
                       rotation=t.vec(1.5708, 0.0, 0.0))
    return t.switch("GEOMETRY", t.eq(handle_type, 0), t.switch("GEOMETRY", t.eq(handle_type, 2), bar, knob), None)


# -------------------------------------------------------------------------------------------- sideboard

SIDEBOARD_PARAMS = [
    P("Width", "float", (0.6, 2.2), 1.3, group="Body"),
    P("Height", "float", (0.5, 1.2), 0.8, group="Body"),
    P("Depth", "float", (0.3, 0.6), 0.42, group="Body"),
    P("Board Thickness", "float", (0.012, 0.03), 0.018, group="Body"),
    P("Top Thickness", "float", (0.015, 0.05), 0.025, group="Top"),
    P("Top Overhang", "float", (0.0, 0.06), 0.02, group="Top"),
    P("Base Type", "int", (0, 1), 0, group="Base", labels=("plinth", "legs")),
    P("Base Height", "float", (0.02, 0.30), 0.08, group="Base"),
    P("Plinth Inset", "float", (0.0, 0.05), 0.02, requires=[["Base Type", 0]], group="Base"),
    P("Leg Size", "float", (0.025, 0.06), 0.04, requires=[["Base Type", 1]], group="Base"),
    P("Columns", "int", (1, 4), 2, group="Fronts"),
    P("Has Drawers", "bool", None, True, group="Fronts"),
    P("Drawer Rows", "int", (1, 3), 1, requires=["Has Drawers"], group="Fronts"),
    P("Drawer Fraction", "float", (0.15, 0.6), 0.3, requires=["Has Drawers"], group="Fronts"),
    P("Has Doors", "bool", None, True, group="Fronts"),
    P("Handle Type", "int", (0, 2), 1, group="Handles", labels=("none", "bar", "knob")),
]


def sideboard() -> tuple[dict, list]:
    t = Tree("Sideboard")
    p = add_inputs(t, SIDEBOARD_PARAMS)
    w, h, d, th = p["Width"], p["Height"], p["Depth"], p["Board Thickness"]
    tt, ov = p["Top Thickness"], p["Top Overhang"]
    legs_base = t.eq(p["Base Type"], 1)
    z0 = p["Base Height"]
    zt = h - tt
    hb = zt - z0
    wi = w - th * 2.0
    hi = hb - th
    top = t.transform(t.cube(t.vec(w + ov * 2.0, d + ov, tt), name="Top Board"),
                      translation=t.vec(0.0, -(ov / 2.0), zt + tt / 2.0))
    sides = t.instance(t.line(2, t.vec(-(w / 2.0 - th / 2.0), 0.0, z0 + hb / 2.0), t.vec(w - th, 0.0, 0.0),
                              name="Side Points"), t.cube(t.vec(th, d, hb), name="Side Panel"))
    bottom = t.transform(t.cube(t.vec(wi, d, th), name="Bottom Panel"), translation=t.vec(0.0, 0.0, z0 + th / 2.0))
    back = t.transform(t.cube(t.vec(wi, th, hi), name="Back Panel"),
                       translation=t.vec(0.0, d / 2.0 - th / 2.0, z0 + th + hi / 2.0))
    # fronts: Columns across; Drawer Rows of drawers in the top Drawer Fraction, doors (or an open bay
    # with a shelf) below
    cols = p["Columns"]
    cw = wi / cols
    yf = -(d / 2.0 - 0.01)
    dz = t.switch("FLOAT", p["Has Drawers"], 0.0, hi * p["Drawer Fraction"])
    rows = p["Drawer Rows"]
    rh = dz / rows
    drawer = t.join(t.cube(t.vec(cw - 0.004, 0.02, rh - 0.004), name="Drawer Front"),
                    handle_geometry(t, p["Handle Type"], "Drawer Handle"))
    row = t.instance(t.line(cols, t.vec(cw / 2.0 - wi / 2.0, 0.0, 0.0), t.vec(cw, 0.0, 0.0), name="Drawer Columns"),
                     drawer)
    drawers = t.instance(t.line(rows, t.vec(0.0, yf, zt - rh / 2.0), t.vec(0.0, 0.0, -rh), name="Drawer Rows"), row)
    drawers = t.switch("GEOMETRY", p["Has Drawers"], None, drawers)
    dh = hi - dz
    handle = t.transform(handle_geometry(t, p["Handle Type"], "Door Handle"), translation=t.vec(0.0, 0.0, dh / 2.0 - 0.06))
    door = t.join(t.cube(t.vec(cw - 0.004, 0.02, dh - 0.004), name="Door"), handle)
    doors = t.instance(t.line(cols, t.vec(cw / 2.0 - wi / 2.0, yf, z0 + th + dh / 2.0), t.vec(cw, 0.0, 0.0),
                              name="Door Points"), door)
    shelf = t.transform(t.cube(t.vec(wi, d - th, th), name="Shelf"), translation=t.vec(0.0, th / 2.0, z0 + th + dh / 2.0))
    lower = t.switch("GEOMETRY", p["Has Doors"], shelf, doors)
    inset = p["Plinth Inset"]
    plinth = t.transform(t.cube(t.vec(w - inset * 2.0, d - inset, z0), name="Plinth"),
                         translation=t.vec(0.0, inset / 2.0, z0 / 2.0))
    ls = p["Leg Size"]
    leg = t.transform(t.cube(t.vec(ls, ls, z0), name="Leg"), translation=t.vec(0.0, 0.0, z0 / 2.0))
    legs = t.instance(t.grid(w - ls, d - ls, 2, 2, name="Leg Corners"), leg)
    base = t.switch("GEOMETRY", legs_base, plinth, legs)
    t.output(t.realize(t.join(top, sides, bottom, back, drawers, lower, base)))
    return graph(t), SIDEBOARD_PARAMS


# ------------------------------------------------------------------------------------------------- desk

DESK_PARAMS = [
    P("Width", "float", (0.8, 1.8), 1.2, group="Top"),
    P("Depth", "float", (0.45, 0.85), 0.6, group="Top"),
    P("Height", "float", (0.65, 0.80), 0.74, group="Top"),
    P("Top Thickness", "float", (0.018, 0.05), 0.03, group="Top"),
    P("Support Type", "int", (0, 1), 0, group="Supports", labels=("legs", "panels")),
    P("Leg Size", "float", (0.03, 0.07), 0.05, requires=[["Support Type", 0]], group="Supports"),
    P("Has Modesty Panel", "bool", None, False, group="Supports"),
    P("Modesty Height", "float", (0.15, 0.45), 0.3, requires=["Has Modesty Panel"], group="Supports"),
    P("Has Pedestal", "bool", None, True, group="Pedestal"),
    P("Pedestal Side", "int", (0, 1), 0, requires=["Has Pedestal"], group="Pedestal", labels=("right", "left")),
    P("Pedestal Width", "float", (0.3, 0.5), 0.4, requires=["Has Pedestal"], group="Pedestal"),
    P("Drawer Count", "int", (1, 4), 3, requires=["Has Pedestal"], group="Pedestal"),
    P("Handle Type", "int", (0, 2), 1, requires=["Has Pedestal"], group="Pedestal", labels=("none", "bar", "knob")),
]


def desk() -> tuple[dict, list]:
    t = Tree("Desk")
    p = add_inputs(t, DESK_PARAMS)
    w, d, h, tt = p["Width"], p["Depth"], p["Height"], p["Top Thickness"]
    lh = h - tt
    top = t.transform(t.cube(t.vec(w, d, tt), name="Top Board"), translation=t.vec(0.0, 0.0, h - tt / 2.0))
    panels = t.eq(p["Support Type"], 1)
    s = p["Leg Size"]
    u = t.switch("FLOAT", panels, s, 0.025)  # the support's width along x
    leg_pair = t.instance(t.line(2, t.vec(0.0, -(d - s) / 2.0, lh / 2.0), t.vec(0.0, d - s, 0.0), name="Leg Points"),
                          t.cube(t.vec(s, s, lh), name="Leg"))
    panel = t.transform(t.cube(t.vec(0.025, d, lh), name="Side Panel"), translation=t.vec(0.0, 0.0, lh / 2.0))
    support = t.switch("GEOMETRY", panels, leg_pair, panel)
    ps = t.switch("FLOAT", t.eq(p["Pedestal Side"], 1), 1.0, -1.0)  # +1: pedestal on the right (+X)
    x_side = w / 2.0 - u / 2.0
    free = t.transform(support, translation=t.vec(-(ps * x_side), 0.0, 0.0))
    other = t.transform(support, translation=t.vec(ps * x_side, 0.0, 0.0))
    supports = t.join(free, t.switch("GEOMETRY", p["Has Pedestal"], other, None))
    mh = p["Modesty Height"]
    modesty = t.transform(t.cube(t.vec(w - u * 2.0, 0.018, mh), name="Modesty Panel"),
                          translation=t.vec(0.0, d / 2.0 - 0.05, lh - mh / 2.0))
    modesty = t.switch("GEOMETRY", p["Has Modesty Panel"], None, modesty)
    pw, n = p["Pedestal Width"], p["Drawer Count"]
    px = ps * (w / 2.0 - pw / 2.0)
    body = t.transform(t.cube(t.vec(pw, d - 0.04, lh), name="Pedestal Body"), translation=t.vec(px, 0.02, lh / 2.0))
    dh = (lh - 0.05) / n
    drawer = t.join(t.cube(t.vec(pw - 0.006, 0.02, dh - 0.006), name="Drawer Front"),
                    handle_geometry(t, p["Handle Type"], "Drawer Handle"))
    drawers = t.instance(t.line(n, t.vec(px, 0.03 - d / 2.0 - 0.01, 0.05 + dh / 2.0), t.vec(0.0, 0.0, dh),
                                name="Drawer Points"), drawer)
    pedestal = t.switch("GEOMETRY", p["Has Pedestal"], None, t.join(body, drawers))
    t.output(t.realize(t.join(top, supports, modesty, pedestal)))
    return graph(t), DESK_PARAMS


# ------------------------------------------------------------------------------------------------- sofa

SOFA_PARAMS = [
    P("Width", "float", (1.2, 2.6), 1.9, group="Body"),
    P("Depth", "float", (0.7, 1.05), 0.88, group="Body"),
    P("Seat Height", "float", (0.35, 0.50), 0.43, group="Seat"),
    P("Seat Cushions", "int", (1, 4), 3, group="Seat"),
    P("Cushion Thickness", "float", (0.06, 0.16), 0.12, group="Seat"),
    P("Back Height", "float", (0.2, 0.55), 0.4, group="Back"),
    P("Back Thickness", "float", (0.1, 0.3), 0.18, group="Back"),
    P("Has Arms", "bool", None, True, group="Arms"),
    P("Arm Width", "float", (0.08, 0.3), 0.16, requires=["Has Arms"], group="Arms"),
    P("Arm Height", "float", (0.08, 0.3), 0.2, requires=["Has Arms"], group="Arms"),
    P("Has Legs", "bool", None, True, group="Legs"),
    P("Leg Height", "float", (0.03, 0.15), 0.1, requires=["Has Legs"], group="Legs"),
]


def sofa() -> tuple[dict, list]:
    t = Tree("Sofa")
    p = add_inputs(t, SOFA_PARAMS)
    w, d, sh, ct = p["Width"], p["Depth"], p["Seat Height"], p["Cushion Thickness"]
    bh, bt = p["Back Height"], p["Back Thickness"]
    z0 = t.switch("FLOAT", p["Has Legs"], 0.0, p["Leg Height"])
    aw = t.switch("FLOAT", p["Has Arms"], 0.0, p["Arm Width"])
    wi = w - aw * 2.0
    hb = sh - ct - z0
    base = t.transform(t.cube(t.vec(w, d, hb), name="Base"), translation=t.vec(0.0, 0.0, z0 + hb / 2.0))
    back_h = sh + bh - z0
    back = t.transform(t.cube(t.vec(wi, bt, back_h), name="Back"), translation=t.vec(0.0, d / 2.0 - bt / 2.0, z0 + back_h / 2.0))
    n = p["Seat Cushions"]
    cw = wi / n
    cushion = t.cube(t.vec(cw - 0.01, d - bt - 0.01, ct), name="Cushion")
    cushions = t.instance(t.line(n, t.vec(cw / 2.0 - wi / 2.0, -(bt / 2.0), sh - ct / 2.0), t.vec(cw, 0.0, 0.0),
                                 name="Cushion Points"), cushion)
    arm_h = sh + p["Arm Height"] - z0
    arms = t.instance(t.line(2, t.vec(-(w / 2.0 - aw / 2.0), 0.0, z0 + arm_h / 2.0), t.vec(w - aw, 0.0, 0.0),
                             name="Arm Points"), t.cube(t.vec(aw, d, arm_h), name="Arm"))
    arms = t.switch("GEOMETRY", p["Has Arms"], None, arms)
    lh = p["Leg Height"]
    leg = t.transform(t.cube(t.vec(0.04, 0.04, lh), name="Leg"), translation=t.vec(0.0, 0.0, lh / 2.0))
    legs = t.switch("GEOMETRY", p["Has Legs"], None, t.instance(t.grid(w - 0.1, d - 0.1, 2, 2, name="Leg Corners"), leg))
    t.output(t.realize(t.join(base, back, cushions, arms, legs)))
    return graph(t), SOFA_PARAMS


# -------------------------------------------------------------------------------------------------- bed

BED_PARAMS = [
    P("Width", "float", (0.9, 2.0), 1.4, group="Frame"),
    P("Length", "float", (1.9, 2.2), 2.05, group="Frame"),
    P("Frame Height", "float", (0.25, 0.5), 0.32, group="Frame"),
    P("Rail Height", "float", (0.06, 0.2), 0.14, group="Frame"),
    P("Leg Size", "float", (0.04, 0.1), 0.06, group="Frame"),
    P("Mattress Thickness", "float", (0.1, 0.3), 0.2, group="Mattress"),
    P("Board Thickness", "float", (0.02, 0.08), 0.04, group="Boards"),
    P("Has Headboard", "bool", None, True, group="Boards"),
    P("Headboard Height", "float", (0.2, 0.9), 0.55, requires=["Has Headboard"], group="Boards"),
    P("Has Footboard", "bool", None, False, group="Boards"),
    P("Footboard Height", "float", (0.05, 0.5), 0.15, requires=["Has Footboard"], group="Boards"),
]


def bed() -> tuple[dict, list]:
    t = Tree("Bed")
    p = add_inputs(t, BED_PARAMS)
    w, ln, fh, rh, ls = p["Width"], p["Length"], p["Frame Height"], p["Rail Height"], p["Leg Size"]
    mt, bt = p["Mattress Thickness"], p["Board Thickness"]
    frame = t.transform(t.cube(t.vec(w, ln, rh), name="Frame"), translation=t.vec(0.0, 0.0, fh - rh / 2.0))
    lh = fh - rh
    leg = t.transform(t.cube(t.vec(ls, ls, lh), name="Leg"), translation=t.vec(0.0, 0.0, lh / 2.0))
    legs = t.instance(t.grid(w - ls, ln - ls, 2, 2, name="Leg Corners"), leg)
    mattress = t.transform(t.cube(t.vec(w - 0.04, ln - 0.04, mt), name="Mattress"), translation=t.vec(0.0, 0.0, fh + mt / 2.0))
    hh = fh + p["Headboard Height"]
    head = t.transform(t.cube(t.vec(w, bt, hh), name="Headboard"), translation=t.vec(0.0, ln / 2.0 + bt / 2.0, hh / 2.0))
    fb = fh + p["Footboard Height"]
    foot = t.transform(t.cube(t.vec(w, bt, fb), name="Footboard"), translation=t.vec(0.0, -(ln / 2.0 + bt / 2.0), fb / 2.0))
    head = t.switch("GEOMETRY", p["Has Headboard"], None, head)
    foot = t.switch("GEOMETRY", p["Has Footboard"], None, foot)
    t.output(t.realize(t.join(frame, legs, mattress, head, foot)))
    return graph(t), BED_PARAMS


LIBRARY = {
    "chair": ("seating", "chair: square/round/pedestal legs, stretchers, solid or slatted back, arms"),
    "stool": ("seating", "stool: square or round seat, four square/round (splayable) legs with an apron and stretchers, "
                        "or a pedestal"),
    "sofa": ("seating", "sofa: base, seat cushions, back, optional arms and legs"),
    "table": ("table", "table: rectangular/oval top, square/round/trestle legs, apron, shelf"),
    "desk": ("table", "desk: top on legs or side panels, drawer pedestal (right/left) with handles, modesty panel"),
    "cabinet": ("storage", "cabinet: shelves (with doors) or a stack of drawers with handles, back, legs"),
    "sideboard": ("storage", "sideboard: overhanging top, plinth or legs, rows of drawers above doors, handles"),
    "bookshelf": ("storage", "bookshelf: shelf and divider counts, kick plate, back, optional overhanging top"),
    "bed": ("bed", "bed: frame on legs, mattress, headboard, footboard"),
}
"""Program -> (category, one-line description), written into each params.json (``category``,
``description``; ``splat programs`` and ``--category`` read them)."""

FACADE = {
    "cabinet": ["Interior", "Has Doors", "Drawer Count", "Top Drawer Ratio", "Handle Height"],
    "sideboard": ["Columns", "Has Drawers", "Drawer Rows", "Drawer Fraction", "Has Doors", "Handle Type"],
}
"""Program -> the parameters that lay out its front (-Y) face: a depth scan sees a flat front whatever
they are, the photos see handles and the gaps between fronts (``facade`` in params.json;
splat.train.facade)."""

PROGRAMS = {"chair": chair, "table": table, "cabinet": cabinet, "bookshelf": bookshelf, "stool": stool,
            "sideboard": sideboard, "desk": desk, "sofa": sofa, "bed": bed}


def main() -> None:
    sys.path.insert(0, str(HERE.parents[1]))  # the repository root, when run as a script
    from splat.io import write_json_atomic

    for name, build in PROGRAMS.items():
        g, params = build()
        write_json_atomic(HERE / name / "graph.json", g, indent=1)
        category, description = LIBRARY[name]
        meta = {"format": "splat.params/1", "category": category, "description": description}
        if name in FACADE:
            meta["facade"] = FACADE[name]
        write_json_atomic(HERE / name / "params.json", {**meta, "params": params}, indent=1)
        print(f"wrote splat/programs/{name}: {sum(len(t['nodes']) for t in g['trees'].values())} nodes")


if __name__ == "__main__":
    main()
