"""Test support for tests/test_export*.py and tests/test_render_cli*.py: a small stool program
(seat, four legs that switch between square and round, a back of editable height) with coloured
procedural Gaussians, written as a run folder the way the trainer writes one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from splat.maths import rgb_to_sh_dc

LEG_XY = [(-0.15, -0.15), (0.15, -0.15), (-0.15, 0.15), (0.15, 0.15)]
PART_COLORS = {"Seat": (0.9, 0.2, 0.1), "Leg": (0.1, 0.3, 0.9), "Round Leg": (0.1, 0.8, 0.3), "Back": (0.95, 0.8, 0.1)}


def stool_program_dict() -> dict:
    """A ``splat.program/1`` dict; parameters: Seat Height, Back Height (float), Legs Type (int 0/1,
    labels square/round), Has Back (bool)."""
    nodes = {
        "Group Input": {"type": "NodeGroupInput"},
        "Group Output": {"type": "NodeGroupOutput"},
        "Seat": {"type": "GeometryNodeMeshCube", "inputs": {"Size": [0.4, 0.4, 0.04]}},
        "Seat Z": {"type": "ShaderNodeCombineXYZ", "inputs": {"X": 0.0, "Y": 0.0}},
        "Seat Place": {"type": "GeometryNodeTransform"},
        "Half Height": {"type": "ShaderNodeMath", "properties": {"operation": "MULTIPLY"},
                        "inputs": {"Value[1]": 0.5}},
        "Leg Size": {"type": "ShaderNodeCombineXYZ", "inputs": {"X": 0.04, "Y": 0.04}},
        "Leg": {"type": "GeometryNodeMeshCube"},
        "Round Leg": {"type": "GeometryNodeMeshCylinder", "inputs": {"Vertices": 12, "Radius": 0.025}},
        "Leg Switch": {"type": "GeometryNodeSwitch", "properties": {"input_type": "GEOMETRY"}},
        "Back Size": {"type": "ShaderNodeCombineXYZ", "inputs": {"X": 0.4, "Y": 0.03}},
        "Back": {"type": "GeometryNodeMeshCube"},
        "Back Half": {"type": "ShaderNodeMath", "properties": {"operation": "MULTIPLY"}, "inputs": {"Value[1]": 0.5}},
        "Back Z": {"type": "ShaderNodeMath", "properties": {"operation": "ADD"}},
        "Back Pos": {"type": "ShaderNodeCombineXYZ", "inputs": {"X": 0.0, "Y": 0.185}},
        "Back Place": {"type": "GeometryNodeTransform"},
        "Back Switch": {"type": "GeometryNodeSwitch", "properties": {"input_type": "GEOMETRY"}},
        "Join": {"type": "GeometryNodeJoinGeometry"},
    }
    links = [
        ("Group Input", "Seat Height", "Seat Z", "Z"),
        ("Seat", "Mesh", "Seat Place", "Geometry"),
        ("Seat Z", "Vector", "Seat Place", "Translation"),
        ("Group Input", "Seat Height", "Half Height", "Value[0]"),
        ("Group Input", "Seat Height", "Leg Size", "Z"),
        ("Leg Size", "Vector", "Leg", "Size"),
        ("Group Input", "Seat Height", "Round Leg", "Depth"),
        ("Group Input", "Legs Type", "Leg Switch", "Switch"),
        ("Leg", "Mesh", "Leg Switch", "False"),
        ("Round Leg", "Mesh", "Leg Switch", "True"),
        ("Group Input", "Back Height", "Back Size", "Z"),
        ("Back Size", "Vector", "Back", "Size"),
        ("Group Input", "Back Height", "Back Half", "Value[0]"),
        ("Back Half", "Value", "Back Z", "Value[0]"),
        ("Group Input", "Seat Height", "Back Z", "Value[1]"),
        ("Back Z", "Value", "Back Pos", "Z"),
        ("Back", "Mesh", "Back Place", "Geometry"),
        ("Back Pos", "Vector", "Back Place", "Translation"),
        ("Group Input", "Has Back", "Back Switch", "Switch"),
        ("Back Place", "Geometry", "Back Switch", "True"),
        ("Seat Place", "Geometry", "Join", "Geometry"),
        ("Back Switch", "Output", "Join", "Geometry"),
        ("Join", "Geometry", "Group Output", "Geometry"),
    ]
    for i, (x, y) in enumerate(LEG_XY):
        nodes[f"Leg Pos {i}"] = {"type": "ShaderNodeCombineXYZ", "inputs": {"X": x, "Y": y}}
        nodes[f"Leg Place {i}"] = {"type": "GeometryNodeTransform"}
        links += [("Half Height", "Value", f"Leg Pos {i}", "Z"), ("Leg Switch", "Output", f"Leg Place {i}", "Geometry"),
                  (f"Leg Pos {i}", "Vector", f"Leg Place {i}", "Translation"),
                  (f"Leg Place {i}", "Geometry", "Join", "Geometry")]
    graph = {
        "format": "splat.geonodes/1",
        "main": "Stool",
        "trees": {"Stool": {
            "interface": {
                "inputs": [
                    {"name": "Seat Height", "type": "FLOAT", "default": 0.45, "min": 0.3, "max": 0.7},
                    {"name": "Back Height", "type": "FLOAT", "default": 0.3, "min": 0.15, "max": 0.5},
                    {"name": "Legs Type", "type": "INT", "default": 0, "min": 0, "max": 1},
                    {"name": "Has Back", "type": "BOOLEAN", "default": True},
                ],
                "outputs": [{"name": "Geometry", "type": "GEOMETRY"}],
            },
            "nodes": nodes,
            "links": [{"from_node": a, "from_socket": b, "to_node": c, "to_socket": d} for a, b, c, d in links],
        }},
    }
    params = {"format": "splat.params/1", "params": [
        {"name": "Seat Height", "type": "float", "range": [0.3, 0.7], "default": 0.45},
        {"name": "Back Height", "type": "float", "range": [0.15, 0.5], "default": 0.3, "requires": ["Has Back"]},
        {"name": "Legs Type", "type": "int", "range": [0, 1], "default": 0, "labels": ["square", "round"]},
        {"name": "Has Back", "type": "bool", "default": True},
    ]}
    return {"format": "splat.program/1", "name": "stool", "graph": graph, "params": params}


def stool_program():
    from splat.program import ShapeProgram

    return ShapeProgram.from_dict(stool_program_dict())


def stool_gaussians(program, params: dict, *, num: int = 1500, seed: int = 0, all_keys: bool = False):
    """ProceduralGaussians on the stool's primitives, one flat colour per primitive (PART_COLORS).

    With ``all_keys`` the square and the round legs both get Gaussians (as a trainer covering every
    structure would), so switching Legs Type shows coloured legs either way.
    """
    from splat.gaussians import InitSettings, ProceduralGaussians, init_gaussians

    geo = program.evaluate(params, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    model = init_gaussians(geo, InitSettings(num_init=num, color_mode="constant", init_opacity=0.95), g,
                           dtype=torch.float32)
    if all_keys:
        other = dict(params, **{"Legs Type": 1 - int(params.get("Legs Type", 0))})
        extra = init_gaussians(program.evaluate(other, dtype=torch.float64),
                               InitSettings(num_init=num, color_mode="constant", init_opacity=0.95), g)
        keys = list(model.keys) + [k for k in extra.keys if k not in model.keys]
        idx = {k: i for i, k in enumerate(keys)}
        keep = torch.tensor([extra.keys[int(p)] not in model.keys for p in extra.prim])
        prim = torch.cat([model.prim, torch.tensor([idx[extra.keys[int(p)]] for p in extra.prim[keep]], dtype=torch.long)])
        params_ = {k: torch.cat([model.params[k].detach(), extra.params[k].detach()[keep]]) for k in model.params}
        model = ProceduralGaussians(keys, params_, prim, model.sh_degree)
    sh0 = model.params["sh0"].detach().clone()
    for i, key in enumerate(model.keys):
        sh0[model.prim == i, 0] = rgb_to_sh_dc(torch.tensor(PART_COLORS[key.node]))
    model.params["sh0"].data.copy_(sh0)
    return model


def make_run(root: Path, *, params: dict | None = None, all_keys: bool = True, num: int = 1500,
             placement: np.ndarray | None = None, scene: str | None = None) -> Path:
    """Write ``root`` as a finished run folder (config.json + assets/) and return it."""
    from splat.export.asset import write_assets

    program = stool_program()
    values = program.space.validate(params or {"Seat Height": 0.45, "Back Height": 0.3, "Legs Type": 0, "Has Back": True})
    model = stool_gaussians(program, values, num=num, all_keys=all_keys)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"scene": scene or "stool"}))
    write_assets(root / "assets", program, values, model, placement)
    return root
