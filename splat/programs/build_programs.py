"""Write the project's own shape programs: programs/<name>/{graph.json, params.json}.

Run ``python programs/build_programs.py`` after changing a program; the JSON is committed and loads
without this script (or bpy). Conventions: metres, +Z up, objects stand on z = 0 centred on the origin
in x/y, the front faces -Y. Defaults are plausible furniture deliberately away from the shipped scenes' ground truth
(assets/scenes/*/transforms.json "gt_params"), so that fitting has to move them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from builder import Tree, graph  # noqa: E402

HERE = Path(__file__).resolve().parent


def P(name, type_, rng=None, default=None, requires=(), group=None, labels=None) -> dict:
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
    front = t.cube(t.vec(wi - 0.006, 0.02, dstep - 0.006), name="Drawer Front")
    handle = t.transform(t.cube(t.vec(0.12, 0.025, 0.02), name="Drawer Handle"), translation=t.vec(0.0, -0.0225, 0.0))
    drawers = t.instance(t.line(m - 1.0, t.vec(0.0, yf, z0 + th + dstep / 2.0), t.vec(0.0, 0.0, dstep),
                                name="Drawer Points"), t.join(front, handle))
    top_front = t.cube(t.vec(wi - 0.006, 0.02, dstep * r - 0.006), name="Top Drawer Front")
    top_handle = t.transform(t.cube(t.vec(0.12, 0.025, 0.02), name="Top Drawer Handle"),
                             translation=t.vec(0.0, -0.0225, 0.0))
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
    P("Depth", "float", (0.2, 0.45), 0.3, group="Body"),
    P("Board Thickness", "float", (0.015, 0.035), 0.022, group="Body"),
    P("Has Back", "bool", None, True, group="Body"),
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


PROGRAMS = {"chair": chair, "table": table, "cabinet": cabinet, "bookshelf": bookshelf}


def main() -> None:
    sys.path.insert(0, str(HERE.parents[1]))  # the repository root, when run as a script
    from splat.io import write_json_atomic

    for name, build in PROGRAMS.items():
        g, params = build()
        write_json_atomic(HERE / name / "graph.json", g, indent=1)
        write_json_atomic(HERE / name / "params.json", {"format": "splat.params/1", "params": params}, indent=1)
        print(f"wrote splat/programs/{name}: {sum(len(t['nodes']) for t in g['trees'].values())} nodes")


if __name__ == "__main__":
    main()
