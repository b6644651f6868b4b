"""Tiny graph-dict builders shared by the geonodes tests (not a test module)."""

from __future__ import annotations


def link(a, sa, b, sb):
    return {"from_node": a, "from_socket": sa, "to_node": b, "to_socket": sb}


def make_graph(nodes: dict, links: list, inputs: list | None = None, trees: dict | None = None,
               out_type: str = "GEOMETRY") -> dict:
    """A one-tree graph (plus optional extra trees); nodes get Group Input/Output added."""
    nodes = {"Group Input": {"type": "NodeGroupInput"}, "Group Output": {"type": "NodeGroupOutput"}, **nodes}
    main = {"interface": {"inputs": inputs or [], "outputs": [{"name": "Geometry", "type": "GEOMETRY"}]},
            "nodes": nodes, "links": links}
    return {"format": "splat.geonodes/1", "main": "Main", "trees": {"Main": main, **(trees or {})}}


def probe_graph(value_nodes: dict, value_links: list, source: tuple[str, str], inputs: list | None = None) -> dict:
    """Route a FLOAT value into a cube's X size so tests can read it back from the vertices."""
    nodes = {**value_nodes, "XYZ": {"type": "ShaderNodeCombineXYZ", "inputs": {"Y": 1.0, "Z": 1.0}},
             "Cube": {"type": "GeometryNodeMeshCube"}}
    links = value_links + [link(source[0], source[1], "XYZ", "X"), link("XYZ", "Vector", "Cube", "Size"),
                           link("Cube", "Mesh", "Group Output", "Geometry")]
    return make_graph(nodes, links, inputs)
