"""Import a .blend geometry-nodes program into our graph JSON (docs/graph_format.md).

The object's geometry-nodes modifier names the main tree; every tree reachable from it through Group
nodes is written, with its interface (types, defaults, min/max), its nodes (type, properties, unlinked
input values) and its links by node and socket *name* (``Name[k]`` for repeated names). Frames are
dropped, reroutes and muted links collapsed. The parameter-space skeleton lists the main tree's inputs
with the modifier's current values as defaults (the interface defaults of the .blend files we meet are
placeholders such as 0.0, the modifier holds the values the author meant).

Socket access goes by ``socket.name`` / ``socket.type`` and ``interface.items_tree``
(``item_type``, ``in_out``, ``socket_type``), never by identifiers, so bpy 4.x and 5.x give the same JSON.

Convention: floats are written as the shortest decimal that round-trips Blender's float32
(0.6, not 0.6000000238418579), so import -> export -> import is a fixed point.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from splat.blender import new_session, require_bpy
from splat.errors import SplatError

GRAPH_FORMAT = "splat.geonodes/1"

# Node types we read and write, with the bpy attribute names of their properties (docs/graph_format.md).
# "value" of ShaderNodeValue is its output's default_value (it has no property of that name in bpy).
NODE_PROPERTIES: dict[str, tuple[str, ...]] = {
    "NodeGroupInput": (),
    "NodeGroupOutput": (),
    "GeometryNodeGroup": ("node_tree",),
    "ShaderNodeMath": ("operation", "use_clamp"),
    "ShaderNodeVectorMath": ("operation",),
    "ShaderNodeCombineXYZ": (),
    "ShaderNodeSeparateXYZ": (),
    "ShaderNodeValue": ("value",),
    "FunctionNodeInputInt": ("integer",),
    "FunctionNodeInputBool": ("boolean",),
    "GeometryNodeSwitch": ("input_type",),
    "GeometryNodeMeshCube": (),
    "GeometryNodeMeshCylinder": ("fill_type",),
    "GeometryNodeMeshCone": ("fill_type",),
    "GeometryNodeMeshUVSphere": (),
    "GeometryNodeMeshGrid": (),
    "GeometryNodeMeshLine": ("mode", "count_mode"),
    "GeometryNodeTransform": ("mode",),
    "GeometryNodeJoinGeometry": (),
    "GeometryNodeInstanceOnPoints": (),
    "GeometryNodeRealizeInstances": (),
}
# Properties that older bpy lacks, with the value that reproduces the old behaviour.
PROPERTY_FALLBACKS: dict[tuple[str, str], Any] = {("GeometryNodeTransform", "mode"): "COMPONENTS"}
IGNORED_NODES = ("NodeFrame",)
PASS_THROUGH_NODES = ("NodeReroute",)

# Interface socket class -> our type. Subtyped classes (NodeSocketFloatDistance) map by prefix.
INTERFACE_TYPES = (
    ("NodeSocketFloat", "FLOAT"),
    ("NodeSocketInt", "INT"),
    ("NodeSocketBool", "BOOLEAN"),
    ("NodeSocketVector", "VECTOR"),
    ("NodeSocketRotation", "ROTATION"),
    ("NodeSocketGeometry", "GEOMETRY"),
)
SOCKET_CLASS = {ours: cls for cls, ours in INTERFACE_TYPES}
# Node socket ``.type`` -> our type.
NODE_SOCKET_TYPES = {
    "VALUE": "FLOAT",
    "INT": "INT",
    "BOOLEAN": "BOOLEAN",
    "VECTOR": "VECTOR",
    "ROTATION": "ROTATION",
    "GEOMETRY": "GEOMETRY",
}


class ImportedProgram(NamedTuple):
    """What :func:`import_blend` returns.

    graph: the program in our graph JSON format (a plain dict, ``json.dump``-able).
    param_spec: parameter-space skeleton in the ``sp_*.json`` layout, flat:
        ``{"class_name": str, "params": {name: {"type": "float"|"int"|"bool", "range": [min, max],
        "default": value}}}`` (no range for bools). Ranges are the interface's min/max, often
        meaningless (+-10000); a user tightens them and adds dependencies.
    modifier_values: the modifier's current value of every main-tree input, by interface name.
    object_name: the Blender object whose modifier was read.
    """

    graph: dict
    param_spec: dict
    modifier_values: dict
    object_name: str


# ----------------------------------------------------------------------------------------------
# helpers shared with the exporter and the evaluator


def f32(x: float) -> float:
    """The shortest decimal that round-trips float32 ``x`` (0.6000000238418579 -> 0.6)."""
    return float(repr(np.float32(x)).removeprefix("np.float32(").removesuffix(")"))


def is_virtual(socket) -> bool:
    return socket.bl_idname == "NodeSocketVirtual"


def is_unavailable(socket) -> bool:
    flag = getattr(socket, "is_unavailable", None)
    return (not socket.enabled) if flag is None else bool(flag)


def socket_keys(sockets) -> list[tuple[str, Any]]:
    """``[(key, socket)]`` for non-virtual sockets: the name, or ``Name[k]`` when the name repeats.

    k counts every socket of that name in declaration order, unavailable ones included.
    """
    real = [s for s in sockets if not is_virtual(s)]
    counts: dict[str, int] = {}
    for s in real:
        counts[s.name] = counts.get(s.name, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for s in real:
        if counts[s.name] > 1:
            k = seen.get(s.name, 0)
            seen[s.name] = k + 1
            out.append((f"{s.name}[{k}]", s))
        else:
            out.append((s.name, s))
    return out


def node_location(node) -> list[float]:
    """The node's editor position [x, y] in the tree (frames dropped, so absolute), to 0.1."""
    x, y = 0.0, 0.0
    while node is not None:  # location is relative to the parent frame
        x, y = x + node.location[0], y + node.location[1]
        node = node.parent
    return [round(x, 1) + 0.0, round(y, 1) + 0.0]


def interface_type(item) -> str | None:
    for cls, ours in INTERFACE_TYPES:
        if item.socket_type.startswith(cls):
            return ours
    return None


def interface_items(tree, in_out: str) -> list:
    return [it for it in tree.interface.items_tree if it.item_type == "SOCKET" and it.in_out == in_out]


def to_json_value(kind: str, value) -> Any:
    """A bpy socket/interface value -> JSON (float32-shortest floats, 3-lists for vectors/rotations)."""
    if kind == "FLOAT":
        return f32(value)
    if kind == "INT":
        return int(value)
    if kind == "BOOLEAN":
        return bool(value)
    if kind in ("VECTOR", "ROTATION"):
        return [f32(v) for v in tuple(value)[:3]]
    raise ValueError(kind)


@contextlib.contextmanager
def quiet_stdout():
    """Silence Blender's C-level prints ("Read blend: ...") while opening or saving files."""
    import sys

    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # pytest capture without a real fd
        yield
        return
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, fd)
        os.close(saved)


def open_blend(path: str | os.PathLike):
    """Open ``path`` in the bpy session (replacing its data); SplatError when it is not a .blend."""
    bpy = require_bpy()
    path = Path(path)
    if not path.is_file():
        raise SplatError("no such .blend file", file=path)
    new_session()
    try:
        with quiet_stdout():
            # use_scripts=False: the file's scripts never run, whatever the user's preferences say
            bpy.ops.wm.open_mainfile(filepath=str(path.resolve()), load_ui=False, use_scripts=False)
    except RuntimeError as err:
        raise SplatError(f"cannot open as a .blend file ({str(err).strip().splitlines()[-1]})", file=path) from None
    return bpy


def find_program_object(bpy, path, object_name: str | None = None):
    """The object carrying the geometry-nodes modifier, and that modifier."""
    if object_name is not None:
        obj = bpy.data.objects.get(object_name)
        if obj is None:
            raise SplatError(f"no object named {object_name!r}", file=path, field="objects")
        candidates = [obj]
    else:
        candidates = [o for o in bpy.data.objects if any(m.type == "NODES" for m in o.modifiers)]
        if not candidates:
            raise SplatError("no object with a geometry-nodes modifier", file=path, field="objects")
        if len(candidates) > 1:
            names = ", ".join(sorted(o.name for o in candidates))
            raise SplatError(f"several objects with geometry-nodes modifiers ({names}); name one", file=path, field="objects")
    obj = candidates[0]
    mods = [m for m in obj.modifiers if m.show_viewport]
    nodes_mods = [m for m in mods if m.type == "NODES"]
    if len(nodes_mods) != 1 or len(mods) != 1:
        raise SplatError(
            "the object must carry exactly one (enabled) modifier, a geometry-nodes one; found "
            + (", ".join(f"{m.name} ({m.type})" for m in mods) or "none"),
            file=path,
            field=f"objects.{obj.name}.modifiers",
        )
    mod = nodes_mods[0]
    if mod.node_group is None:
        raise SplatError("the geometry-nodes modifier has no node tree", file=path, field=f"objects.{obj.name}.modifiers.{mod.name}")
    return obj, mod


def modifier_values(mod) -> dict[str, Any]:
    """The modifier's value of every non-geometry main-tree input, by interface name."""
    out = {}
    for item in interface_items(mod.node_group, "INPUT"):
        kind = interface_type(item)
        if kind in (None, "GEOMETRY"):
            continue
        value = mod.get(item.identifier, getattr(item, "default_value", None))
        if value is None:
            continue
        if hasattr(value, "to_list"):
            value = value.to_list()
        out[item.name] = to_json_value(kind, value)
    return out


# ----------------------------------------------------------------------------------------------
# the importer proper


def import_blend(path: str | os.PathLike, *, object_name: str | None = None) -> ImportedProgram:
    """Read the geometry-nodes program of ``path`` into our graph JSON and a parameter skeleton.

    Args:
        path: a .blend file with one object carrying a geometry-nodes modifier.
        object_name: which object, when several carry one.

    Raises:
        SplatError: missing or unreadable file, no (or ambiguous) modifier, a node group linked from a
            missing library, unsupported node types (all of them at once, each with its tree and node:
            :func:`check_node_types`), an interface socket type we cannot express, a muted node whose
            bypass we cannot express, an invalid link, or anything ``splat.geonodes.load_graph``
            rejects (an operation or input value our evaluator does not support), naming the field.

    Replaces the bpy session's data (see :mod:`splat.blender`).
    """
    from splat.geonodes import load_graph

    bpy = open_blend(path)
    obj, mod = find_program_object(bpy, path, object_name)
    graph = graph_from_tree(mod.node_group, file=path)
    load_graph(graph, file=path)  # what we hand out always loads (e.g. a Math operation we lack)
    values = modifier_values(mod)
    return ImportedProgram(graph, param_skeleton(graph, values, Path(path).stem), values, obj.name)


def reachable_trees(main) -> list:
    """``main`` and every tree reachable through Group nodes, in breadth-first order."""
    order, seen, queue = [], {main.name}, [main]
    while queue:
        tree = queue.pop(0)
        order.append(tree)
        for node in tree.nodes:
            if node.bl_idname == "GeometryNodeGroup" and node.node_tree is not None and node.node_tree.name not in seen:
                seen.add(node.node_tree.name)
                queue.append(node.node_tree)
    return order


def graph_from_tree(main, *, file: str | os.PathLike | None = None) -> dict:
    """Our graph JSON for the bpy node tree ``main`` and every tree it reaches (no file I/O).

    Raises SplatError naming the reached node groups linked from a missing library, or listing every
    unsupported node of every reached tree at once (see :func:`check_node_types`).
    """
    reached = reachable_trees(main)
    missing = [t for t in reached if getattr(t, "is_missing", False)]  # placeholders of absent linked data
    if missing:
        raise SplatError(
            "linked from a library file that is missing: "
            + ", ".join(f"node group {t.name!r} ({t.library.filepath if t.library else 'unknown library'})"
                        for t in missing),
            file=file, field=f"trees.{missing[0].name}")
    check_node_types(reached, file)
    trees = {tree.name: _tree_json(tree, file) for tree in reached}
    return {"format": GRAPH_FORMAT, "main": main.name, "trees": trees}


def check_node_types(trees, file: str | os.PathLike | None = None) -> None:
    """Raise one SplatError naming every node of ``trees`` whose type we cannot express.

    Each is given as ``Type (trees.<tree>.nodes.<node>)``; frames (dropped) and reroutes (collapsed)
    are counted in the message as ignored, not errors. With a single unsupported node the error's
    field is that node (``trees.<tree>.nodes.<node>``), with several it is ``trees``.
    """
    bad: list[tuple[str, str, str]] = []  # (type, tree, node)
    ignored: dict[str, int] = {}
    for tree in trees:
        for node in tree.nodes:
            t = node.bl_idname
            if t in IGNORED_NODES or t in PASS_THROUGH_NODES:
                ignored[t] = ignored.get(t, 0) + 1
            elif t not in NODE_PROPERTIES:
                bad.append((t, tree.name, node.name))
    if not bad:
        return
    note = ""
    if ignored:
        counts = ", ".join(f"{n} {t}" for t, n in sorted(ignored.items()))
        note = f" (ignored, not errors: {counts}; frames are dropped and reroutes collapsed)"
    if len(bad) == 1:
        t, tree_name, node_name = bad[0]
        raise SplatError(f"unsupported node type {t}{note}", file=file, field=f"trees.{tree_name}.nodes.{node_name}")
    listing = "; ".join(f"{t} (trees.{tree_name}.nodes.{node_name})" for t, tree_name, node_name in bad)
    raise SplatError(f"{len(bad)} unsupported nodes ({len({b[0] for b in bad})} types; supported: "
                     f"docs/graph_format.md): {listing}{note}", file=file, field="trees")


def _interface_json(tree, file) -> dict:
    out: dict[str, list] = {"inputs": [], "outputs": []}
    for in_out, key in (("INPUT", "inputs"), ("OUTPUT", "outputs")):
        for item in interface_items(tree, in_out):
            kind = interface_type(item)
            if kind is None:
                raise SplatError(
                    f"interface socket type {item.socket_type} is not supported (supported: "
                    f"{', '.join(c for c, _ in INTERFACE_TYPES)})",
                    file=file,
                    field=f"trees.{tree.name}.interface.{key}.{item.name}",
                )
            entry: dict[str, Any] = {"name": item.name, "type": kind}
            if in_out == "INPUT" and kind != "GEOMETRY":
                entry["default"] = to_json_value(kind, item.default_value)
                if kind in ("FLOAT", "INT", "VECTOR"):
                    cast = int if kind == "INT" else f32
                    entry["min"] = cast(item.min_value)
                    entry["max"] = cast(item.max_value)
            out[key].append(entry)
    return out


def _node_properties(node, tree, file) -> dict:
    props: dict[str, Any] = {}
    for name in NODE_PROPERTIES[node.bl_idname]:
        if name == "value":  # ShaderNodeValue
            props[name] = f32(node.outputs[0].default_value)
        elif name == "node_tree":
            if node.node_tree is None:
                raise SplatError("group node without a node tree", file=file, field=f"trees.{tree.name}.nodes.{node.name}")
            props[name] = node.node_tree.name
        elif hasattr(node, name):
            value = getattr(node, name)
            props[name] = value if isinstance(value, (str, bool)) else int(value)
        elif (node.bl_idname, name) in PROPERTY_FALLBACKS:
            props[name] = PROPERTY_FALLBACKS[(node.bl_idname, name)]
    return props


def _tree_json(tree, file) -> dict:
    links = _resolved_links(tree, file)
    linked_inputs = {(l.to_socket.node.name, l.to_socket.as_pointer()) for l in links}

    nodes: dict[str, dict] = {}
    for node in tree.nodes:
        t = node.bl_idname
        if t in IGNORED_NODES or t in PASS_THROUGH_NODES or node.mute:
            continue
        entry: dict[str, Any] = {"type": t}
        props = _node_properties(node, tree, file)
        if props:
            entry["properties"] = props
        inputs = {}
        for key, sock in socket_keys(node.inputs):
            if is_unavailable(sock) or (node.name, sock.as_pointer()) in linked_inputs:
                continue
            kind = NODE_SOCKET_TYPES.get(sock.type)
            if kind is None or kind == "GEOMETRY" or not hasattr(sock, "default_value"):
                continue
            inputs[key] = to_json_value(kind, sock.default_value)
        if inputs:
            entry["inputs"] = inputs
        entry["location"] = node_location(node)
        nodes[node.name] = entry

    # Links ordered by target node (tree order), target socket (declaration order), then Blender's
    # multi-input join order: a canonical order that export preserves.
    node_rank = {name: i for i, name in enumerate(nodes)}
    out_links = []
    for link in links:
        to_node = link.to_socket.node
        from_node = link.from_socket.node
        to_keys = socket_keys(to_node.inputs)
        from_keys = socket_keys(from_node.outputs)
        to_index = next(i for i, (_, s) in enumerate(to_keys) if s == link.to_socket)
        from_key = next(k for k, s in from_keys if s == link.from_socket)
        out_links.append(
            (
                (node_rank[to_node.name], to_index, link.sort_id),
                {
                    "from_node": from_node.name,
                    "from_socket": from_key,
                    "to_node": to_node.name,
                    "to_socket": to_keys[to_index][0],
                },
            )
        )
    out_links.sort(key=lambda x: x[0])
    return {"interface": _interface_json(tree, file), "nodes": nodes, "links": [l for _, l in out_links]}


class _Link(NamedTuple):
    from_socket: Any
    to_socket: Any
    sort_id: int


def _resolved_links(tree, file) -> list[_Link]:
    """Links between real nodes: muted/unavailable links dropped, reroutes and muted nodes bypassed."""
    into: dict[int, list] = {}  # to_socket pointer -> live links
    for link in tree.links:
        if link.is_muted or is_unavailable(link.from_socket) or is_unavailable(link.to_socket):
            continue
        if is_virtual(link.from_socket) or is_virtual(link.to_socket):
            continue
        if not link.is_valid:
            raise SplatError(
                f"invalid link {link.from_node.name}.{link.from_socket.name} -> {link.to_node.name}.{link.to_socket.name} "
                "(shown red in Blender)",
                file=file,
                field=f"trees.{tree.name}.links",
            )
        into.setdefault(link.to_socket.as_pointer(), []).append(link)

    def skipped(node) -> bool:
        return node.bl_idname in PASS_THROUGH_NODES or node.mute

    def sources(socket, depth=0) -> list:
        """The real output sockets feeding input ``socket``."""
        out = []
        for link in into.get(socket.as_pointer(), []):
            src = link.from_socket
            node = src.node
            if not skipped(node):
                out.append(src)
                continue
            if depth > 256:
                raise SplatError("reroute/mute cycle", file=file, field=f"trees.{tree.name}.nodes.{node.name}")
            if node.bl_idname in PASS_THROUGH_NODES:
                upstream = [s for s in node.inputs if not is_virtual(s)][0]
            else:
                bypass = [il for il in node.internal_links if il.to_socket == src]
                if not bypass:
                    raise SplatError(
                        f"muted node output {src.name!r} has no bypass; unmute the node or remove the link",
                        file=file,
                        field=f"trees.{tree.name}.nodes.{node.name}",
                    )
                upstream = bypass[0].from_socket
            ups = sources(upstream, depth + 1)
            if not ups and node.mute and upstream.type != "GEOMETRY":
                raise SplatError(
                    "muted node bypasses an unlinked value input, which the graph format cannot express",
                    file=file,
                    field=f"trees.{tree.name}.nodes.{node.name}",
                )
            out.extend(ups)
        return out

    resolved: list[_Link] = []
    for node in tree.nodes:
        if skipped(node) or node.bl_idname in IGNORED_NODES:
            continue
        for sock in node.inputs:
            # Blender joins a multi-input socket's links from the highest multi_input_sort_id down (the
            # top link in the editor first); list them in that order, which is the join order.
            links = sorted(into.get(sock.as_pointer(), []), key=lambda l: -getattr(l, "multi_input_sort_id", 0))
            if not links:
                continue
            rank = 0
            for link in links:
                # resolve one link at a time so multi-input order is kept through reroutes
                single = {sock.as_pointer(): [link]}
                saved = into.get(sock.as_pointer())
                into.update(single)
                for src in sources(sock):
                    resolved.append(_Link(src, sock, rank))
                    rank += 1
                into[sock.as_pointer()] = saved
    return resolved


def param_skeleton(graph: dict, values: dict, class_name: str) -> dict:
    """Parameter-space skeleton (``sp_*.json`` layout, flat) for the main tree's inputs."""
    kinds = {"FLOAT": "float", "INT": "int", "BOOLEAN": "bool"}
    params: dict[str, dict] = {}
    for item in graph["trees"][graph["main"]]["interface"]["inputs"]:
        kind = kinds.get(item["type"])
        if kind is None:  # geometry / vector inputs are not searched parameters
            continue
        entry: dict[str, Any] = {"type": kind}
        if kind != "bool":
            entry["range"] = [item.get("min"), item.get("max")]
        entry["default"] = values.get(item["name"], item.get("default"))
        params[item["name"]] = entry
    return {"class_name": class_name, "params": params}
