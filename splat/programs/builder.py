"""A small Python builder for ``splat.geonodes/1`` graphs, used by build_programs.py.

Each node method returns a socket reference ``Ref(node, socket)``; arguments are either references
(linked) or constants (written as the node's unlinked input values). Not imported by the package:
programs are committed as JSON and load without this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Ref:
    tree: "Tree"
    node: str
    socket: str

    # arithmetic sugar (ShaderNodeMath)
    def __add__(self, o): return self.tree.math("ADD", self, o)
    def __radd__(self, o): return self.tree.math("ADD", o, self)
    def __sub__(self, o): return self.tree.math("SUBTRACT", self, o)
    def __rsub__(self, o): return self.tree.math("SUBTRACT", o, self)
    def __mul__(self, o): return self.tree.math("MULTIPLY", self, o)
    def __rmul__(self, o): return self.tree.math("MULTIPLY", o, self)
    def __truediv__(self, o): return self.tree.math("DIVIDE", self, o)
    def __neg__(self): return self.tree.math("MULTIPLY", self, -1.0)


@dataclass
class Tree:
    name: str
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    nodes: dict = field(default_factory=dict)
    links: list = field(default_factory=list)
    counter: dict = field(default_factory=dict)

    def __post_init__(self):
        self.nodes["Group Input"] = {"type": "NodeGroupInput"}
        self.nodes["Group Output"] = {"type": "NodeGroupOutput"}

    # ---- interface ----
    def input(self, name: str, type_: str, default: Any = None, lo=None, hi=None) -> Ref:
        d: dict[str, Any] = {"name": name, "type": type_}
        if default is not None:
            d["default"] = list(default) if isinstance(default, tuple) else default
        if lo is not None:
            d["min"], d["max"] = lo, hi
        self.inputs.append(d)
        return Ref(self, "Group Input", name)

    def output(self, ref: Ref, name: str = "Geometry", type_: str = "GEOMETRY") -> None:
        self.outputs.append({"name": name, "type": type_})
        self._link(ref, "Group Output", name)

    # ---- plumbing ----
    def _name(self, base: str, name: str | None) -> str:
        if name is not None:
            assert name not in self.nodes, name
            return name
        i = self.counter.get(base, 0)
        self.counter[base] = i + 1
        return base if i == 0 else f"{base}.{i:03d}"

    def _link(self, ref: Ref, node: str, socket: str) -> None:
        assert ref.tree is self, "link across trees"
        self.links.append({"from_node": ref.node, "from_socket": ref.socket, "to_node": node, "to_socket": socket})

    def node(self, type_: str, base: str, name: str | None = None, properties: dict | None = None,
             **inputs) -> str:
        n = self._name(base, name)
        d: dict[str, Any] = {"type": type_}
        if properties:
            d["properties"] = properties
        values = {}
        for key, v in inputs.items():
            sock = key.replace("__", " ").replace("_", " ")
            sock = _SOCKET_KEYS.get(sock, sock)
            if isinstance(v, Ref):
                self._link(v, n, sock)
            elif isinstance(v, list) and v and isinstance(v[0], Ref):
                for r in v:
                    self._link(r, n, sock)
            elif v is not None:
                values[sock] = list(v) if isinstance(v, tuple) else v
        if values:
            d["inputs"] = values
        self.nodes[n] = d
        return n

    # ---- values ----
    def math(self, op: str, a, b=0.0, c=0.0, name=None) -> Ref:
        n = self.node("ShaderNodeMath", "Math", name, {"operation": op, "use_clamp": False},
                      Value0=a, Value1=b, Value2=c)
        return Ref(self, n, "Value")

    def vec(self, x=0.0, y=0.0, z=0.0, name=None) -> Ref:
        return Ref(self, self.node("ShaderNodeCombineXYZ", "Combine XYZ", name, X=x, Y=y, Z=z), "Vector")

    def switch(self, type_: str, cond, false, true, name=None) -> Ref:
        return Ref(self, self.node("GeometryNodeSwitch", "Switch", name, {"input_type": type_},
                                   Switch=cond, False_=false, True_=true), "Output")

    def eq(self, a, value: float) -> Ref:
        return self.math("COMPARE", a, float(value), 0.0)

    # ---- geometry ----
    def cube(self, size, name=None, vertices=(2, 2, 2)) -> Ref:
        return Ref(self, self.node("GeometryNodeMeshCube", "Cube", name, Size=size, Vertices__X=vertices[0],
                                   Vertices__Y=vertices[1], Vertices__Z=vertices[2]), "Mesh")

    def cylinder(self, radius, depth, vertices=24, name=None, fill="NGON") -> Ref:
        return Ref(self, self.node("GeometryNodeMeshCylinder", "Cylinder", name, {"fill_type": fill},
                                   Vertices=vertices, Radius=radius, Depth=depth), "Mesh")

    def grid(self, size_x, size_y, vx=2, vy=2, name=None) -> Ref:
        return Ref(self, self.node("GeometryNodeMeshGrid", "Grid", name, Size__X=size_x, Size__Y=size_y,
                                   Vertices__X=vx, Vertices__Y=vy), "Mesh")

    def line(self, count, start, offset, mode="OFFSET", name=None) -> Ref:
        return Ref(self, self.node("GeometryNodeMeshLine", "Mesh Line", name, {"mode": mode, "count_mode": "TOTAL"},
                                   Count=count, Start__Location=start, Offset=offset), "Mesh")

    def transform(self, geo, translation=None, rotation=None, scale=None, name=None) -> Ref:
        return Ref(self, self.node("GeometryNodeTransform", "Transform", name, {"mode": "COMPONENTS"},
                                   Geometry=geo, Translation=translation, Rotation=rotation, Scale=scale), "Geometry")

    def join(self, *geos, name=None) -> Ref:
        return Ref(self, self.node("GeometryNodeJoinGeometry", "Join Geometry", name, Geometry=list(geos)), "Geometry")

    def instance(self, points, instance, rotation=None, scale=None, name=None) -> Ref:
        return Ref(self, self.node("GeometryNodeInstanceOnPoints", "Instance on Points", name, Points=points,
                                   Instance=instance, Rotation=rotation, Scale=scale), "Instances")

    def realize(self, geo, name=None) -> Ref:
        return Ref(self, self.node("GeometryNodeRealizeInstances", "Realize Instances", name, Geometry=geo), "Geometry")

    def group(self, tree: "Tree", name=None, **inputs) -> str:
        return self.node("GeometryNodeGroup", "Group", name, {"node_tree": tree.name}, **inputs)

    def to_dict(self) -> dict:
        return {"interface": {"inputs": self.inputs, "outputs": self.outputs}, "nodes": self.nodes,
                "links": self.links}


_SOCKET_KEYS = {"Value0": "Value[0]", "Value1": "Value[1]", "Value2": "Value[2]", "False ": "False",
                "True ": "True"}


def graph(main: Tree, *others: Tree) -> dict:
    return {"format": "splat.geonodes/1", "main": main.name,
            "trees": {t.name: t.to_dict() for t in (main, *others)}}
