"""Semantics of each node type on small hand-checkable cases (budget: < 5 s)."""

from __future__ import annotations

import math

import pytest
import torch

from splat.errors import SplatError
from splat.geonodes import evaluate_graph, load_graph
from tests.geonodes_helpers import link, make_graph, probe_graph

F64 = torch.float64


def run(g, inputs=None, B=1):
    return evaluate_graph(load_graph(g), inputs or {}, batch_size=B, dtype=F64)


def math_value(op, a, b=0.5, c=0.5, clamp=False, B=None):
    """Evaluate ShaderNodeMath(op) on inputs A (a [B] tensor) and constants b, c; read it back."""
    a = torch.as_tensor(a, dtype=F64).reshape(-1)
    g = probe_graph({"M": {"type": "ShaderNodeMath", "properties": {"operation": op, "use_clamp": clamp},
                           "inputs": {"Value[1]": b, "Value[2]": c}}},
                    [link("Group Input", "A", "M", "Value[0]")], ("M", "Value"),
                    inputs=[{"name": "A", "type": "FLOAT", "default": 0.0}])
    geo = run(g, {"A": a}, B=a.shape[0])
    return geo.parts[0].shape["size"][:, 0]


def test_math_blender_semantics():
    assert math_value("DIVIDE", [1.0, 3.0], b=0.0).tolist() == [0.0, 0.0]
    assert math_value("DIVIDE", [1.0], b=4.0).item() == 0.25
    assert math_value("COMPARE", [1.0, 1.05, 1.2], b=1.0, c=0.1).tolist() == [1.0, 1.0, 0.0]
    assert math_value("COMPARE", [1.0, 1.0 + 1e-6], b=1.0, c=0.0).tolist() == [1.0, 0.0]  # eps = FLT_EPSILON
    assert math_value("ROUND", [2.5, -2.5, 1.4]).tolist() == [3.0, -2.0, 1.0]
    assert math_value("FLOOR", [1.7, -1.2]).tolist() == [1.0, -2.0]
    assert math_value("CEIL", [1.2]).tolist() == [2.0]
    assert math_value("POWER", [-2.0, -2.0, 4.0], b=0.5).tolist() == [0.0, 0.0, 2.0]
    assert math_value("POWER", [-2.0], b=2.0).tolist() == [4.0]
    assert math_value("MULTIPLY_ADD", [2.0], b=3.0, c=1.0).item() == 7.0
    assert math_value("MINIMUM", [2.0], b=0.5).item() == 0.5
    assert math_value("MAXIMUM", [2.0], b=0.5).item() == 2.0
    assert math_value("ABSOLUTE", [-2.0]).item() == 2.0
    assert math_value("GREATER_THAN", [0.6, 0.5], b=0.5).tolist() == [1.0, 0.0]
    assert math_value("LESS_THAN", [0.4, 0.5], b=0.5).tolist() == [1.0, 0.0]
    assert math_value("SINE", [math.pi / 2]).item() == pytest.approx(1.0)
    assert math_value("COSINE", [0.0]).item() == 1.0
    assert math_value("ADD", [0.9], b=0.5, clamp=True).item() == 1.0
    assert math_value("SUBTRACT", [0.9], b=0.5).item() == pytest.approx(0.4)


def test_safe_division_has_finite_gradient():
    a = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    out = math_value("DIVIDE", a, b=0.0)
    out.sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad.tolist() == [0.0, 0.0]


def vector_value(op, v0, v1=(0.0, 0.0, 0.0), scale=1.0):
    g = make_graph({
        "V": {"type": "ShaderNodeVectorMath", "properties": {"operation": op},
              "inputs": {"Vector[0]": list(v0), "Vector[1]": list(v1), "Scale": scale}},
        "Cube": {"type": "GeometryNodeMeshCube"},
        "T": {"type": "GeometryNodeTransform"},
        "XYZ": {"type": "ShaderNodeCombineXYZ"},
    }, [link("V", "Vector", "T", "Translation"), link("V", "Value", "XYZ", "X"), link("XYZ", "Vector", "T", "Scale"),
        link("Cube", "Mesh", "T", "Geometry"), link("T", "Geometry", "Group Output", "Geometry")])
    p = run(g).parts[0]
    return p.transform[0, :3, 3].tolist(), p.transform[0, 0, 0].item()


def test_vector_math():
    assert vector_value("ADD", (1, 2, 3), (1, 1, 1))[0] == [2, 3, 4]
    assert vector_value("SUBTRACT", (1, 2, 3), (1, 1, 1))[0] == [0, 1, 2]
    assert vector_value("MULTIPLY", (1, 2, 3), (2, 2, 2))[0] == [2, 4, 6]
    assert vector_value("DIVIDE", (1, 2, 3), (2, 0, 1))[0] == [0.5, 0.0, 3.0]
    assert vector_value("SCALE", (1, 2, 3), scale=2.0)[0] == [2, 4, 6]
    assert vector_value("LENGTH", (3, 4, 0))[1] == pytest.approx(5.0)
    assert vector_value("NORMALIZE", (0, 0, 2))[0] == [0, 0, 1]
    assert vector_value("NORMALIZE", (0, 0, 0))[0] == [0, 0, 0]
    assert vector_value("DOT_PRODUCT", (1, 2, 3), (1, 1, 1))[1] == 6.0
    assert vector_value("CROSS_PRODUCT", (1, 0, 0), (0, 1, 0))[0] == [0, 0, 1]


def test_transform_is_scale_then_euler_xyz_then_translation():
    g = make_graph({
        "Cube": {"type": "GeometryNodeMeshCube", "inputs": {"Size": [2.0, 2.0, 2.0]}},
        "T": {"type": "GeometryNodeTransform", "inputs": {"Translation": [10.0, 0.0, 0.0],
                                                          "Rotation": [math.pi / 2, 0.0, math.pi / 2],
                                                          "Scale": [2.0, 1.0, 1.0]}},
    }, [link("Cube", "Mesh", "T", "Geometry"), link("T", "Geometry", "Group Output", "Geometry")])
    v = run(g).realize().verts[0]
    # corner (1, 1, 1): scale -> (2, 1, 1); Rx(90) -> (2, -1, 1); Rz(90) -> (1, 2, 1); + (10, 0, 0)
    target = torch.tensor([11.0, 2.0, 1.0], dtype=F64)
    assert torch.cdist(v, target[None]).min() < 1e-12


def test_switch_per_element_keeps_both_branches():
    g = make_graph({
        "A": {"type": "GeometryNodeMeshCube"},
        "B": {"type": "GeometryNodeMeshCylinder", "inputs": {"Vertices": 8}},
        "S": {"type": "GeometryNodeSwitch", "properties": {"input_type": "GEOMETRY"}},
        "F": {"type": "GeometryNodeSwitch", "properties": {"input_type": "FLOAT"}, "inputs": {"False": 1.0, "True": 3.0}},
        "T": {"type": "GeometryNodeTransform"},
        "XYZ": {"type": "ShaderNodeCombineXYZ"},
    }, [link("Group Input", "Sel", "S", "Switch"), link("A", "Mesh", "S", "False"), link("B", "Mesh", "S", "True"),
        link("Group Input", "Sel", "F", "Switch"), link("F", "Output", "XYZ", "X"), link("XYZ", "Vector", "T", "Translation"),
        link("S", "Output", "T", "Geometry"), link("T", "Geometry", "Group Output", "Geometry")],
        inputs=[{"name": "Sel", "type": "BOOLEAN", "default": False}])
    geo = run(g, {"Sel": torch.tensor([False, True, False])}, B=3)
    kinds = {p.kind: p.active.tolist() for p in geo.parts}
    assert kinds == {"cube": [True, False, True], "cylinder": [False, True, False]}
    assert [p.transform[:, 0, 3].tolist() for p in geo.parts][0] == [1.0, 3.0, 1.0]
    # a uniform selector drops the other branch
    assert [p.kind for p in run(g, {"Sel": torch.tensor([True, True])}, B=2).parts] == ["cylinder"]


def line_graph(mode, offset=(1.0, 0.0, 0.0)):
    return make_graph({
        "L": {"type": "GeometryNodeMeshLine", "properties": {"mode": mode, "count_mode": "TOTAL"},
              "inputs": {"Start Location": [1.0, 0.0, 0.0], "Offset": list(offset)}},
    }, [link("Group Input", "N", "L", "Count"), link("L", "Mesh", "Group Output", "Geometry")],
        inputs=[{"name": "N", "type": "INT", "default": 3}])


def active_points(geo, b):
    m = geo.realize()
    return sorted(m.verts[b][m.vert_active[b]][:, 0].tolist())


def test_mesh_line_counts_per_element_masked():
    geo = run(line_graph("OFFSET"), {"N": torch.tensor([0, 1, 3])}, B=3)
    assert len(geo.parts) == 3
    assert [active_points(geo, b) for b in range(3)] == [[], [1.0], [1.0, 2.0, 3.0]]
    geo = run(line_graph("END_POINTS", (3.0, 0.0, 0.0)), {"N": torch.tensor([1, 2, 3])}, B=3)
    assert [active_points(geo, b) for b in range(3)] == [[1.0], [1.0, 3.0], [1.0, 2.0, 3.0]]


def test_instance_on_points_rotation_scale_and_copies():
    g = make_graph({
        "L": {"type": "GeometryNodeMeshLine", "inputs": {"Count": 2, "Offset": [0.0, 0.0, 5.0]}},
        "C": {"type": "GeometryNodeMeshCube", "inputs": {"Size": [1.0, 2.0, 1.0]}},
        "I": {"type": "GeometryNodeInstanceOnPoints",
              "inputs": {"Rotation": [0.0, 0.0, math.pi / 2], "Scale": [3.0, 1.0, 1.0]}},
        "R": {"type": "GeometryNodeRealizeInstances"},
    }, [link("L", "Mesh", "I", "Points"), link("C", "Mesh", "I", "Instance"), link("I", "Instances", "R", "Geometry"),
        link("R", "Geometry", "Group Output", "Geometry")])
    geo = run(g)
    assert len(geo.parts) == 2 and geo.parts[0].key == geo.parts[1].key  # copies share the key
    v = geo.realize().verts[0]
    # local extent (3, 2, 1) after scale, rotated 90 deg about z -> (2, 3, 1); second copy at z = 5
    ext = v[:8].max(0).values - v[:8].min(0).values
    assert torch.allclose(ext, torch.tensor([2.0, 3.0, 1.0], dtype=F64))
    assert v[8:, 2].mean().item() == pytest.approx(5.0)


def test_join_nested_groups_and_copy_keys():
    sub = {"interface": {"inputs": [{"name": "S", "type": "FLOAT", "default": 1.0}],
                         "outputs": [{"name": "Geometry", "type": "GEOMETRY"}]},
           "nodes": {"Group Input": {"type": "NodeGroupInput"}, "Group Output": {"type": "NodeGroupOutput"},
                     "X": {"type": "ShaderNodeCombineXYZ", "inputs": {"Y": 1.0, "Z": 1.0}},
                     "Leg": {"type": "GeometryNodeMeshCube"}},
           "links": [link("Group Input", "S", "X", "X"), link("X", "Vector", "Leg", "Size"),
                     link("Leg", "Mesh", "Group Output", "Geometry")]}
    g = make_graph({
        "G1": {"type": "GeometryNodeGroup", "properties": {"node_tree": "Sub"}, "inputs": {"S": 2.0}},
        "G2": {"type": "GeometryNodeGroup", "properties": {"node_tree": "Sub"}},
        "J": {"type": "GeometryNodeJoinGeometry"},
        "Frame": {"type": "NodeFrame"},
        "Rr": {"type": "NodeReroute"},
    }, [link("G1", "Geometry", "J", "Geometry"), link("G2", "Geometry", "Rr", "Input"), link("Rr", "Output", "J", "Geometry"),
        link("J", "Geometry", "Group Output", "Geometry")], trees={"Sub": sub})
    geo = run(g)
    assert [p.key.tree for p in geo.parts] == ["Sub", "Sub"] and geo.parts[0].key == geo.parts[1].key
    assert [p.shape["size"][0, 0].item() for p in geo.parts] == [2.0, 1.0]


def test_float_to_int_truncates_and_topology_splits_per_element():
    g = make_graph({
        "M": {"type": "ShaderNodeMath", "properties": {"operation": "ADD"}, "inputs": {"Value[1]": 0.0}},
        "C": {"type": "GeometryNodeMeshCube"},
    }, [link("Group Input", "V", "M", "Value[0]"), link("M", "Value", "C", "Vertices X"),
        link("C", "Mesh", "Group Output", "Geometry")], inputs=[{"name": "V", "type": "FLOAT", "default": 2.0}])
    geo = run(g, {"V": torch.tensor([2.7, 3.2, 2.0, 0.5])}, B=4)
    tops = {p.key.topology: p.active.tolist() for p in geo.parts}
    assert tops == {(2, 2, 2): [True, False, True, False], (3, 2, 2): [False, True, False, False]}
    assert geo.realize().n_polys.tolist() == [6, 10, 6, 0]


def test_cone_radius_zero_is_its_own_topology():
    g = make_graph({"C": {"type": "GeometryNodeMeshCone", "inputs": {"Vertices": 6}}},
                   [link("Group Input", "R", "C", "Radius Top"), link("C", "Mesh", "Group Output", "Geometry")],
                   inputs=[{"name": "R", "type": "FLOAT", "default": 0.0}])
    geo = run(g, {"R": torch.tensor([0.0, 0.5])}, B=2)
    m = geo.realize()
    assert m.vert_active.sum(1).tolist() == [7, 12] and m.n_polys.tolist() == [7, 8]
    assert [p.affine for p in geo.parts] == [False, False]


def test_value_input_nodes_and_separate_xyz():
    g = probe_graph({"V": {"type": "ShaderNodeValue", "properties": {"value": 0.25}},
                     "I": {"type": "FunctionNodeInputInt", "properties": {"integer": 2}},
                     "B": {"type": "FunctionNodeInputBool", "properties": {"boolean": True}},
                     "XYZ0": {"type": "ShaderNodeCombineXYZ"},
                     "Sep": {"type": "ShaderNodeSeparateXYZ"},
                     "M": {"type": "ShaderNodeMath", "properties": {"operation": "MULTIPLY_ADD"}}},
                    [link("V", "Value", "XYZ0", "Y"), link("XYZ0", "Vector", "Sep", "Vector"),
                     link("Sep", "Y", "M", "Value[0]"), link("I", "Integer", "M", "Value[1]"),
                     link("B", "Boolean", "M", "Value[2]")], ("M", "Value"))
    assert run(g).parts[0].shape["size"][0, 0].item() == 1.5  # 0.25 * 2 + 1


def test_excessive_counts_are_user_errors():
    with pytest.raises(SplatError, match="Mesh Line count"):
        run(line_graph("OFFSET"), {"N": torch.tensor([10**6])})


@pytest.mark.blender
def test_math_ops_match_blender():
    """Every ShaderNodeMath operation we support against bpy on awkward values (0, negatives, ties)."""
    import bpy

    from splat.geonodes.nodes_math import MATH_OPS

    bpy.ops.wm.read_factory_settings(use_empty=True)
    obj = bpy.data.objects.new("o", bpy.data.meshes.new("m"))
    bpy.context.scene.collection.objects.link(obj)
    ng = bpy.data.node_groups.new("t", "GeometryNodeTree")
    ng.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    out, m = ng.nodes.new("NodeGroupOutput"), ng.nodes.new("ShaderNodeMath")
    xyz, line = ng.nodes.new("ShaderNodeCombineXYZ"), ng.nodes.new("GeometryNodeMeshLine")
    line.inputs["Count"].default_value = 2
    ng.links.new(m.outputs[0], xyz.inputs[0])
    ng.links.new(xyz.outputs[0], line.inputs["Offset"])
    ng.links.new(line.outputs[0], out.inputs[0])
    obj.modifiers.new("g", "NODES").node_group = ng
    values = [(-2.5, 0.0, 0.3), (-2.0, 0.5, 0.0), (1.7, -0.4, 2.0), (2.5, 0.7, 0.5), (1.0, 1.0 + 1e-6, 0.0)]
    for op, fn in MATH_OPS.items():
        m.operation = op
        for a, b, c in values:
            for i, v in enumerate((a, b, c)):
                m.inputs[i].default_value = v
            obj.update_tag()
            blender = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data.vertices[1].co.x
            ours = fn(*(torch.tensor([x], dtype=F64) for x in (a, b, c))).item()
            assert ours == pytest.approx(blender, rel=1e-5, abs=1e-5), (op, a, b, c)
