"""Graph loading: every malformed input is a SplatError naming file and field; fuzzing (budget: < 15 s)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splat.errors import SplatError
from splat.geonodes import evaluate_graph, load_graph
from splat.program import PROGRAMS_DIR
from tests.geonodes_helpers import link, make_graph


def cube_graph():
    return make_graph({"Cube": {"type": "GeometryNodeMeshCube"},
                       "M": {"type": "ShaderNodeMath", "properties": {"operation": "ADD"}}},
                      [link("Cube", "Mesh", "Group Output", "Geometry"), link("Group Input", "H", "M", "Value[0]")],
                      inputs=[{"name": "H", "type": "FLOAT", "default": 0.5, "min": 0.0, "max": 1.0}])


def expect(g, field_part, msg_part=None, tmp_path=None):
    path = None
    if tmp_path is not None:
        path = tmp_path / "g.json"
        path.write_text(json.dumps(g))
    with pytest.raises(SplatError) as e:
        load_graph(path if path else g)
    assert field_part in (e.value.field or ""), str(e.value)
    if msg_part:
        assert msg_part in e.value.message, str(e.value)
    if path:
        assert e.value.file == str(path)
    return e.value


def test_valid_graph_loads_and_roundtrips():
    g = load_graph(cube_graph())
    assert g.main == "Main" and [s.name for s in g.interface] == ["H"]
    assert load_graph(g.to_dict()).trees["Main"].order == g.trees["Main"].order
    # nodes the output does not depend on are not evaluated
    assert "M" not in g.trees["Main"].order


def test_unknown_node_type(tmp_path):
    g = cube_graph()
    g["trees"]["Main"]["nodes"]["Cube"]["type"] = "GeometryNodeMeshTorus"
    expect(g, "trees.Main.nodes.Cube.type", "unknown node type", tmp_path)


def test_bad_property_value():
    g = cube_graph()
    g["trees"]["Main"]["nodes"]["M"]["properties"]["operation"] = "EXPLODE"
    expect(g, "trees.Main.nodes.M.properties.operation", "bad value")
    g["trees"]["Main"]["nodes"]["M"]["properties"] = {"operation": "ADD", "colour": 1}
    expect(g, "trees.Main.nodes.M.properties.colour", "unknown property")


def test_unknown_socket_and_bad_value_type():
    g = cube_graph()
    g["trees"]["Main"]["nodes"]["Cube"]["inputs"] = {"Vertices W": 3}
    expect(g, "trees.Main.nodes.Cube.inputs.Vertices W", "unknown input socket")
    g["trees"]["Main"]["nodes"]["Cube"]["inputs"] = {"Vertices X": 2.5}
    expect(g, "trees.Main.nodes.Cube.inputs.Vertices X", "integer")
    g["trees"]["Main"]["nodes"]["Cube"]["inputs"] = {"Size": [1.0, float("nan"), 1.0]}
    expect(g, "trees.Main.nodes.Cube.inputs.Size", "finite")
    g = cube_graph()
    g["trees"]["Main"]["links"].append(link("Cube", "Meshes", "Group Output", "Geometry"))
    expect(g, "trees.Main.links[2].from_socket", "no output")


def test_dangling_link():
    g = cube_graph()
    g["trees"]["Main"]["links"].append(link("Ghost", "Value", "M", "Value[1]"))
    expect(g, "trees.Main.links[2].from_node", "unknown node")


def test_type_mismatch():
    g = cube_graph()
    g["trees"]["Main"]["links"].append(link("Cube", "Mesh", "M", "Value[1]"))
    expect(g, "trees.Main.links[2]", "cannot link GEOMETRY")


def test_two_links_into_single_input():
    g = cube_graph()
    g["trees"]["Main"]["links"].append(link("Group Input", "H", "M", "Value[0]"))
    expect(g, "trees.Main.links[2]", "takes one link")


def test_cycle():
    g = cube_graph()
    g["trees"]["Main"]["nodes"]["N"] = {"type": "ShaderNodeMath"}
    g["trees"]["Main"]["links"] += [link("M", "Value", "N", "Value[0]"), link("N", "Value", "M", "Value[1]")]
    expect(g, "trees.Main.nodes.", "cycle")


def test_recursive_groups():
    g = cube_graph()
    g["trees"]["Sub"] = {"interface": {"inputs": [], "outputs": [{"name": "Geometry", "type": "GEOMETRY"}]},
                         "nodes": {"Again": {"type": "GeometryNodeGroup", "properties": {"node_tree": "Sub"}}},
                         "links": []}
    g["trees"]["Main"]["nodes"]["G"] = {"type": "GeometryNodeGroup", "properties": {"node_tree": "Sub"}}
    expect(g, "trees.Sub", "recursive")
    g["trees"]["Main"]["nodes"]["G"]["properties"]["node_tree"] = "Nowhere"
    expect(g, "trees.Main.nodes.G.properties.node_tree", "unknown tree")


def test_top_level_errors(tmp_path):
    expect({"format": "other"}, "format")
    g = cube_graph()
    g["main"] = "Chair"
    expect(g, "main")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SplatError, match="not valid JSON") as e:
        load_graph(bad)
    assert e.value.file == str(bad)
    with pytest.raises(SplatError, match="cannot read"):
        load_graph(tmp_path / "missing.json")


def test_interface_errors():
    g = cube_graph()
    g["trees"]["Main"]["interface"]["inputs"][0]["type"] = "COLOR"
    expect(g, "trees.Main.interface.inputs[0].type")
    g = cube_graph()
    g["trees"]["Main"]["interface"]["inputs"].append({"name": "H", "type": "FLOAT"})
    expect(g, "trees.Main.interface.inputs[1].name", "unique")


def test_evaluation_input_errors():
    g = load_graph(cube_graph())
    with pytest.raises(SplatError, match="unknown program input"):
        evaluate_graph(g, {"Height": torch.ones(1)}, batch_size=1)
    with pytest.raises(SplatError, match="shape"):
        evaluate_graph(g, {"H": torch.ones(3)}, batch_size=2)
    with pytest.raises(SplatError, match="finite"):
        evaluate_graph(g, {"H": torch.tensor([float("inf")])}, batch_size=1)


# ---- fuzzing ------------------------------------------------------------------------------------------

SEED_GRAPH = json.loads((PROGRAMS_DIR / "table" / "graph.json").read_text())
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(-5, 5), st.just(float("nan")),
                     st.sampled_from(["ADD", "GEOMETRY", "Mesh", "Value[0]", "Table", "NGON", "", "Group Input",
                                      "GeometryNodeMeshCube", "FLOAT", "INT"]))
_JSON = st.recursive(_SCALARS, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=5), c, max_size=3)),
                     max_leaves=8)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


_ALL_PATHS = list(_paths(SEED_GRAPH))


def _mutate(g, path, action, value):
    if not path:
        return value
    parent = g
    for k in path[:-1]:
        parent = parent[k]
    k = path[-1]
    if action == "delete":
        del parent[k]
    elif action == "replace":
        parent[k] = value
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[k]))
    elif action == "rename" and isinstance(parent, dict):
        parent[str(value)] = parent.pop(k)
    return g


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_ALL_PATHS) - 1),
                          st.sampled_from(["delete", "replace", "duplicate", "rename"]), _JSON), min_size=1, max_size=3))
def test_fuzzed_graphs_raise_only_splat_error(mutations):
    g = copy.deepcopy(SEED_GRAPH)
    for idx, action, value in mutations:
        valid = set(_paths(g))
        path = _ALL_PATHS[idx]
        if path not in valid:
            continue
        g = _mutate(g, path, action, value)
    try:
        graph = load_graph(g)
    except SplatError:
        return
    try:
        evaluate_graph(graph, {}, batch_size=2).realize()
    except SplatError:
        pass


@settings(max_examples=40, deadline=None)
@given(_JSON)
def test_arbitrary_json_raises_only_splat_error(obj):
    with pytest.raises(SplatError):
        load_graph(obj)
