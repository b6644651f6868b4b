"""splat.blender.exporter: graph JSON + values -> .blend with a live geometry-nodes modifier.

Budget: ~4 s (imports, exports and re-evaluates the three shipped programs once each).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from conftest import BLENDER_PROGRAMS
from splat.errors import SplatError

pytestmark = pytest.mark.blender

PROGRAMS = ("chair", "table", "cabinet")


def _small_graph():
    """Cube of size (Width, 1, 2) moved up by Width/2, through a nested group, with a switch."""
    return {
        "format": "splat.geonodes/1",
        "main": "Main",
        "trees": {
            "Main": {
                "interface": {
                    "inputs": [
                        {"name": "Width", "type": "FLOAT", "default": 0.5, "min": 0.1, "max": 2.0},
                        {"name": "Show", "type": "BOOLEAN", "default": True},
                        {"name": "Count", "type": "INT", "default": 3, "min": 1, "max": 8},
                    ],
                    "outputs": [{"name": "Geometry", "type": "GEOMETRY"}],
                },
                "nodes": {
                    "Group Input": {"type": "NodeGroupInput"},
                    "Group Output": {"type": "NodeGroupOutput"},
                    "Box": {"type": "GeometryNodeGroup", "properties": {"node_tree": "Box"}},
                    "Half": {"type": "ShaderNodeMath", "properties": {"operation": "DIVIDE", "use_clamp": False},
                             "inputs": {"Value[1]": 2.0}},
                    "Up": {"type": "ShaderNodeCombineXYZ", "inputs": {"X": 0.0, "Y": 0.0}},
                    "Move": {"type": "GeometryNodeTransform", "properties": {"mode": "COMPONENTS"},
                             "inputs": {"Rotation": [0.0, 0.0, 0.5], "Scale": [1.0, 1.0, 1.0]}},
                    "Switch": {"type": "GeometryNodeSwitch", "properties": {"input_type": "GEOMETRY"}},
                    "Line": {"type": "GeometryNodeMeshLine", "properties": {"mode": "OFFSET", "count_mode": "TOTAL"},
                             "inputs": {"Start Location": [0.0, 0.0, 0.0], "Offset": [1.0, 0.0, 0.0]}},
                    "Join": {"type": "GeometryNodeJoinGeometry"},
                },
                "links": [
                    {"from_node": "Group Input", "from_socket": "Width", "to_node": "Box", "to_socket": "Width"},
                    {"from_node": "Group Input", "from_socket": "Width", "to_node": "Half", "to_socket": "Value[0]"},
                    {"from_node": "Half", "from_socket": "Value", "to_node": "Up", "to_socket": "Z"},
                    {"from_node": "Box", "from_socket": "Geometry", "to_node": "Move", "to_socket": "Geometry"},
                    {"from_node": "Up", "from_socket": "Vector", "to_node": "Move", "to_socket": "Translation"},
                    {"from_node": "Group Input", "from_socket": "Show", "to_node": "Switch", "to_socket": "Switch"},
                    {"from_node": "Move", "from_socket": "Geometry", "to_node": "Switch", "to_socket": "True"},
                    {"from_node": "Group Input", "from_socket": "Count", "to_node": "Line", "to_socket": "Count"},
                    {"from_node": "Switch", "from_socket": "Output", "to_node": "Join", "to_socket": "Geometry"},
                    {"from_node": "Line", "from_socket": "Mesh", "to_node": "Join", "to_socket": "Geometry"},
                    {"from_node": "Join", "from_socket": "Geometry", "to_node": "Group Output", "to_socket": "Geometry"},
                ],
            },
            "Box": {
                "interface": {
                    "inputs": [{"name": "Width", "type": "FLOAT", "default": 1.0, "min": 0.0, "max": 10.0}],
                    "outputs": [{"name": "Geometry", "type": "GEOMETRY"}],
                },
                "nodes": {
                    "Group Input": {"type": "NodeGroupInput"},
                    "Group Output": {"type": "NodeGroupOutput"},
                    "Size": {"type": "ShaderNodeCombineXYZ", "inputs": {"Y": 1.0, "Z": 2.0}},
                    "Cube": {"type": "GeometryNodeMeshCube",
                             "inputs": {"Vertices X": 2, "Vertices Y": 2, "Vertices Z": 2}},
                },
                "links": [
                    {"from_node": "Group Input", "from_socket": "Width", "to_node": "Size", "to_socket": "X"},
                    {"from_node": "Size", "from_socket": "Vector", "to_node": "Cube", "to_socket": "Size"},
                    {"from_node": "Cube", "from_socket": "Mesh", "to_node": "Group Output", "to_socket": "Geometry"},
                ],
            },
        },
    }


def _expected_box(width):
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    local = corners * np.array([width, 1.0, 2.0])
    c, s = np.cos(0.5), np.sin(0.5)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return local @ rot.T + np.array([0.0, 0.0, width / 2])


def _same_set(a, b, tol=1e-5):
    from scipy.spatial import cKDTree

    if len(a) == 0 or len(b) == 0:
        return len(a) == len(b)
    return max(cKDTree(a).query(b)[0].max(), cKDTree(b).query(a)[0].max()) < tol


def test_export_small_graph_evaluates_as_expected(tmp_path):
    from splat.blender.evaluate import BlenderProgram
    from splat.blender.exporter import export_blend
    from splat.blender.importer import import_blend

    graph = _small_graph()
    out = export_blend(graph, {"Width": 0.8, "Count": 2}, tmp_path / "sub" / "small.blend")
    assert out.is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["small.blend"]  # no temp files, no .blend1
    program = BlenderProgram.open(out)
    mesh = program.evaluate({})  # the values stored on the modifier
    line = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    assert _same_set(mesh.vertices, np.concatenate([_expected_box(0.8), line]))
    assert mesh.polygons == 6 and mesh.triangles == 12
    mesh = program.evaluate({"Show": False, "Count": 5})
    assert len(mesh.vertices) == 5 and mesh.polygons == 0
    # import gives the graph back: same trees, interfaces, nodes, properties and links; every given
    # input value kept (the importer also writes the unlinked inputs left at Blender's defaults)
    again = import_blend(out)
    assert again.modifier_values == {"Width": 0.8, "Show": True, "Count": 2}
    assert again.graph["main"] == "Main" and set(again.graph["trees"]) == {"Main", "Box"}
    for name, tree in graph["trees"].items():
        got = again.graph["trees"][name]
        assert got["interface"] == tree["interface"]
        assert list(got["nodes"]) == list(tree["nodes"])
        for node_name, node in tree["nodes"].items():
            assert got["nodes"][node_name]["type"] == node["type"]
            assert got["nodes"][node_name].get("properties") == node.get("properties")
            assert node.get("inputs", {}).items() <= got["nodes"][node_name].get("inputs", {}).items()
        key = lambda l: tuple(sorted(l.items()))  # noqa: E731
        assert sorted(map(key, got["links"])) == sorted(map(key, tree["links"]))
    # and the imported form is a fixed point of export -> import
    export_blend(again.graph, again.modifier_values, tmp_path / "again.blend")
    assert import_blend(tmp_path / "again.blend").graph == again.graph


@pytest.mark.parametrize("name", PROGRAMS)
def test_round_trip_shipped_programs(name, tmp_path):
    from splat.blender.evaluate import BlenderProgram
    from splat.blender.exporter import export_blend
    from splat.blender.importer import import_blend

    first = import_blend(BLENDER_PROGRAMS / f"{name}.blend")
    reference = BlenderProgram.open(BLENDER_PROGRAMS / f"{name}.blend").evaluate(first.modifier_values)
    path = export_blend(first.graph, first.modifier_values, tmp_path / f"{name}.blend")
    second = import_blend(path)
    assert second.graph == first.graph
    assert second.modifier_values == first.modifier_values
    mesh = BlenderProgram.open(path).evaluate({})
    assert mesh.polygons == reference.polygons
    assert _same_set(mesh.vertices, reference.vertices)


def test_export_overwrites_atomically(tmp_path):
    from splat.blender.exporter import export_blend
    from splat.blender.importer import import_blend

    path = tmp_path / "p.blend"
    export_blend(_small_graph(), {"Width": 0.3}, path)
    export_blend(_small_graph(), {"Width": 0.6}, path)
    assert import_blend(path).modifier_values["Width"] == 0.6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.blend"]
    # a failing export leaves the old file untouched
    bad = _small_graph()
    bad["trees"]["Main"]["nodes"]["Box"]["properties"]["node_tree"] = "Nope"
    with pytest.raises(SplatError):
        export_blend(bad, {}, path)
    assert import_blend(path).modifier_values["Width"] == 0.6


@pytest.mark.parametrize(
    "mutate, field, message",
    [
        (lambda g: g.update(format="other"), "format", "format"),
        (lambda g: g.update(main="Nope"), "main", "main tree"),
        (lambda g: g["trees"]["Main"]["nodes"]["Half"].update(type="GeometryNodeSetPosition"),
         "trees.Main.nodes.Half.type", "unsupported node type"),
        (lambda g: g["trees"]["Main"]["nodes"]["Half"]["inputs"].update({"Value[7]": 1.0}),
         "trees.Main.nodes.Half.inputs.Value[7]", "no value input"),
        (lambda g: g["trees"]["Main"]["nodes"]["Half"]["properties"].update(operation="EXPLODE"),
         "trees.Main.nodes.Half.properties.operation", "cannot set"),
        (lambda g: g["trees"]["Main"]["links"][0].update(to_socket="Height"),
         "trees.Main.links[0]", "no socket"),
        (lambda g: g["trees"]["Main"]["links"][0].update(from_node="Ghost"),
         "trees.Main.links[0]", "does not exist"),
        (lambda g: g["trees"]["Main"]["interface"]["inputs"][0].update(type="STRING"),
         "trees.Main.interface.inputs[0]", "type"),
    ],
)
def test_export_bad_graph(mutate, field, message, tmp_path):
    from splat.blender.exporter import export_blend

    graph = copy.deepcopy(_small_graph())
    mutate(graph)
    with pytest.raises(SplatError, match=message) as err:
        export_blend(graph, {}, tmp_path / "x.blend", file="prog.json")
    assert err.value.field == field
    assert err.value.file == "prog.json"
    assert not (tmp_path / "x.blend").exists()


def test_export_bad_params(tmp_path):
    from splat.blender.exporter import export_blend

    with pytest.raises(SplatError, match="no input 'Colour'") as err:
        export_blend(_small_graph(), {"Colour": 1.0}, tmp_path / "x.blend")
    assert err.value.field == "params.Colour"
    with pytest.raises(SplatError, match="does not fit"):
        export_blend(_small_graph(), {"Width": "wide"}, tmp_path / "x.blend")


def test_multi_input_order_is_join_order(tmp_path):
    # the first link listed into Join Geometry is the first geometry in Blender's output (and it
    # survives export -> import)
    from splat.blender.evaluate import BlenderProgram
    from splat.blender.exporter import export_blend
    from splat.blender.importer import import_blend

    def graph(order):
        links = [{"from_node": n, "from_socket": "Mesh", "to_node": "Join", "to_socket": "Geometry"} for n in order]
        links.append({"from_node": "Join", "from_socket": "Geometry", "to_node": "Group Output", "to_socket": "Geometry"})
        return {
            "format": "splat.geonodes/1",
            "main": "M",
            "trees": {"M": {
                "interface": {"inputs": [], "outputs": [{"name": "Geometry", "type": "GEOMETRY"}]},
                "nodes": {
                    "Group Output": {"type": "NodeGroupOutput"},
                    "Small": {"type": "GeometryNodeMeshCube", "inputs": {"Size": [1.0, 1.0, 1.0]}},
                    "Big": {"type": "GeometryNodeMeshCube", "inputs": {"Size": [2.0, 2.0, 2.0]}},
                    "Join": {"type": "GeometryNodeJoinGeometry"},
                },
                "links": links,
            }},
        }

    for order, first in ((("Small", "Big"), 0.5), (("Big", "Small"), 1.0)):
        mesh = BlenderProgram.from_graph(graph(order)).evaluate({})
        assert np.allclose(np.abs(mesh.vertices[:8]), first)
        path = export_blend(graph(order), {}, tmp_path / "j.blend")
        links = import_blend(path).graph["trees"]["M"]["links"]
        assert [l["from_node"] for l in links if l["to_node"] == "Join"] == list(order)


def test_export_accepts_tensors_and_numpy(tmp_path):
    import torch

    from splat.blender.exporter import export_blend
    from splat.blender.importer import import_blend

    params = {"Width": torch.tensor([0.7], requires_grad=True), "Show": torch.tensor([False]),
              "Count": np.int64(4)}
    path = export_blend(_small_graph(), params, tmp_path / "t.blend")
    assert import_blend(path).modifier_values == {"Width": 0.7, "Show": False, "Count": 4}
    for bad in ({"Count": 2.5}, {"Width": float("nan")}, {"Width": [0.1, 0.2]}):
        with pytest.raises(SplatError, match="does not fit|not finite"):
            export_blend(_small_graph(), bad, tmp_path / "t.blend")


def test_export_places_object(tmp_path):
    import bpy

    from splat.blender.evaluate import BlenderProgram
    from splat.blender.exporter import export_blend

    m = np.eye(4)
    m[:3, 3] = [1.0, 2.0, 3.0]
    m[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    path = export_blend(_small_graph(), {"Width": 0.5}, tmp_path / "placed.blend", matrix_world=m)
    program = BlenderProgram.open(path)  # geometry stays object-local
    assert np.allclose([list(row) for row in bpy.data.objects["Program"].matrix_world], m, atol=1e-6)
    placed = program.evaluate({}).vertices
    ref = BlenderProgram.from_graph(_small_graph()).evaluate({"Width": 0.5})
    assert _same_set(placed, ref.vertices)
    with pytest.raises(RuntimeError, match="session was replaced"):  # not a crash on dangling data
        program.evaluate({})
    with pytest.raises(SplatError, match=r"\[4, 4\]"):
        export_blend(_small_graph(), {}, tmp_path / "bad.blend", matrix_world=np.eye(3))
