"""A tiny synthetic scene for the trainer tests: a "stool" program rendered with our own rasterizer.

The program (made here, not shipped): a seat cube (Width x Width x 0.05 at Height), two copies of a leg
cube (0.04 x 0.04 x Height), and a back cube behind a GEOMETRY switch on "Has Back". Images are rendered
from procedural Gaussians with one colour per primitive over a white background; depth is the expected
depth where alpha > 0.5, masks are alpha > 0.5. Written through splat.data.write_scene.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

STOOL_PARAMS = {"Width": 0.5, "Height": 0.45, "Has Back": True}


def _link(a, sa, b, sb):
    return {"from_node": a, "from_socket": sa, "to_node": b, "to_socket": sb}


def stool_program_dict() -> dict:
    nodes = {
        "Group Input": {"type": "NodeGroupInput"},
        "Group Output": {"type": "NodeGroupOutput"},
        "SeatSize": {"type": "ShaderNodeCombineXYZ", "inputs": {"Z": 0.05}},
        "Seat": {"type": "GeometryNodeMeshCube"},
        "SeatPos": {"type": "ShaderNodeCombineXYZ"},
        "SeatT": {"type": "GeometryNodeTransform"},
        "LegSize": {"type": "ShaderNodeCombineXYZ", "inputs": {"X": 0.04, "Y": 0.04}},
        "Leg": {"type": "GeometryNodeMeshCube"},
        "HalfH": {"type": "ShaderNodeMath", "properties": {"operation": "MULTIPLY"}, "inputs": {"Value[1]": 0.5}},
        "LegOff": {"type": "ShaderNodeMath", "properties": {"operation": "MULTIPLY"}, "inputs": {"Value[1]": 0.35}},
        "LegOffN": {"type": "ShaderNodeMath", "properties": {"operation": "MULTIPLY"}, "inputs": {"Value[1]": -0.35}},
        "Leg1Pos": {"type": "ShaderNodeCombineXYZ"},
        "Leg2Pos": {"type": "ShaderNodeCombineXYZ"},
        "Leg1T": {"type": "GeometryNodeTransform"},
        "Leg2T": {"type": "GeometryNodeTransform"},
        "BackSize": {"type": "ShaderNodeCombineXYZ", "inputs": {"Y": 0.04, "Z": 0.3}},
        "Back": {"type": "GeometryNodeMeshCube"},
        "BackY": {"type": "ShaderNodeMath", "properties": {"operation": "MULTIPLY"}, "inputs": {"Value[1]": -0.5}},
        "BackZ": {"type": "ShaderNodeMath", "properties": {"operation": "ADD"}, "inputs": {"Value[1]": 0.15}},
        "BackPos": {"type": "ShaderNodeCombineXYZ"},
        "BackT": {"type": "GeometryNodeTransform"},
        "BackSwitch": {"type": "GeometryNodeSwitch", "properties": {"input_type": "GEOMETRY"}},
        "Join": {"type": "GeometryNodeJoinGeometry"},
    }
    links = [
        _link("Group Input", "Width", "SeatSize", "X"), _link("Group Input", "Width", "SeatSize", "Y"),
        _link("SeatSize", "Vector", "Seat", "Size"),
        _link("Group Input", "Height", "SeatPos", "Z"), _link("SeatPos", "Vector", "SeatT", "Translation"),
        _link("Seat", "Mesh", "SeatT", "Geometry"),
        _link("Group Input", "Height", "LegSize", "Z"), _link("LegSize", "Vector", "Leg", "Size"),
        _link("Group Input", "Height", "HalfH", "Value[0]"),
        _link("Group Input", "Width", "LegOff", "Value[0]"), _link("Group Input", "Width", "LegOffN", "Value[0]"),
        _link("LegOff", "Value", "Leg1Pos", "X"), _link("LegOff", "Value", "Leg1Pos", "Y"),
        _link("HalfH", "Value", "Leg1Pos", "Z"),
        _link("LegOffN", "Value", "Leg2Pos", "X"), _link("LegOffN", "Value", "Leg2Pos", "Y"),
        _link("HalfH", "Value", "Leg2Pos", "Z"),
        _link("Leg", "Mesh", "Leg1T", "Geometry"), _link("Leg1Pos", "Vector", "Leg1T", "Translation"),
        _link("Leg", "Mesh", "Leg2T", "Geometry"), _link("Leg2Pos", "Vector", "Leg2T", "Translation"),
        _link("Group Input", "Width", "BackSize", "X"), _link("BackSize", "Vector", "Back", "Size"),
        _link("Group Input", "Width", "BackY", "Value[0]"), _link("BackY", "Value", "BackPos", "Y"),
        _link("Group Input", "Height", "BackZ", "Value[0]"), _link("BackZ", "Value", "BackPos", "Z"),
        _link("Back", "Mesh", "BackT", "Geometry"), _link("BackPos", "Vector", "BackT", "Translation"),
        _link("Group Input", "Has Back", "BackSwitch", "Switch"), _link("BackT", "Geometry", "BackSwitch", "True"),
        _link("SeatT", "Geometry", "Join", "Geometry"), _link("Leg1T", "Geometry", "Join", "Geometry"),
        _link("Leg2T", "Geometry", "Join", "Geometry"), _link("BackSwitch", "Output", "Join", "Geometry"),
        _link("Join", "Geometry", "Group Output", "Geometry"),
    ]
    graph = {
        "format": "splat.geonodes/1",
        "main": "Stool",
        "trees": {"Stool": {
            "interface": {
                "inputs": [
                    {"name": "Width", "type": "FLOAT", "default": 0.45, "min": 0.3, "max": 0.7},
                    {"name": "Height", "type": "FLOAT", "default": 0.4, "min": 0.3, "max": 0.6},
                    {"name": "Has Back", "type": "BOOLEAN", "default": False},
                ],
                "outputs": [{"name": "Geometry", "type": "GEOMETRY"}],
            },
            "nodes": nodes,
            "links": links,
        }},
    }
    params = {"format": "splat.params/1", "params": [
        {"name": "Width", "type": "float", "range": [0.3, 0.7], "default": 0.45},
        {"name": "Height", "type": "float", "range": [0.3, 0.6], "default": 0.4},
        {"name": "Has Back", "type": "bool", "default": False},
    ]}
    return {"format": "splat.program/1", "name": "stool", "graph": graph, "params": params}


def _look_at_viewmat(eye, target):
    from splat.data import opengl_c2w_to_viewmat
    from splat.data.synthetic import look_at_c2w

    return opengl_c2w_to_viewmat(look_at_c2w(eye, target))


def make_stool_scene(root: Path, *, params=STOOL_PARAMS, n_train: int = 6, n_test: int = 2, size: int = 40,
                     background=(1.0, 1.0, 1.0), num_gaussians: int = 3000) -> Path:
    """Write the stool scene into ``root`` (program file ``stool.json`` beside transforms.json)."""
    from splat.data import Camera, intrinsics_matrix, write_scene
    from splat.maths import rgb_to_sh_dc
    from splat.gaussians import InitSettings, init_gaussians
    from splat.program import ShapeProgram
    from splat.render import RasterSettings, rasterize

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    program = ShapeProgram.from_dict(stool_program_dict())
    program.save(root / "stool.json")
    geo = program.evaluate(dict(params), dtype=torch.float64)
    model = init_gaussians(geo, InitSettings(num_init=num_gaussians, flatness=0.1, init_opacity=0.99),
                           torch.Generator().manual_seed(0), dtype=torch.float64)
    palette = torch.tensor([[0.8, 0.3, 0.2], [0.2, 0.5, 0.8], [0.3, 0.7, 0.3]], dtype=torch.float64)
    with torch.no_grad():
        model.params["sh0"][:, 0] = rgb_to_sh_dc(palette[model.prim % 3])
    world = model.pushforward(geo)
    f = 0.5 * size / math.tan(math.radians(45) / 2)
    K = intrinsics_matrix(f, f, size / 2, size / 2)
    cams, images, depths, masks = [], [], [], []
    n = n_train + n_test
    bg = torch.tensor(background, dtype=torch.float64)
    for i in range(n):
        az = 2 * math.pi * i / n + 0.2
        el = math.radians(25 + 15 * (i % 2))
        eye = 1.8 * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        eye[2] += 0.3
        vm = _look_at_viewmat(eye, (0.0, 0.0, 0.35))
        cams.append(Camera(K=K, viewmat=vm, width=size, height=size, name=f"v{i:02d}"))
        with torch.no_grad():
            res = rasterize(world.means, world.opacities, world.sh, torch.tensor(vm)[None], torch.tensor(K)[None],
                            size, size, covars=world.covars, sh_degree=0, backgrounds=bg,
                            settings=RasterSettings(render_mode="RGB+ED", backend="torch"))
        alpha = res.alphas[0, ..., 0].numpy()
        mask = alpha > 0.5
        images.append(res.colors[0, ..., :3].clamp(0, 1).numpy().astype(np.float32))
        depths.append(np.where(mask, res.colors[0, ..., 3].numpy(), 0.0).astype(np.float32))
        masks.append(mask)
    names = [c.name for c in cams]
    test = names[1::max(1, n // max(n_test, 1))][:n_test]
    split = {"train": [x for x in names if x not in test], "test": test}
    return write_scene(root, cams, images, depths=depths, masks=masks, split=split, program="stool.json",
                       gt_params=dict(params), extras={"background": list(background)})
