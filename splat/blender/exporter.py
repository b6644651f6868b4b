"""Export our graph JSON (docs/graph_format.md) + parameter values to a .blend with a live modifier.

The written file holds one mesh object whose geometry-nodes modifier runs the program's main tree, with
the given parameter values set on the modifier, so a user opens it in Blender and keeps editing. Every
tree becomes a bpy node group (interface sockets with defaults/min/max), every node keeps its name,
properties and unlinked input values, links are made by socket name (``Name[k]`` rule). Modifier inputs
are set by looking up the interface item's identifier by name at run time (identifiers differ between
Blender versions). Files are written atomically (save to a temporary name, then ``os.replace``).

Convention: builds replace the bpy session's data (see :mod:`splat.blender`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from splat.blender import new_session, require_bpy
from splat.blender.importer import (
    GRAPH_FORMAT,
    NODE_PROPERTIES,
    NODE_SOCKET_TYPES,
    SOCKET_CLASS,
    interface_items,
    interface_type,
    is_unavailable,
    quiet_stdout,
    socket_keys,
)
from splat.errors import SplatError
from splat.io import atomic_path

DEFAULT_OBJECT_NAME = "Program"
MODIFIER_NAME = "GeometryNodes"


def export_blend(
    graph: Mapping,
    params: Mapping[str, Any] | None,
    path: str | os.PathLike,
    *,
    object_name: str = DEFAULT_OBJECT_NAME,
    file: str | os.PathLike | None = None,
    matrix_world=None,
) -> Path:
    """Write ``graph`` with modifier values ``params`` to the .blend ``path`` (atomically).

    Args:
        graph: our graph JSON (a dict as read by ``json.load``).
        params: main-tree input values by interface name; missing ones keep the interface default.
        path: the .blend to write; its folder is created.
        object_name: name of the Blender object that carries the modifier.
        file: the file ``graph`` was read from, only used to name it in errors.
        matrix_world: optional [4, 4] object-to-world placement of the object (identity by default);
            the program's geometry is in the object's local frame either way.

    Raises:
        SplatError: malformed graph (unknown tree, node type, property value, socket name), unknown
            parameter name, or a value of the wrong kind.
    """
    bpy = require_bpy()
    obj = build_program_object(graph, params, object_name=object_name, file=file)
    if matrix_world is not None:
        if hasattr(matrix_world, "detach"):
            matrix_world = matrix_world.detach().cpu().numpy()
        m = np.asarray(matrix_world, dtype=np.float64)
        if m.shape != (4, 4) or not np.isfinite(m).all():
            raise SplatError(f"expected a finite [4, 4] matrix, got shape {m.shape}", field="matrix_world")
        import mathutils  # comes with bpy; a plain nested list would be read column by column

        obj.matrix_world = mathutils.Matrix([list(row) for row in m])
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.unlink()  # Blender would otherwise keep the empty placeholder as a .blend1 backup
        with quiet_stdout():
            bpy.ops.wm.save_as_mainfile(filepath=str(tmp), check_existing=False, copy=True)
        if not tmp.is_file():
            raise SplatError("Blender did not write the file", file=path)
    return path


def build_program_object(
    graph: Mapping,
    params: Mapping[str, Any] | None = None,
    *,
    object_name: str = DEFAULT_OBJECT_NAME,
    file: str | os.PathLike | None = None,
):
    """Build ``graph`` in a fresh, empty bpy session; return the object carrying the modifier."""
    bpy = require_bpy()
    _check_graph_shape(graph, file)
    new_session()
    with quiet_stdout():
        bpy.ops.wm.read_factory_settings(use_empty=True)
    trees = {}
    for name, tree_json in graph["trees"].items():
        tree = bpy.data.node_groups.new(name, "GeometryNodeTree")
        if tree.name != name:  # cannot happen in an empty session, names are unique keys
            raise SplatError(f"tree name {name!r} is not usable in Blender", file=file, field=f"trees.{name}")
        _build_interface(tree, tree_json.get("interface", {}), file, f"trees.{name}.interface")
        trees[name] = tree
    for name, tree_json in graph["trees"].items():
        _build_nodes(bpy, trees[name], tree_json, trees, file, f"trees.{name}")

    mesh = bpy.data.meshes.new(object_name)
    obj = bpy.data.objects.new(object_name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    mod = obj.modifiers.new(MODIFIER_NAME, "NODES")
    mod.node_group = trees[graph["main"]]
    set_modifier_values(obj, mod, params or {}, file=file)
    return obj


def set_modifier_values(obj, mod, params: Mapping[str, Any], *, file=None) -> None:
    """Set the modifier's main-tree inputs by interface *name* and tag the object for re-evaluation."""
    items = {it.name: it for it in interface_items(mod.node_group, "INPUT")}
    for name, value in params.items():
        item = items.get(name)
        if item is None:
            raise SplatError(f"the program has no input {name!r}", file=file, field=f"params.{name}")
        kind = interface_type(item)
        if kind not in ("FLOAT", "INT", "BOOLEAN", "VECTOR", "ROTATION"):
            raise SplatError(f"input of type {kind} cannot take a value", file=file, field=f"params.{name}")
        mod[item.identifier] = _modifier_value(kind, value, file, f"params.{name}")
    obj.update_tag()


def _modifier_value(kind: str, value, file, field):
    """A python/numpy/torch value (scalar, or [1]/[1,3]-shaped batch of one) as an ID-property value."""
    if hasattr(value, "detach"):  # torch tensor, possibly with grad
        value = value.detach().cpu().numpy()
    try:
        flat = np.asarray(value).reshape(-1)
        size = 3 if kind in ("VECTOR", "ROTATION") else 1
        if flat.size != size or flat.dtype.kind not in "biuf":
            raise ValueError
        if kind == "FLOAT":
            out = float(flat[0])
        elif kind == "INT":
            if float(flat[0]) != int(flat[0]):
                raise ValueError
            out = int(flat[0])
        elif kind == "BOOLEAN":
            out = bool(flat[0])
        else:
            out = [float(v) for v in flat]
    except (TypeError, ValueError):
        raise SplatError(f"value {value!r} does not fit a {kind} input", file=file, field=field) from None
    if not np.all(np.isfinite(np.asarray(out, dtype=float))):
        raise SplatError(f"value {value!r} is not finite", file=file, field=field)
    return out


def _check_graph_shape(graph, file) -> None:
    if not isinstance(graph, Mapping) or graph.get("format") != GRAPH_FORMAT:
        raise SplatError(f"not a graph of format {GRAPH_FORMAT!r}", file=file, field="format")
    trees = graph.get("trees")
    if not isinstance(trees, Mapping) or not trees:
        raise SplatError("missing or empty", file=file, field="trees")
    if graph.get("main") not in trees:
        raise SplatError(f"main tree {graph.get('main')!r} is not among the trees", file=file, field="main")
    for name, tree in trees.items():
        if not isinstance(tree, Mapping) or not isinstance(tree.get("nodes", {}), Mapping):
            raise SplatError("must be an object with `nodes`", file=file, field=f"trees.{name}")


def _set_value(target, attr: str, value, file, field) -> None:
    try:
        setattr(target, attr, value)
    except (TypeError, ValueError, AttributeError) as err:
        raise SplatError(f"cannot set {value!r} ({err})", file=file, field=field) from None


def _build_interface(tree, interface: Mapping, file, field) -> None:
    # Blender lists outputs first; creating them first keeps items_tree in the imported order.
    for key, in_out in (("outputs", "OUTPUT"), ("inputs", "INPUT")):
        for k, item in enumerate(interface.get(key, [])):
            f = f"{field}.{key}[{k}]"
            kind = item.get("type") if isinstance(item, Mapping) else None
            if kind not in SOCKET_CLASS or not isinstance(item.get("name"), str):
                raise SplatError(f"needs a name and a type among {sorted(SOCKET_CLASS)}", file=file, field=f)
            sock = tree.interface.new_socket(item["name"], in_out=in_out, socket_type=SOCKET_CLASS[kind])
            # min/max before default so the default is not clamped by Blender's initial range
            for json_key, attr in (("min", "min_value"), ("max", "max_value"), ("default", "default_value")):
                if json_key in item and hasattr(sock, attr):
                    _set_value(sock, attr, item[json_key], file, f"{f}.{json_key}")


def _build_nodes(bpy, tree, tree_json: Mapping, trees: Mapping, file, field) -> None:
    nodes = {}
    for name, node_json in tree_json.get("nodes", {}).items():
        f = f"{field}.nodes.{name}"
        kind = node_json.get("type") if isinstance(node_json, Mapping) else None
        if kind not in NODE_PROPERTIES:
            raise SplatError(f"unsupported node type {kind!r}", file=file, field=f"{f}.type")
        node = tree.nodes.new(kind)
        node.name = name
        if node.name != name:
            raise SplatError("node name is not usable in Blender (duplicate or too long)", file=file, field=f)
        props = dict(node_json.get("properties", {}))
        for prop, value in props.items():
            pf = f"{f}.properties.{prop}"
            if prop not in NODE_PROPERTIES[kind]:
                raise SplatError(f"{kind} has no property {prop!r}", file=file, field=pf)
            if prop == "node_tree":
                if value not in trees:
                    raise SplatError(f"no tree named {value!r}", file=file, field=pf)
                node.node_tree = trees[value]
            elif prop == "value":
                _set_value(node.outputs[0], "default_value", value, file, pf)
            elif hasattr(node, prop):
                _set_value(node, prop, value, file, pf)
            # else: a property this bpy lacks (e.g. Transform.mode before 4.2); its fallback is the only behaviour
        inputs = dict(socket_keys(node.inputs))
        for key, value in node_json.get("inputs", {}).items():
            sock = inputs.get(key)
            if sock is None or NODE_SOCKET_TYPES.get(sock.type) in (None, "GEOMETRY"):
                raise SplatError(f"{kind} has no value input {key!r}", file=file, field=f"{f}.inputs.{key}")
            _set_value(sock, "default_value", value, file, f"{f}.inputs.{key}")
        nodes[name] = node
    _place_nodes(tree_json, nodes, file, field)

    # Made in reverse: Blender joins a multi-input socket's links newest first, so the first link of
    # the list (the first joined, docs/graph_format.md) must be made last.
    links = list(enumerate(tree_json.get("links", [])))
    for k, link in reversed(links):
        f = f"{field}.links[{k}]"
        try:
            from_node, to_node = nodes[link["from_node"]], nodes[link["to_node"]]
        except (KeyError, TypeError):
            raise SplatError("names a node that does not exist", file=file, field=f) from None
        src = dict(socket_keys(from_node.outputs)).get(link.get("from_socket"))
        dst = dict(socket_keys(to_node.inputs)).get(link.get("to_socket"))
        if src is None or dst is None:
            raise SplatError(
                f"no socket {link.get('from_socket')!r} on {from_node.name!r} or {link.get('to_socket')!r} on {to_node.name!r}",
                file=file,
                field=f,
            )
        if is_unavailable(src) or is_unavailable(dst):
            continue  # a socket the node's properties switch off (Value[1] of SQRT): no effect, as in Blender
        tree.links.new(src, dst)


def _place_nodes(tree_json: Mapping, nodes: Mapping, file, field) -> None:
    """Editor positions: the cosmetic ``location`` [x, y] where given, else columns by link depth.

    Without positions every node would sit at the origin and the exported tree would be unreadable
    in Blender's editor. A node's column is the longest link path from a source node.
    """
    links = [l for l in tree_json.get("links", []) if isinstance(l, Mapping)]
    depth = {name: 0 for name in nodes}
    for _ in range(len(nodes)):  # longest-path relaxation; validated graphs are acyclic
        changed = False
        for l in links:
            a, b = l.get("from_node"), l.get("to_node")
            if a in depth and b in depth and depth[b] < depth[a] + 1:
                depth[b] = depth[a] + 1
                changed = True
        if not changed:
            break
    rows: dict[int, int] = {}
    for name, node in nodes.items():
        loc = tree_json["nodes"][name].get("location")
        if loc is not None:
            _set_value(node, "location", loc, file, f"{field}.nodes.{name}.location")
            continue
        row = rows.get(depth[name], 0)
        rows[depth[name]] = row + 1
        node.location = (depth[name] * 240.0, -row * 200.0)
