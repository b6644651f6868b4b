"""splat.blender.importer: .blend geometry-nodes program -> graph JSON (docs/graph_format.md).

Budget: ~3 s (opens a few small .blend files in bpy).
"""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from conftest import BLENDER_PROGRAMS
from splat.errors import SplatError

PROGRAMS = ("chair", "table", "cabinet")


def test_blender_package_imports_without_bpy(monkeypatch):
    # `import splat.blender` must work without bpy; using it raises the project's error with the hint
    monkeypatch.setitem(sys.modules, "bpy", None)  # makes `import bpy` raise ImportError
    import splat.blender

    importlib.reload(splat.blender)
    with pytest.raises(SplatError, match=r"blender` extra"):
        splat.blender.require_bpy()
    from splat.blender import importer

    with pytest.raises(SplatError, match=r"blender` extra"):
        importer.import_blend(BLENDER_PROGRAMS / "chair.blend")



def _node_types(graph):
    return {n["type"] for t in graph["trees"].values() for n in t["nodes"].values()}


@pytest.mark.blender
@pytest.mark.parametrize("name", PROGRAMS)
def test_import_shipped_programs(name):
    from splat.blender.importer import import_blend

    result = import_blend(BLENDER_PROGRAMS / f"{name}.blend")
    graph = result.graph
    assert graph["format"] == "splat.geonodes/1"
    assert graph["main"] in graph["trees"]
    json.dumps(graph)  # plain JSON
    assert "NodeFrame" not in _node_types(graph)
    # every link names existing nodes; repeated socket names use Name[k]
    for tname, tree in graph["trees"].items():
        for link in tree["links"]:
            assert link["from_node"] in tree["nodes"] and link["to_node"] in tree["nodes"], (tname, link)
        for node in tree["nodes"].values():
            if node["type"] == "ShaderNodeMath":
                assert set(node.get("inputs", {})) <= {"Value[0]", "Value[1]", "Value[2]"}
            if node["type"] == "GeometryNodeGroup":
                assert node["properties"]["node_tree"] in graph["trees"]
    # the main interface matches the parameter spec names of the shipped sp_*.json
    spec = json.loads((BLENDER_PROGRAMS / f"sp_{name}.json").read_text())
    names = set()

    def walk(d):
        for k, v in d.items():
            if v.get("type") == "nested":
                walk(v["params"])
            else:
                names.add(k)

    walk(spec["params"])
    inputs = {i["name"] for i in graph["trees"][graph["main"]]["interface"]["inputs"]}
    assert names <= inputs
    # skeleton: one entry per value input, modifier values as defaults
    assert set(result.param_spec["params"]) == {
        i["name"] for i in graph["trees"][graph["main"]]["interface"]["inputs"] if i["type"] != "GEOMETRY"
    }
    for pname, value in result.modifier_values.items():
        assert result.param_spec["params"][pname]["default"] == value


@pytest.mark.blender
def test_import_chair_details():
    from splat.blender.importer import import_blend

    result = import_blend(BLENDER_PROGRAMS / "chair.blend")
    graph = result.graph
    assert set(graph["trees"]) == {"Geometry Nodes", "Seat", "Arms", "Back", "Legs"}
    main = graph["trees"]["Geometry Nodes"]
    seat = {i["name"]: i for i in main["interface"]["inputs"]}["Seat Height"]
    assert seat["type"] == "FLOAT" and "min" in seat and "max" in seat
    assert result.modifier_values["Seat Height"] == 0.6  # float32 written as its shortest decimal
    legs = graph["trees"]["Legs"]
    cyl = [n for n in legs["nodes"].values() if n["type"] == "GeometryNodeMeshCylinder"]
    assert cyl and all(n["properties"]["fill_type"] == "NGON" for n in cyl)
    assert cyl[0]["inputs"]["Vertices"] == 32
    switch_types = {n["properties"]["input_type"] for n in legs["nodes"].values() if n["type"] == "GeometryNodeSwitch"}
    assert switch_types == {"FLOAT", "GEOMETRY"}
    # unavailable sockets' values are not written (ADD has no third operand)
    for tree in graph["trees"].values():
        for n in tree["nodes"].values():
            if n["type"] == "ShaderNodeMath" and n["properties"]["operation"] in ("ADD", "DIVIDE"):
                assert "Value[2]" not in n.get("inputs", {})


@pytest.mark.blender
def test_import_cabinet_repeated_interface_names():
    # SetToZeroZAxis has three outputs all named "Geometry": Geometry[0..2] on Group Output and group nodes
    from splat.blender.importer import import_blend

    graph = import_blend(BLENDER_PROGRAMS / "cabinet.blend").graph
    tree = graph["trees"]["SetToZeroZAxis"]
    assert [o["name"] for o in tree["interface"]["outputs"]] == ["Geometry"] * 3
    to_output = {l["to_socket"] for l in tree["links"] if tree["nodes"][l["to_node"]]["type"] == "NodeGroupOutput"}
    assert to_output == {"Geometry[0]", "Geometry[1]", "Geometry[2]"}
    uses = [
        l["from_socket"]
        for t in graph["trees"].values()
        for l in t["links"]
        if t["nodes"][l["from_node"]].get("properties", {}).get("node_tree") == "SetToZeroZAxis"
    ]
    assert uses and set(uses) <= {"Geometry[0]", "Geometry[1]", "Geometry[2]"}


def _build_features_blend(path):
    """A .blend exercising reroutes, frames, a muted link and a muted node (made with bpy here)."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    tree = bpy.data.node_groups.new("Main", "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    size = tree.interface.new_socket("Size", in_out="INPUT", socket_type="NodeSocketFloat")
    size.default_value = 2.0
    gin = tree.nodes.new("NodeGroupInput")
    gout = tree.nodes.new("NodeGroupOutput")
    frame = tree.nodes.new("NodeFrame")
    cube = tree.nodes.new("GeometryNodeMeshCube")
    cube.name = "Box"
    cube.parent = frame
    comb = tree.nodes.new("ShaderNodeCombineXYZ")
    reroute = tree.nodes.new("NodeReroute")
    reroute2 = tree.nodes.new("NodeReroute")
    muted = tree.nodes.new("GeometryNodeTransform")
    muted.name = "Muted"
    muted.mute = True
    join = tree.nodes.new("GeometryNodeJoinGeometry")
    tree.links.new(gin.outputs["Size"], reroute.inputs[0])
    tree.links.new(reroute.outputs[0], comb.inputs["X"])
    tree.links.new(comb.outputs[0], cube.inputs["Size"])
    dead = tree.links.new(gin.outputs["Size"], comb.inputs["Y"])
    dead.is_muted = True
    tree.links.new(cube.outputs["Mesh"], reroute2.inputs[0])
    tree.links.new(reroute2.outputs[0], muted.inputs["Geometry"])
    tree.links.new(muted.outputs["Geometry"], join.inputs[0])
    tree.links.new(join.outputs[0], gout.inputs[0])
    mesh = bpy.data.meshes.new("m")
    obj = bpy.data.objects.new("Thing", mesh)
    bpy.context.scene.collection.objects.link(obj)
    mod = obj.modifiers.new("GN", "NODES")
    mod.node_group = tree
    bpy.ops.wm.save_as_mainfile(filepath=str(path))


@pytest.mark.blender
def test_import_collapses_reroutes_frames_mutes(tmp_path):
    from splat.blender.importer import import_blend

    path = tmp_path / "features.blend"
    _build_features_blend(path)
    result = import_blend(path)
    tree = result.graph["trees"]["Main"]
    types = {n["type"] for n in tree["nodes"].values()}
    assert types == {
        "NodeGroupInput", "NodeGroupOutput", "GeometryNodeMeshCube", "ShaderNodeCombineXYZ",
        "GeometryNodeJoinGeometry",
    }
    links = {(l["from_node"], l["from_socket"], l["to_node"], l["to_socket"]) for l in tree["links"]}
    assert links == {
        ("Group Input", "Size", "Combine XYZ", "X"),
        ("Combine XYZ", "Vector", "Box", "Size"),
        ("Box", "Mesh", "Join Geometry", "Geometry"),
        ("Join Geometry", "Geometry", "Group Output", "Geometry"),
    }
    # the muted link's target keeps its own value
    assert tree["nodes"]["Combine XYZ"]["inputs"]["Y"] == 0.0
    assert result.object_name == "Thing"
    assert result.param_spec["params"]["Size"]["default"] == 2.0
    # and Blender agrees: the reroutes pass through, the muted Transform passes its geometry on
    import numpy as np
    import torch

    from splat.blender.evaluate import BlenderProgram
    from splat.geonodes import evaluate_graph, load_graph

    ref = BlenderProgram.open(path).evaluate({"Size": 1.3})
    mesh = evaluate_graph(load_graph(result.graph), {"Size": torch.tensor([1.3])}, batch_size=1,
                          dtype=torch.float64).realize()
    ours = mesh.verts[0][mesh.vert_active[0]].numpy()
    assert ref.polygons == int(mesh.n_polys[0]) == 6
    assert np.allclose(np.sort(ours, axis=0), np.sort(ref.vertices, axis=0), atol=1e-6)
    assert np.allclose(np.abs(ref.vertices).max(axis=0), [0.65, 0.0, 0.0], atol=1e-6)  # Y link muted


@pytest.mark.blender
def test_import_bad_inputs(tmp_path):
    import bpy

    from splat.blender.importer import import_blend

    with pytest.raises(SplatError, match="no such") as err:
        import_blend(tmp_path / "missing.blend")
    assert "missing.blend" in str(err.value)

    junk = tmp_path / "junk.blend"
    junk.write_text("not a blend file")
    with pytest.raises(SplatError, match="cannot open") as err:
        import_blend(junk)
    assert err.value.file == str(junk)

    # a .blend with a plain mesh, no geometry-nodes modifier
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.collection.objects.link(bpy.data.objects.new("Plain", bpy.data.meshes.new("m")))
    plain = tmp_path / "plain.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(plain))
    with pytest.raises(SplatError, match="no object with a geometry-nodes modifier"):
        import_blend(plain)

    # an unsupported node type, named with its tree and node
    features = tmp_path / "features.blend"
    _build_features_blend(features)
    tree = bpy.data.node_groups["Main"]
    odd = tree.nodes.new("GeometryNodeSetPosition")
    odd.name = "Odd One"
    bad = tmp_path / "unsupported.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(bad))
    with pytest.raises(SplatError, match="unsupported node type GeometryNodeSetPosition") as err:
        import_blend(bad)
    assert err.value.field == "trees.Main.nodes.Odd One"
    assert err.value.file == str(bad)

    # an unknown object name
    with pytest.raises(SplatError, match="no object named"):
        import_blend(features, object_name="Nope")


@pytest.mark.blender
def test_node_table_matches_evaluator_registry():
    # the importer/exporter's node types and properties are exactly what splat.geonodes evaluates
    from splat.blender.importer import NODE_PROPERTIES
    from splat.geonodes.format import GROUP_TYPES
    from splat.geonodes.spec import REGISTRY

    assert set(NODE_PROPERTIES) == set(REGISTRY) | (set(GROUP_TYPES) - {"NodeFrame", "NodeReroute"})
    for node_type, spec in REGISTRY.items():
        assert set(NODE_PROPERTIES[node_type]) == set(spec.properties), node_type


@pytest.mark.blender
def test_import_rejects_operations_the_evaluator_lacks(tmp_path):
    import bpy

    from splat.blender.importer import import_blend

    _build_features_blend(tmp_path / "f.blend")
    math = bpy.data.node_groups["Main"].nodes.new("ShaderNodeMath")
    math.name = "Snap"
    math.operation = "SNAP"
    bad = tmp_path / "snap.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(bad))
    with pytest.raises(SplatError, match="SNAP") as err:
        import_blend(bad)
    assert err.value.field == "trees.Main.nodes.Snap.properties.operation"
    assert err.value.file == str(bad)
