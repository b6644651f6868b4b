"""Procedural materials (wood, fabric, painted) for rendered program objects, and their seeded choice.

The choice (:func:`choose_part_materials`) is pure Python and recorded in the scene manifest; building
the Blender node trees (:func:`build_material`) needs bpy. Textures use object-space coordinates, so
generated meshes need no UVs.

Convention: colours are linear-light RGB in [0, 1] (Blender's shader space), not sRGB.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MATERIAL_KINDS = ("wood", "fabric", "painted")

# Linear-light palettes (measured-ish albedos of real finishes).
_WOOD = {  # (dark grain, light grain)
    "oak": ((0.30, 0.16, 0.06), (0.55, 0.35, 0.16)),
    "walnut": ((0.08, 0.035, 0.015), (0.20, 0.10, 0.045)),
    "pine": ((0.45, 0.27, 0.10), (0.70, 0.50, 0.25)),
    "cherry": ((0.22, 0.07, 0.03), (0.42, 0.16, 0.07)),
}
_FABRIC = {
    "charcoal": (0.05, 0.05, 0.055),
    "beige": (0.45, 0.38, 0.27),
    "navy": (0.03, 0.05, 0.16),
    "olive": (0.16, 0.18, 0.06),
    "rust": (0.40, 0.10, 0.04),
}
_PAINT = {
    "white": (0.75, 0.74, 0.70),
    "black": (0.02, 0.02, 0.02),
    "sage": (0.25, 0.33, 0.22),
    "teal": (0.03, 0.20, 0.22),
    "mustard": (0.60, 0.40, 0.05),
}


@dataclass(frozen=True)
class PartMaterial:
    """One material: a finish kind and its parameters (recorded in the manifest)."""

    kind: str
    """One of MATERIAL_KINDS."""
    name: str
    """Palette entry (``oak``, ``navy``, ...)."""
    color: tuple[float, float, float]
    """Main linear base colour."""
    color2: tuple[float, float, float]
    """Second colour (wood: light grain; fabric/painted: a slight variation of ``color``)."""
    texture_scale: float
    """Object-space frequency of the texture (1/m)."""

    def to_json(self) -> dict:
        return asdict(self)


def _make(kind: str, rng: np.random.Generator) -> PartMaterial:
    if kind == "wood":
        name = str(rng.choice(sorted(_WOOD)))
        dark, light = _WOOD[name]
        return PartMaterial("wood", name, dark, light, float(rng.uniform(3.0, 5.0)))
    table = _FABRIC if kind == "fabric" else _PAINT
    name = str(rng.choice(sorted(table)))
    c = np.asarray(table[name])
    c2 = np.clip(c * (0.8 if kind == "fabric" else 0.93), 0.0, 1.0)
    scale = float(rng.uniform(150.0, 250.0)) if kind == "fabric" else float(rng.uniform(20.0, 40.0))
    return PartMaterial(kind, name, tuple(float(x) for x in c), tuple(float(x) for x in c2), scale)


_UPHOLSTERY_WORDS = ("seat", "cushion", "upholster")
_PANEL_WORDS = ("top", "door", "drawer", "front", "tabletop")


def part_role(key: str) -> str:
    """``"upholstery"`` (seats, cushions), ``"panel"`` (tops, doors, drawer fronts) or ``"frame"``
    (everything else: legs, rails, boards, stretchers), from the words of a part key (node names)."""
    words = key.lower()
    if any(w in words for w in _UPHOLSTERY_WORDS):
        return "upholstery"
    if any(w in words for w in _PANEL_WORDS):
        return "panel"
    return "frame"


def choose_part_materials(part_keys: list[str], rng: np.random.Generator) -> list[PartMaterial]:
    """Pick a realistic finish per part from its role (:func:`part_role`).

    The frame is wood (60 %) or painted; panels (tops, doors, drawer fronts) match the frame or take a
    contrasting wood/paint; upholstery (seats, cushions) is fabric (60 %) or matches the panels. Parts
    with the same key (copies of one primitive, e.g. the four legs) always share a material; so do all
    parts of one role.

    Args:
        part_keys: [P] a key per part (``tree/node/kind/topology``); equal keys = copies.
        rng: the only randomness used (a fixed number of draws, whatever the parts).
    Returns:
        [P] materials, one per part.
    """
    u = rng.random(4)
    frame = _make("wood" if u[0] < 0.6 else "painted", rng)
    contrast = _make("painted" if frame.kind == "wood" else "wood", rng)
    panel = frame if u[1] < 0.5 else contrast
    fabric = _make("fabric", rng)
    upholstery = fabric if u[2] < 0.6 else panel
    by_role = {"frame": frame, "panel": panel, "upholstery": upholstery}
    return [by_role[part_role(k)] for k in part_keys]


def build_material(bpy, mat: PartMaterial, name: str):
    """Create a Blender material with a Principled BSDF driven by a procedural texture; returns it."""
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    nt = m.node_tree
    nodes, links = nt.nodes, nt.links
    bsdf = nodes["Principled BSDF"]
    coord = nodes.new("ShaderNodeTexCoord")
    mapping = nodes.new("ShaderNodeMapping")
    mapping.inputs["Scale"].default_value = (mat.texture_scale,) * 3
    links.new(coord.outputs["Object"], mapping.inputs["Vector"])
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (*mat.color, 1.0)
    ramp.color_ramp.elements[1].color = (*mat.color2, 1.0)
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    if mat.kind == "wood":
        # Grain: bands along object X (the part's long axis, see make_scene.part_frame; period
        # 1/texture_scale across), the noise wobble stretched 5x along X so it reads as long fibres.
        mapping.inputs["Scale"].default_value = (0.2 * mat.texture_scale, mat.texture_scale, mat.texture_scale)
        wave = nodes.new("ShaderNodeTexWave")
        wave.wave_type = "BANDS"
        wave.bands_direction = "Y"
        wave.inputs["Scale"].default_value = 1.0
        wave.inputs["Distortion"].default_value = 10.0
        wave.inputs["Detail"].default_value = 4.0
        wave.inputs["Detail Scale"].default_value = 3.0
        ramp.color_ramp.elements[1].position = 0.45  # thin dark lines on a lighter ground
        links.new(mapping.outputs["Vector"], wave.inputs["Vector"])
        links.new(wave.outputs["Fac"], ramp.inputs["Fac"])
        bsdf.inputs["Roughness"].default_value = 0.55
    else:
        noise = nodes.new("ShaderNodeTexNoise")
        noise.inputs["Scale"].default_value = 1.0
        noise.inputs["Detail"].default_value = 4.0 if mat.kind == "fabric" else 1.0
        links.new(mapping.outputs["Vector"], noise.inputs["Vector"])
        links.new(noise.outputs["Fac"], ramp.inputs["Fac"])
        if mat.kind == "fabric":
            bsdf.inputs["Roughness"].default_value = 0.95
            bsdf.inputs["Sheen Weight"].default_value = 0.6
        else:
            bsdf.inputs["Roughness"].default_value = 0.35
            bsdf.inputs["Coat Weight"].default_value = 0.2
    return m
