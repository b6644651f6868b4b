"""The room around a capture-like scene's object: a textured floor, walls, and clutter on the floor.

The layout (:func:`plan_walls`, :func:`plan_clutter`) is numpy (programs are evaluated with torch) and is
recorded in the scene's ground truth; :func:`build_room` turns it into Blender objects (needs bpy).

Convention: Blender world (right-handed, +Z up, metres), floor z = 0, the object's footprint is the
axis-aligned rectangle ``object_lo[:2]``..``object_hi[:2]``. Every clutter item stands on the floor with
its bounding circle (``centre``, ``radius``) at least ``gap`` from that rectangle, from the other items
and inside the walls, so the object stays a separate cluster in a fused scan.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from splat.blender.make_scene import ObjectMesh, program_mesh
from splat.blender.scene_materials import PartMaterial, build_material, choose_part_materials

CLUTTER_KINDS = ("box", "cylinder", "program")

# Linear-light finishes of a room (plaster walls; floor planks and tiles: (colour 1, colour 2, joints)).
_WALL_PAINT = {"white": (0.72, 0.71, 0.68), "cream": (0.70, 0.62, 0.46), "grey": (0.40, 0.41, 0.42),
               "sage": (0.38, 0.45, 0.34), "blue": (0.30, 0.40, 0.55)}
_FLOOR = {
    "oak planks": ("planks", (0.36, 0.21, 0.09), (0.50, 0.32, 0.15), (0.10, 0.06, 0.03)),
    "dark planks": ("planks", (0.10, 0.05, 0.02), (0.17, 0.09, 0.04), (0.03, 0.02, 0.01)),
    "grey tiles": ("tiles", (0.30, 0.30, 0.29), (0.38, 0.37, 0.35), (0.12, 0.12, 0.12)),
    "terracotta tiles": ("tiles", (0.42, 0.14, 0.06), (0.50, 0.20, 0.09), (0.20, 0.18, 0.16)),
    "beige carpet": ("carpet", (0.40, 0.34, 0.25), (0.33, 0.27, 0.19), (0.30, 0.25, 0.18)),
}


class Wall(NamedTuple):
    """A vertical wall ``direction . (p - centre) = distance`` (xy), facing the object."""

    direction: np.ndarray  # [2] unit, from the object's centre towards the wall
    distance: float  # metres from the object's centre
    height: float
    mesh: ObjectMesh  # one quad (two triangles), world
    material: PartMaterial


class ClutterItem(NamedTuple):
    """One thing on the floor that is not the object."""

    kind: str  # "box" | "cylinder" | "program"
    program: str | None  # the library program (kind "program")
    params: dict | None  # its parameters (kind "program")
    centre: np.ndarray  # [2] xy of the bounding circle's centre
    radius: float  # bounding circle of the footprint (metres)
    height: float  # top above the floor (metres)
    yaw_deg: float
    mesh: ObjectMesh  # world

    def to_json(self) -> dict:
        return {"kind": self.kind, "program": self.program, "params": self.params,
                "centre": [float(x) for x in self.centre], "radius": self.radius, "height": self.height,
                "yaw_deg": self.yaw_deg}


class FloorMaterial(NamedTuple):
    name: str
    pattern: str  # "planks" | "tiles" | "carpet"
    color: tuple[float, float, float]
    color2: tuple[float, float, float]
    joint: tuple[float, float, float]
    scale: float  # pattern repeats per metre

    def to_json(self) -> dict:
        return self._asdict()


# --------------------------------------------------------------------------------------- meshes


def box_mesh(sx: float, sy: float, sz: float) -> ObjectMesh:
    """A box centred on x, y with its base on z = 0 (outward triangles)."""
    v = np.array([[x, y, z] for x in (-sx / 2, sx / 2) for y in (-sy / 2, sy / 2) for z in (0.0, sz)])
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], dtype=np.int64)
    return ObjectMesh(v, f, np.zeros(len(f), np.int64), ["box"])


def cylinder_mesh(radius: float, height: float, segments: int = 32) -> ObjectMesh:
    """A closed cylinder on z = 0 around the z axis."""
    a = np.linspace(0.0, 2.0 * math.pi, segments, endpoint=False)
    ring = np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1)
    v = np.concatenate([np.c_[ring, np.zeros(segments)], np.c_[ring, np.full(segments, height)],
                        [[0.0, 0.0, 0.0], [0.0, 0.0, height]]])
    i = np.arange(segments)
    j = (i + 1) % segments
    b, t = 2 * segments, 2 * segments + 1
    f = np.concatenate([np.stack([i, j, j + segments], 1), np.stack([i, j + segments, i + segments], 1),
                        np.stack([np.full(segments, b), j, i], 1),
                        np.stack([np.full(segments, t), i + segments, j + segments], 1)]).astype(np.int64)
    return ObjectMesh(v, f, np.zeros(len(f), np.int64), ["cylinder"])


def _placed(mesh: ObjectMesh, centre_xy: np.ndarray, yaw: float) -> ObjectMesh:
    c, s = math.cos(yaw), math.sin(yaw)
    r = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return mesh._replace(verts=mesh.verts @ r.T + np.array([centre_xy[0], centre_xy[1], 0.0]))


def rect_circle_gap(lo: np.ndarray, hi: np.ndarray, centre: np.ndarray, radius: float) -> float:
    """Distance between an xy rectangle ``lo``..``hi`` [2] and a circle (negative: they overlap)."""
    d = np.maximum(np.maximum(lo - centre, centre - hi), 0.0)
    return float(np.linalg.norm(d)) - radius


# --------------------------------------------------------------------------------------- layout


def plan_walls(centre: np.ndarray, distance: float, n_walls: int, rng: np.random.Generator,
               height: float = 2.6) -> list[Wall]:
    """``n_walls`` (0-2) walls at ``distance`` from the object's centre [2]; two meet at a right angle."""
    az = rng.uniform(0.0, 2.0 * math.pi)
    name = str(rng.choice(sorted(_WALL_PAINT)))
    c = np.asarray(_WALL_PAINT[name])
    paint = PartMaterial("painted", name, tuple(float(x) for x in c), tuple(float(x) for x in c * 0.95), 3.0)
    walls = []
    for k in range(n_walls):
        u = np.array([math.cos(az + k * math.pi / 2), math.sin(az + k * math.pi / 2)])
        t = np.array([-u[1], u[0]])
        half = distance + 1.0
        base = centre + distance * u
        quad = [base - half * t, base + half * t]
        v = np.array([[*quad[0], 0.0], [*quad[1], 0.0], [*quad[1], height], [*quad[0], height]])
        f = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64)
        walls.append(Wall(u, float(distance), height, ObjectMesh(v, f, np.zeros(2, np.int64), [f"wall_{k}"]), paint))
    return walls


def plan_clutter(object_lo: np.ndarray, object_hi: np.ndarray, n_items: int, programs: tuple[str, ...],
                 loop_radius: float, walls: list[Wall], rng: np.random.Generator, *, gap: float = 0.25,
                 room_radius: float | None = None) -> list[ClutterItem]:
    """Place ``n_items`` clutter items on the floor around the object.

    Boxes and cylinders (10-50 cm wide, 10-60 cm tall, below every camera) stand anywhere from ``gap``
    off the object's footprint to ``loop_radius`` + 1 m, so some hide part of the object in some views;
    library programs (``programs``, random valid parameters; a third of the items when any are given)
    stand outside the cameras' loop (``loop_radius``: the largest horizontal camera distance), where no
    camera can be inside them. Items keep ``gap`` from the object and 5 cm from each other and from the
    walls; an item that finds no free place in 200 tries is left out.
    """
    lo, hi = np.asarray(object_lo, float)[:2], np.asarray(object_hi, float)[:2]
    centre = (lo + hi) / 2.0
    obj_r = float(np.linalg.norm(hi - lo) / 2.0)
    items: list[ClutterItem] = []
    for _ in range(n_items):
        kind = "program" if programs and rng.random() < 1.0 / 3.0 else str(rng.choice(["box", "cylinder"]))
        yaw = float(rng.uniform(0.0, 2.0 * math.pi))
        prog, params = None, None
        if kind == "box":
            sx, sy, sz = rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.6)
            local = box_mesh(sx, sy, sz)
        elif kind == "cylinder":
            local = cylinder_mesh(rng.uniform(0.05, 0.25), rng.uniform(0.1, 0.6))
        else:
            prog = str(rng.choice(list(programs)))
            obj = program_mesh(prog, None, rng)
            local, params = obj.mesh, obj.params
            mid = (local.verts.min(0) + local.verts.max(0)) / 2.0
            local = local._replace(verts=local.verts - np.array([mid[0], mid[1], local.verts[:, 2].min()]))
        radius = float(np.linalg.norm(local.verts[:, :2], axis=1).max())
        height = float(local.verts[:, 2].max())
        if kind == "program":
            r_min, r_max = loop_radius + 0.3 + radius, loop_radius + 1.0 + radius
        else:
            r_min, r_max = obj_r * 0.5, loop_radius + 1.0
        if room_radius is not None:
            r_max = min(r_max, room_radius - radius)
        for _try in range(200):
            a = rng.uniform(0.0, 2.0 * math.pi)
            r = rng.uniform(r_min, max(r_min, r_max))
            c = centre + r * np.array([math.cos(a), math.sin(a)])
            if rect_circle_gap(lo, hi, c, radius) < gap:
                continue
            if any(np.linalg.norm(c - it.centre) < radius + it.radius + 0.05 for it in items):
                continue
            if any(float(w.direction @ (c - centre)) + radius > w.distance - 0.05 for w in walls):
                continue
            items.append(ClutterItem(kind, prog, params, c, radius, height, math.degrees(yaw),
                                     _placed(local, c, yaw)))
            break
    return items


def choose_floor(rng: np.random.Generator) -> FloorMaterial:
    name = str(rng.choice(sorted(_FLOOR)))
    pattern, c1, c2, joint = _FLOOR[name]
    scale = {"planks": 1.0, "tiles": 2.0, "carpet": 30.0}[pattern] * float(rng.uniform(0.8, 1.25))
    return FloorMaterial(name, pattern, c1, c2, joint, scale)


# ------------------------------------------------------------------------------------------- bpy


def _mesh_object(bpy, mesh: ObjectMesh, name: str, material) -> object:
    me = bpy.data.meshes.new(name)
    me.from_pydata(mesh.verts.tolist(), [], mesh.faces.tolist())
    me.validate(clean_customdata=False)
    me.materials.append(material)
    me.update()
    obj = bpy.data.objects.new(name, me)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def build_floor_material(bpy, fm: FloorMaterial, name: str = "floor"):
    """A Principled BSDF over a brick pattern (planks, tiles) or fine noise (carpet), with a noise tint."""
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    nodes, links = m.node_tree.nodes, m.node_tree.links
    bsdf = nodes["Principled BSDF"]
    coord = nodes.new("ShaderNodeTexCoord")
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 4.0 if fm.pattern != "carpet" else fm.scale
    noise.inputs["Detail"].default_value = 6.0
    links.new(coord.outputs["Object"], noise.inputs["Vector"])
    mix = nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.blend_type = "MULTIPLY"
    mix.inputs["Factor"].default_value = 0.35
    links.new(noise.outputs["Color"], mix.inputs["B"])
    if fm.pattern == "carpet":
        ramp = nodes.new("ShaderNodeValToRGB")
        ramp.color_ramp.elements[0].color = (*fm.color, 1.0)
        ramp.color_ramp.elements[1].color = (*fm.color2, 1.0)
        links.new(noise.outputs["Fac"], ramp.inputs["Fac"])
        links.new(ramp.outputs["Color"], mix.inputs["A"])
        bsdf.inputs["Roughness"].default_value = 0.95
    else:
        brick = nodes.new("ShaderNodeTexBrick")
        brick.inputs["Color1"].default_value = (*fm.color, 1.0)
        brick.inputs["Color2"].default_value = (*fm.color2, 1.0)
        brick.inputs["Mortar"].default_value = (*fm.joint, 1.0)
        brick.inputs["Scale"].default_value = fm.scale
        if fm.pattern == "planks":
            brick.inputs["Brick Width"].default_value = 1.2
            brick.inputs["Row Height"].default_value = 0.15
            brick.inputs["Mortar Size"].default_value = 0.004
        else:
            brick.offset = 0.0
            brick.inputs["Brick Width"].default_value = 0.3
            brick.inputs["Row Height"].default_value = 0.3
            brick.inputs["Mortar Size"].default_value = 0.006
        links.new(coord.outputs["Object"], brick.inputs["Vector"])
        links.new(brick.outputs["Color"], mix.inputs["A"])
        bsdf.inputs["Roughness"].default_value = 0.5
    links.new(mix.outputs["Result"], bsdf.inputs["Base Color"])
    return m


def build_room(bpy, *, floor_size: float, floor_centre: np.ndarray, floor: FloorMaterial | None,
               walls: list[Wall], clutter: list[ClutterItem], rng: np.random.Generator) -> list[dict]:
    """Add the floor (a ``floor_size`` square; flat grey when ``floor`` is None), the walls and the clutter
    (seeded finishes from ``rng``); returns the clutter's material records."""
    from splat.blender.make_scene import add_object_mesh

    h = floor_size / 2.0
    cx, cy = float(floor_centre[0]), float(floor_centre[1])
    quad = ObjectMesh(np.array([[cx - h, cy - h, 0.0], [cx + h, cy - h, 0.0], [cx + h, cy + h, 0.0],
                                [cx - h, cy + h, 0.0]]), np.array([[0, 1, 2], [0, 2, 3]], np.int64),
                      np.zeros(2, np.int64), ["floor"])
    if floor is None:
        mat = build_material(bpy, PartMaterial("painted", "grey", (0.3, 0.3, 0.3), (0.28, 0.28, 0.28), 3.0), "floor")
    else:
        mat = build_floor_material(bpy, floor)
    _mesh_object(bpy, quad, "floor", mat)
    for k, w in enumerate(walls):
        _mesh_object(bpy, w.mesh, f"wall_{k}", build_material(bpy, w.material, f"wall_{k}"))
    records = []
    for item in clutter:
        mats = choose_part_materials(list(item.mesh.part_keys), rng)
        add_object_mesh(bpy, item.mesh, mats)
        records.append([m.to_json() for m in mats])
    return records
