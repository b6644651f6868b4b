"""Node-by-node parity with Blender: every node type and operation our evaluator supports, on small
graphs built here, evaluated by Blender (splat.blender.evaluate) and by splat.geonodes.

Value nodes are probed through single-vertex Mesh Lines (one point per probed value, joined in order,
so the vertex arrays compare element-wise: Blender's join order is our link order); primitives and
geometry nodes through vertex sets and polygon/triangle counts. Inputs are random (seeded) plus
hand-picked edge cases (division by zero, negative bases, .5 rounding, exact comparisons), and integer
topology inputs differ between batch elements (heterogeneous batching).

Budget: ~10 s.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.blender

FLOATS = ("A", "B", "C")
MATH_OPS = (
    "ADD", "SUBTRACT", "MULTIPLY", "DIVIDE", "MULTIPLY_ADD", "POWER", "SQRT", "ABSOLUTE", "MINIMUM",
    "MAXIMUM", "LESS_THAN", "GREATER_THAN", "SIGN", "COMPARE", "ROUND", "FLOOR", "CEIL", "TRUNC",
    "FRACT", "MODULO", "SINE", "COSINE", "TANGENT", "RADIANS", "DEGREES",
)
VECTOR_OPS = (
    "ADD", "SUBTRACT", "MULTIPLY", "DIVIDE", "MULTIPLY_ADD", "CROSS_PRODUCT", "DOT_PRODUCT", "DISTANCE",
    "LENGTH", "SCALE", "NORMALIZE", "ABSOLUTE", "MINIMUM", "MAXIMUM", "FLOOR", "CEIL",
)
# hand-picked rows (A, B, C) added to the random ones
EDGE_ROWS = [
    (0.0, 0.0, 0.0), (1.5, 0.0, 0.1), (-1.5, 0.5, 0.0), (-2.0, 3.0, 0.0), (2.5, -2.5, 0.0),
    (-2.5, 2.5, 0.5), (0.7, 0.7, 0.0), (0.7, 0.70001, 0.0), (-0.3, 0.3, 1e-6), (1.0, -1.0, -0.5),
]


class Builder:
    """A one-tree graph under construction (main tree "Main")."""

    def __init__(self, inputs):
        self.nodes = {"Group Input": {"type": "NodeGroupInput"}, "Group Output": {"type": "NodeGroupOutput"},
                      "Join": {"type": "GeometryNodeJoinGeometry"}}
        self.links = []
        self.inputs = inputs
        self.n = 0

    def node(self, type_, properties=None, inputs=None):
        self.n += 1
        name = f"{type_.removeprefix('GeometryNode').removeprefix('ShaderNode')}.{self.n:03d}"
        self.nodes[name] = {"type": type_, **({"properties": properties} if properties else {}),
                            **({"inputs": inputs} if inputs else {})}
        return name

    def link(self, a, sa, b, sb):
        self.links.append({"from_node": a, "from_socket": sa, "to_node": b, "to_socket": sb})

    def point(self, vector_source):
        """A one-vertex Mesh Line at the vector output ``(node, socket)``, joined to the output."""
        line = self.node("GeometryNodeMeshLine", {"mode": "OFFSET", "count_mode": "TOTAL"}, {"Count": 1})
        self.link(*vector_source, line, "Start Location")
        self.link(line, "Mesh", "Join", "Geometry")

    def value_point(self, value_source, y):
        comb = self.node("ShaderNodeCombineXYZ", inputs={"Y": float(y), "Z": 0.0})
        self.link(*value_source, comb, "X")
        self.point((comb, "Vector"))

    def out(self, geometry_source):
        self.link(*geometry_source, "Join", "Geometry")

    def graph(self):
        links = self.links + [{"from_node": "Join", "from_socket": "Geometry", "to_node": "Group Output",
                               "to_socket": "Geometry"}]
        return {"format": "splat.geonodes/1", "main": "Main", "trees": {"Main": {
            "interface": {"inputs": self.inputs, "outputs": [{"name": "Geometry", "type": "GEOMETRY"}]},
            "nodes": self.nodes, "links": links}}}


def _float_inputs():
    return [{"name": n, "type": "FLOAT", "default": 0.0} for n in FLOATS]


def _random_floats(n, gen, edge=True):
    rows = torch.rand(n, 3, generator=gen, dtype=torch.float64) * 4 - 2
    if edge:
        rows = torch.cat([torch.tensor(EDGE_ROWS, dtype=torch.float64), rows])
    return {name: rows[:, k] for k, name in enumerate(FLOATS)}


def _compare(graph, batch, *, ordered, tol=1e-5, relative=False):
    """Evaluate ``graph`` for every row of ``batch`` in Blender and ours; assert they agree."""
    from scipy.spatial import cKDTree

    from splat.blender.evaluate import BlenderProgram
    from splat.geonodes import evaluate_graph, load_graph

    size = len(next(iter(batch.values())))
    mesh = evaluate_graph(load_graph(graph), batch, batch_size=size, dtype=torch.float64).realize()
    blender = BlenderProgram.from_graph(graph)
    worst = 0.0
    for b in range(size):
        values = {k: v[b].item() for k, v in batch.items()}
        ref = blender.evaluate(values)
        ours = mesh.verts[b][mesh.vert_active[b]].detach().numpy()
        where = f"set {b} {values}"
        assert len(ours) == len(ref.vertices), f"vertex count {len(ours)} != {len(ref.vertices)} at {where}"
        assert int(mesh.n_polys[b]) == ref.polygons, f"polygons {int(mesh.n_polys[b])} != {ref.polygons} at {where}"
        assert int(mesh.face_active[b].sum()) == ref.triangles, f"triangles differ at {where}"
        if len(ours) == 0:
            continue
        if ordered:
            err = np.abs(ours - ref.vertices)
            if relative:
                err = err / np.maximum(1.0, np.abs(ref.vertices))
            i = np.unravel_index(err.argmax(), err.shape)
            assert err[i] < tol, f"vertex {i[0]}: ours {ours[i[0]]} blender {ref.vertices[i[0]]} at {where}"
            worst = max(worst, float(err.max()))
        else:
            d = max(cKDTree(ours).query(ref.vertices)[0].max(), cKDTree(ref.vertices).query(ours)[0].max())
            assert d < tol, f"nn distance {d} at {where}"
            worst = max(worst, float(d))
    return worst


def test_math_operations():
    b = Builder(_float_inputs())
    for k, op in enumerate(MATH_OPS):
        m = b.node("ShaderNodeMath", {"operation": op, "use_clamp": False})
        for j, name in enumerate(FLOATS):
            b.link("Group Input", name, m, f"Value[{j}]")
        b.value_point((m, "Value"), k)
    clamp = b.node("ShaderNodeMath", {"operation": "MULTIPLY", "use_clamp": True})
    b.link("Group Input", "A", clamp, "Value[0]")
    b.link("Group Input", "B", clamp, "Value[1]")
    b.value_point((clamp, "Value"), -1)
    # float32 Blender vs float64 ours: relative tolerance (TANGENT, DEGREES, POWER reach large values)
    _compare(b.graph(), _random_floats(40, torch.Generator().manual_seed(0)), ordered=True, relative=True)


def test_vector_math_combine_separate():
    b = Builder(_float_inputs())
    vecs = []
    for order in (("A", "B", "C"), ("B", "C", "A"), ("C", "A", "B")):
        comb = b.node("ShaderNodeCombineXYZ")
        for axis, name in zip("XYZ", order):
            b.link("Group Input", name, comb, axis)
        vecs.append(comb)
    for k, op in enumerate(VECTOR_OPS):
        vm = b.node("ShaderNodeVectorMath", {"operation": op})
        for j, comb in enumerate(vecs):
            b.link(comb, "Vector", vm, f"Vector[{j}]")
        b.link("Group Input", "A", vm, "Scale")
        b.point((vm, "Vector"))
        b.value_point((vm, "Value"), 10 + k)
    sep = b.node("ShaderNodeSeparateXYZ")
    b.link(vecs[1], "Vector", sep, "Vector")
    for k, axis in enumerate("XYZ"):
        b.value_point((sep, axis), 40 + k)
    _compare(b.graph(), _random_floats(40, torch.Generator().manual_seed(1)), ordered=True, relative=True)


def test_value_inputs_switches_and_conversions():
    inputs = _float_inputs() + [{"name": "S", "type": "BOOLEAN", "default": False}]
    b = Builder(inputs)
    b.value_point((b.node("ShaderNodeValue", {"value": 0.25}), "Value"), 0)
    b.value_point((b.node("FunctionNodeInputInt", {"integer": -3}), "Integer"), 1)
    b.value_point((b.node("FunctionNodeInputBool", {"boolean": True}), "Boolean"), 2)
    # float -> int / bool conversions on links, through INT and BOOLEAN switches
    for k, (kind, scale) in enumerate((("INT", 3.0), ("BOOLEAN", 1.0), ("FLOAT", 1.0))):
        m = b.node("ShaderNodeMath", {"operation": "MULTIPLY", "use_clamp": False}, {"Value[1]": scale})
        b.link("Group Input", "A", m, "Value[0]")
        sw = b.node("GeometryNodeSwitch", {"input_type": kind})
        b.link("Group Input", "S", sw, "Switch")
        b.link(m, "Value", sw, "True")
        b.link("Group Input", "B", sw, "False")
        b.value_point((sw, "Output"), 3 + k)
    for k, kind in enumerate(("VECTOR", "ROTATION")):
        comb = b.node("ShaderNodeCombineXYZ")
        b.link("Group Input", "A", comb, "X")
        b.link("Group Input", "C", comb, "Z")
        sw = b.node("GeometryNodeSwitch", {"input_type": kind}, {"False": [0.5, -0.5, 0.25]})
        b.link("Group Input", "S", sw, "Switch")
        b.link(comb, "Vector", sw, "True")
        b.point((sw, "Output"))
    batch = _random_floats(40, torch.Generator().manual_seed(2))
    batch["S"] = torch.arange(len(batch["A"])) % 2 == 0
    _compare(b.graph(), batch, ordered=True)


PRIMITIVES = {
    # name: (node type, properties, int inputs {socket: (low, high)}, float inputs {socket: (offset, FLOAT name)})
    "cube": ("GeometryNodeMeshCube", {}, {"Vertices X": (2, 4), "Vertices Y": (2, 3), "Vertices Z": (2, 4)}),
    "cylinder_ngon": ("GeometryNodeMeshCylinder", {"fill_type": "NGON"},
                      {"Vertices": (3, 9), "Side Segments": (1, 3), "Fill Segments": (1, 2)}),
    "cylinder_none": ("GeometryNodeMeshCylinder", {"fill_type": "NONE"},
                      {"Vertices": (3, 9), "Side Segments": (1, 3), "Fill Segments": (1, 2)}),
    "cylinder_fan": ("GeometryNodeMeshCylinder", {"fill_type": "TRIANGLE_FAN"},
                     {"Vertices": (3, 9), "Side Segments": (1, 3), "Fill Segments": (1, 3)}),
    "cone_ngon": ("GeometryNodeMeshCone", {"fill_type": "NGON"},
                  {"Vertices": (3, 9), "Side Segments": (1, 3), "Fill Segments": (1, 2)}),
    "cone_fan": ("GeometryNodeMeshCone", {"fill_type": "TRIANGLE_FAN"},
                 {"Vertices": (3, 9), "Side Segments": (1, 3), "Fill Segments": (1, 3)}),
    "uv_sphere": ("GeometryNodeMeshUVSphere", {}, {"Segments": (3, 9), "Rings": (2, 6)}),
    "grid": ("GeometryNodeMeshGrid", {}, {"Vertices X": (2, 5), "Vertices Y": (2, 5)}),
    "line_offset": ("GeometryNodeMeshLine", {"mode": "OFFSET", "count_mode": "TOTAL"}, {"Count": (1, 6)}),
    "line_end_points": ("GeometryNodeMeshLine", {"mode": "END_POINTS", "count_mode": "TOTAL"}, {"Count": (1, 6)}),
}
# float sockets of each primitive, fed from |A|+0.1 etc. (positive sizes), or raw for vectors
FLOAT_SOCKETS = {
    "GeometryNodeMeshCube": {"Size": "vector"},
    "GeometryNodeMeshCylinder": {"Radius": "A", "Depth": "B"},
    "GeometryNodeMeshCone": {"Radius Top": "C0", "Radius Bottom": "A", "Depth": "B"},
    "GeometryNodeMeshUVSphere": {"Radius": "A"},
    "GeometryNodeMeshGrid": {"Size X": "A", "Size Y": "B"},
    "GeometryNodeMeshLine": {"Start Location": "raw", "Offset": "raw"},
}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitives_and_transforms(name):
    node_type, props, ints = PRIMITIVES[name]
    int_names = [f"N{k}" for k in range(len(ints))]
    inputs = _float_inputs() + [{"name": n, "type": "INT", "default": 2} for n in int_names]
    b = Builder(inputs)
    prim = b.node(node_type, props)
    for n, socket in zip(int_names, ints):
        b.link("Group Input", n, prim, socket)
    positive = {}
    for f in FLOATS:  # |f| + 0.1
        a = b.node("ShaderNodeMath", {"operation": "ABSOLUTE", "use_clamp": False})
        b.link("Group Input", f, a, "Value[0]")
        p = b.node("ShaderNodeMath", {"operation": "ADD", "use_clamp": False}, {"Value[1]": 0.1})
        b.link(a, "Value", p, "Value[0]")
        positive[f] = p
    raw = b.node("ShaderNodeCombineXYZ")
    size = b.node("ShaderNodeCombineXYZ")
    for axis, f in zip("XYZ", FLOATS):
        b.link("Group Input", f, raw, axis)
        b.link(positive[f], "Value", size, axis)
    for socket, src in FLOAT_SOCKETS[node_type].items():
        if src == "vector":
            b.link(size, "Vector", prim, socket)
        elif src == "raw":
            b.link(raw, "Vector", prim, socket)
        elif src == "C0":  # cone tip: radius top 0 for half of the sets (C < 0)
            mx = b.node("ShaderNodeMath", {"operation": "MAXIMUM", "use_clamp": False}, {"Value[1]": 0.0})
            b.link("Group Input", "C", mx, "Value[0]")
            b.link(mx, "Value", prim, socket)
        else:
            b.link(positive[src], "Value", prim, socket)
    # Transform with rotation, scale and translation from the inputs, then joined
    tr = b.node("GeometryNodeTransform", {"mode": "COMPONENTS"})
    b.link(prim, "Mesh", tr, "Geometry")
    b.link(raw, "Vector", tr, "Translation")
    b.link(raw, "Vector", tr, "Rotation")
    b.link(size, "Vector", tr, "Scale")
    b.out((tr, "Geometry"))
    gen = torch.Generator().manual_seed(3)
    batch = _random_floats(30, gen, edge=False)
    for n, (lo, hi) in zip(int_names, ints.values()):
        batch[n] = torch.randint(lo, hi + 1, (30,), generator=gen)
    _compare(b.graph(), batch, ordered=False)


def test_instance_on_points_and_realize():
    inputs = _float_inputs() + [{"name": "N", "type": "INT", "default": 3}]
    b = Builder(inputs)
    line = b.node("GeometryNodeMeshLine", {"mode": "OFFSET", "count_mode": "TOTAL"},
                  {"Start Location": [0.0, 0.0, 0.0]})
    b.link("Group Input", "N", line, "Count")
    off = b.node("ShaderNodeCombineXYZ", inputs={"Y": 0.5, "Z": 0.25})
    b.link("Group Input", "A", off, "X")
    b.link(off, "Vector", line, "Offset")
    cube = b.node("GeometryNodeMeshCube", inputs={"Size": [0.3, 0.2, 0.1]})
    cyl = b.node("GeometryNodeMeshCylinder", {"fill_type": "NGON"}, {"Vertices": 6, "Radius": 0.1, "Depth": 0.4})
    moved = b.node("GeometryNodeTransform", {"mode": "COMPONENTS"}, {"Translation": [0.0, 0.0, 0.5]})
    b.link(cyl, "Mesh", moved, "Geometry")
    inst_geo = b.node("GeometryNodeJoinGeometry")
    b.link(cube, "Mesh", inst_geo, "Geometry")
    b.link(moved, "Geometry", inst_geo, "Geometry")
    rot = b.node("ShaderNodeCombineXYZ")
    scale = b.node("ShaderNodeCombineXYZ", inputs={"Z": 1.5})
    for axis, f in zip("XYZ", FLOATS):
        b.link("Group Input", f, rot, axis)
    b.link("Group Input", "B", scale, "X")
    b.link("Group Input", "C", scale, "Y")
    iop = b.node("GeometryNodeInstanceOnPoints")
    b.link(line, "Mesh", iop, "Points")
    b.link(inst_geo, "Geometry", iop, "Instance")
    b.link(rot, "Vector", iop, "Rotation")
    b.link(scale, "Vector", iop, "Scale")
    outer = b.node("GeometryNodeTransform", {"mode": "COMPONENTS"}, {"Rotation": [0.3, 0.0, 0.2]})
    b.link(iop, "Instances", outer, "Geometry")
    realize = b.node("GeometryNodeRealizeInstances")
    b.link(outer, "Geometry", realize, "Geometry")
    b.out((realize, "Geometry"))
    gen = torch.Generator().manual_seed(4)
    batch = _random_floats(30, gen, edge=False)
    batch["N"] = torch.randint(0, 5, (30,), generator=gen)
    _compare(b.graph(), batch, ordered=False)


def test_nested_groups_with_repeated_interface_names():
    # a group with two outputs both named "Geometry" (as in cabinet.blend), used twice
    inner = {
        "interface": {"inputs": [{"name": "W", "type": "FLOAT", "default": 1.0}],
                      "outputs": [{"name": "Geometry", "type": "GEOMETRY"}, {"name": "Geometry", "type": "GEOMETRY"}]},
        "nodes": {
            "Group Input": {"type": "NodeGroupInput"}, "Group Output": {"type": "NodeGroupOutput"},
            "Size": {"type": "ShaderNodeCombineXYZ", "inputs": {"Y": 1.0, "Z": 0.5}},
            "Cube": {"type": "GeometryNodeMeshCube"},
            "Ball": {"type": "GeometryNodeMeshUVSphere", "inputs": {"Segments": 5, "Rings": 3, "Radius": 0.2}},
        },
        "links": [
            {"from_node": "Group Input", "from_socket": "W", "to_node": "Size", "to_socket": "X"},
            {"from_node": "Size", "from_socket": "Vector", "to_node": "Cube", "to_socket": "Size"},
            {"from_node": "Cube", "from_socket": "Mesh", "to_node": "Group Output", "to_socket": "Geometry[0]"},
            {"from_node": "Ball", "from_socket": "Mesh", "to_node": "Group Output", "to_socket": "Geometry[1]"},
        ],
    }
    b = Builder(_float_inputs())
    g1 = b.node("GeometryNodeGroup", {"node_tree": "Inner"})
    g2 = b.node("GeometryNodeGroup", {"node_tree": "Inner"}, {"W": 0.25})
    b.link("Group Input", "A", g1, "W")
    up = b.node("GeometryNodeTransform", {"mode": "COMPONENTS"}, {"Translation": [0.0, 0.0, 2.0]})
    b.link(g2, "Geometry[0]", up, "Geometry")
    b.out((g1, "Geometry[1]"))
    b.out((up, "Geometry"))
    b.out((g1, "Geometry[0]"))
    graph = b.graph()
    graph["trees"]["Inner"] = inner
    _compare(graph, _random_floats(20, torch.Generator().manual_seed(5), edge=False), ordered=False)
