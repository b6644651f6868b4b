"""Loading and validating shape-program graphs (format ``splat.geonodes/1``, docs/graph_format.md).

Everything a user can get wrong is caught here, at load time, as a ``SplatError`` naming the file and
the field (``trees.Legs.nodes.Math.003.properties.operation``): unknown node type, socket or property
value, a value of the wrong type, a dangling link, a link between incompatible sockets (GEOMETRY to a
value socket), two links into a single-input socket, a cycle in a tree, a recursive group, a missing
main tree. A loaded :class:`Graph` evaluates without further checks.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from splat.errors import SplatError
from splat.io import read_json
from splat.geonodes import nodes_geometry, nodes_math, nodes_mesh  # noqa: F401  (register node types)
from splat.geonodes.spec import REGISTRY, SOCKET_TYPES, SocketSpec, can_convert

FORMAT = "splat.geonodes/1"
GROUP_TYPES = ("NodeGroupInput", "NodeGroupOutput", "GeometryNodeGroup", "NodeFrame", "NodeReroute")
_COSMETIC_KEYS = ("location", "label", "parent", "width", "height", "color", "hide")


@dataclass(frozen=True)
class InterfaceSocket:
    """A tree interface socket. ``key`` is ``name``, or ``name[k]`` when several share the name."""

    name: str
    type: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    key: str = ""


@dataclass(frozen=True)
class Node:
    name: str
    type: str
    properties: Mapping[str, Any]
    values: Mapping[str, Any]  # unlinked input values given in the file
    inputs: tuple[SocketSpec, ...]  # resolved input sockets
    outputs: tuple[SocketSpec, ...]  # resolved output sockets


@dataclass(frozen=True)
class Link:
    from_node: str
    from_socket: str
    to_node: str
    to_socket: str


@dataclass(frozen=True)
class Tree:
    name: str
    inputs: tuple[InterfaceSocket, ...]
    outputs: tuple[InterfaceSocket, ...]
    nodes: Mapping[str, Node]
    links: tuple[Link, ...]
    incoming: Mapping[tuple[str, str], tuple[Link, ...]]  # (to_node, to_socket) -> links in order
    order: tuple[str, ...]  # nodes the output depends on, in evaluation order
    output_node: str | None
    output_types: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (node, socket) -> type


@dataclass(frozen=True)
class Graph:
    main: str
    trees: Mapping[str, Tree]
    source: Mapping[str, Any] = field(repr=False, default_factory=dict)
    file: str | None = None

    @property
    def interface(self) -> tuple[InterfaceSocket, ...]:
        """The main tree's inputs: the program's parameters."""
        return self.trees[self.main].inputs

    def to_dict(self) -> dict:
        return json.loads(json.dumps(self.source))


def _err(msg: str, file, fld: str) -> SplatError:
    return SplatError(msg, file=file, field=fld)


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_value(type_: str, value: Any, file, fld: str) -> Any:
    """Validate a constant for a socket type; return it normalised (tuple for vectors)."""
    if type_ == "FLOAT":
        if not _is_num(value):
            raise _err(f"expected a finite number, got {value!r}", file, fld)
        return float(value)
    if type_ == "INT":
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _err(f"expected an integer, got {value!r}", file, fld)
        if abs(value) > 2**31 - 1:
            raise _err(f"integer {value} out of 32-bit range", file, fld)
        return value
    if type_ == "BOOLEAN":
        if not isinstance(value, bool):
            raise _err(f"expected true or false, got {value!r}", file, fld)
        return value
    if type_ in ("VECTOR", "ROTATION"):
        if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_is_num(v) for v in value):
            raise _err(f"expected a list of 3 finite numbers, got {value!r}", file, fld)
        return tuple(float(v) for v in value)
    raise _err(f"socket of type {type_} takes no value", file, fld)


def _obj(x, file, fld, what="an object") -> dict:
    if not isinstance(x, dict):
        raise _err(f"expected {what}, got {type(x).__name__}", file, fld)
    return x


def _str(x, file, fld) -> str:
    if not isinstance(x, str) or not x:
        raise _err(f"expected a non-empty string, got {x!r}", file, fld)
    return x


def _interface(items, file, fld) -> tuple[InterfaceSocket, ...]:
    if not isinstance(items, list):
        raise _err("expected a list of sockets", file, fld)
    out = []
    names = [it.get("name") if isinstance(it, dict) else None for it in items]
    seen: dict[str, int] = {}
    for i, it in enumerate(items):
        f = f"{fld}[{i}]"
        it = _obj(it, file, f)
        name = _str(it.get("name"), file, f + ".name")
        if names.count(name) > 1:
            key = f"{name}[{seen.get(name, 0)}]"
            seen[name] = seen.get(name, 0) + 1
        else:
            key = name
        type_ = it.get("type")
        if type_ not in SOCKET_TYPES:
            raise _err(f"unknown socket type {type_!r} (expected one of {', '.join(SOCKET_TYPES)})", file, f + ".type")
        default = None
        if type_ != "GEOMETRY":
            default = check_value(type_, it.get("default", _zero(type_)), file, f + ".default")
        lo = it.get("min")
        hi = it.get("max")
        for k, v in (("min", lo), ("max", hi)):
            if v is not None and not _is_num(v):
                raise _err(f"expected a finite number, got {v!r}", file, f"{f}.{k}")
        if lo is not None and hi is not None and lo > hi:
            raise _err(f"min {lo} > max {hi}", file, f + ".min")
        out.append(InterfaceSocket(name, type_, default, lo, hi, key))
    return tuple(out)


def _zero(type_: str):
    return {"FLOAT": 0.0, "INT": 0, "BOOLEAN": False, "VECTOR": [0.0, 0.0, 0.0], "ROTATION": [0.0, 0.0, 0.0]}[type_]


def _props(type_: str, raw, file, fld) -> dict:
    raw = {} if raw is None else _obj(raw, file, fld)
    if type_ == "GeometryNodeGroup":
        tree = raw.get("node_tree")
        extra = set(raw) - {"node_tree"}
        if extra:
            raise _err(f"unknown property {sorted(extra)[0]!r}", file, f"{fld}.{sorted(extra)[0]}")
        return {"node_tree": _str(tree, file, fld + ".node_tree")}
    specs = REGISTRY[type_].properties if type_ in REGISTRY else {}
    out = {}
    for k, v in raw.items():
        if k not in specs:
            raise _err(f"unknown property {k!r} for {type_}" + (f" (known: {', '.join(specs)})" if specs else ""),
                       file, f"{fld}.{k}")
        ps = specs[k]
        if ps.choices is not None:
            if not any(v == c and type(v) is type(c) for c in ps.choices):
                raise _err(f"bad value {v!r} (expected one of {', '.join(map(str, ps.choices))})", file, f"{fld}.{k}")
        elif ps.kind is float:
            v = check_value("FLOAT", v, file, f"{fld}.{k}")
        elif ps.kind is int:
            v = check_value("INT", v, file, f"{fld}.{k}")
        out[k] = v
    for k, ps in specs.items():
        out.setdefault(k, ps.default)
    return out


def _sockets_for(node_type: str, props: dict, tree_name: str, raw_trees: dict, interfaces: dict, file, fld):
    """(inputs, outputs) of a node; Reroute sockets get their type later."""
    if node_type == "NodeGroupInput":
        return (), tuple(SocketSpec(s.key, s.type, s.default) for s in interfaces[tree_name][0])
    if node_type == "NodeGroupOutput":
        return tuple(SocketSpec(s.key, s.type, s.default) for s in interfaces[tree_name][1]), ()
    if node_type == "GeometryNodeGroup":
        sub = props["node_tree"]
        if sub not in raw_trees:
            raise _err(f"node group refers to unknown tree {sub!r}", file, fld + ".properties.node_tree")
        ins, outs = interfaces[sub]
        return (tuple(SocketSpec(s.key, s.type, s.default) for s in ins),
                tuple(SocketSpec(s.key, s.type, s.default) for s in outs))
    if node_type == "NodeFrame":
        return (), ()
    if node_type == "NodeReroute":
        return (SocketSpec("Input", "ANY"),), (SocketSpec("Output", "ANY"),)
    spec = REGISTRY[node_type]
    return tuple(spec.inputs(props)), tuple(spec.outputs(props))


def _load_tree(name: str, raw: dict, raw_trees: dict, interfaces: dict, file) -> Tree:
    tf = f"trees.{name}"
    raw_nodes = _obj(raw.get("nodes", {}), file, tf + ".nodes")
    nodes: dict[str, Node] = {}
    for nname, nraw in raw_nodes.items():
        nf = f"{tf}.nodes.{nname}"
        nraw = _obj(nraw, file, nf)
        extra = set(nraw) - {"type", "properties", "inputs"} - set(_COSMETIC_KEYS)
        if extra:
            k = sorted(extra)[0]
            raise _err(f"unknown key {k!r} (expected type, properties, inputs)", file, f"{nf}.{k}")
        ntype = nraw.get("type")
        if not isinstance(ntype, str) or (ntype not in REGISTRY and ntype not in GROUP_TYPES):
            raise _err(f"unknown node type {ntype!r}", file, nf + ".type")
        props = _props(ntype, nraw.get("properties"), file, nf + ".properties")
        ins, outs = _sockets_for(ntype, props, name, raw_trees, interfaces, file, nf)
        by_key = {s.key: s for s in ins}
        values = {}
        for k, v in _obj(nraw.get("inputs", {}), file, nf + ".inputs").items():
            if k not in by_key:
                raise _err(f"unknown input socket {k!r} of {ntype}"
                           + (f" (known: {', '.join(by_key)})" if by_key else ""), file, f"{nf}.inputs.{k}")
            s = by_key[k]
            if s.type in ("GEOMETRY", "ANY"):
                raise _err(f"socket {k!r} takes no value", file, f"{nf}.inputs.{k}")
            values[k] = check_value(s.type, v, file, f"{nf}.inputs.{k}")
            if s.allowed is not None and values[k] not in s.allowed:
                raise _err(f"unsupported value {v!r} (supported: {s.allowed})", file, f"{nf}.inputs.{k}")
        nodes[nname] = Node(nname, ntype, props, values, ins, outs)
    raw_links = raw.get("links", [])
    if not isinstance(raw_links, list):
        raise _err("expected a list of links", file, tf + ".links")
    links = []
    for i, lraw in enumerate(raw_links):
        lf = f"{tf}.links[{i}]"
        lraw = _obj(lraw, file, lf)
        vals = {}
        for k in ("from_node", "from_socket", "to_node", "to_socket"):
            vals[k] = _str(lraw.get(k), file, f"{lf}.{k}")
        for end in ("from", "to"):
            if vals[f"{end}_node"] not in nodes:
                raise _err(f"link refers to unknown node {vals[end + '_node']!r}", file, f"{lf}.{end}_node")
        src, dst = nodes[vals["from_node"]], nodes[vals["to_node"]]
        if vals["from_socket"] not in {s.key for s in src.outputs}:
            raise _err(f"node {src.name!r} ({src.type}) has no output {vals['from_socket']!r}", file, lf + ".from_socket")
        if vals["to_socket"] not in {s.key for s in dst.inputs}:
            raise _err(f"node {dst.name!r} ({dst.type}) has no input {vals['to_socket']!r}", file, lf + ".to_socket")
        links.append(Link(**vals))
    incoming: dict[tuple[str, str], list[Link]] = {}
    link_index: dict[tuple[str, str], list[int]] = {}
    for i, l in enumerate(links):
        incoming.setdefault((l.to_node, l.to_socket), []).append(l)
        link_index.setdefault((l.to_node, l.to_socket), []).append(i)
    # cycle check and evaluation order (Kahn over node dependencies)
    deps: dict[str, set[str]] = {n: set() for n in nodes}
    for l in links:
        deps[l.to_node].add(l.from_node)
    order, state = [], {}

    def visit(n: str):
        # iterative DFS to stay safe on deep graphs
        work = [(n, iter(sorted(deps[n])))]
        state[n] = 1
        while work:
            cur, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                state[cur] = 2
                order.append(cur)
                continue
            if state.get(nxt) == 1:
                raise _err(f"cycle through node {nxt!r}", file, f"{tf}.nodes.{nxt}")
            if nxt not in state:
                state[nxt] = 1
                work.append((nxt, iter(sorted(deps[nxt]))))

    for n in nodes:
        if n not in state:
            visit(n)
    # reroute types, in dependency order
    for n in order:
        node = nodes[n]
        if node.type != "NodeReroute":
            continue
        src = incoming.get((n, "Input"))
        t = "GEOMETRY"
        if src:
            t = _out_type(nodes[src[0].from_node], src[0].from_socket)
        if t == "ANY":
            t = "GEOMETRY"
        nodes[n] = Node(n, node.type, node.properties, node.values, (SocketSpec("Input", t),), (SocketSpec("Output", t),))
    # link multiplicity and types
    for (to_node, to_socket), ls in incoming.items():
        s = next(s for s in nodes[to_node].inputs if s.key == to_socket)
        idx = link_index[(to_node, to_socket)]
        if len(ls) > 1 and not s.multi:
            raise _err(f"socket {to_socket!r} of {to_node!r} takes one link, got {len(ls)}", file,
                       f"{tf}.links[{idx[1]}]")
        if s.allowed is not None:
            raise _err(f"socket {to_socket!r} must not be linked (unsupported)", file, f"{tf}.links[{idx[0]}].to_socket")
        for i, l in zip(idx, ls):
            st = _out_type(nodes[l.from_node], l.from_socket)
            if not can_convert(st, s.type):
                raise _err(f"cannot link {st} output {l.from_socket!r} of {l.from_node!r} to {s.type} input "
                           f"{to_socket!r} of {to_node!r}", file, f"{tf}.links[{i}]")
    outs = [n for n, node in nodes.items() if node.type == "NodeGroupOutput"]
    if len(outs) > 1:
        raise _err(f"tree has {len(outs)} Group Output nodes (expected at most one)", file, f"{tf}.nodes.{outs[1]}")
    out_node = outs[0] if outs else None
    needed: set[str] = set()
    stack = [out_node] if out_node else []
    while stack:
        n = stack.pop()
        if n in needed:
            continue
        needed.add(n)
        stack.extend(deps[n])
    return Tree(
        name=name, inputs=interfaces[name][0], outputs=interfaces[name][1], nodes=nodes, links=tuple(links),
        incoming={k: tuple(v) for k, v in incoming.items()}, order=tuple(n for n in order if n in needed),
        output_node=out_node,
        output_types={(n, o.key): o.type for n, node in nodes.items() for o in node.outputs},
    )


def _out_type(node: Node, key: str) -> str:
    return next(s.type for s in node.outputs if s.key == key)


def load_graph(source: str | os.PathLike | Mapping[str, Any], *, file: str | os.PathLike | None = None) -> Graph:
    """Load and validate a graph from a path or an already parsed JSON object.

    Raises:
        SplatError: naming ``file`` and the offending field, for every malformed input.
    """
    if isinstance(source, (str, os.PathLike)):
        file = Path(source)
        raw = read_json(file)
    else:
        raw = source
    try:
        return _load(raw, file)
    except RecursionError:
        raise SplatError("graph nesting too deep", file=file) from None


def _load(raw, file) -> Graph:
    raw = _obj(raw, file, "(root)")
    if raw.get("format") != FORMAT:
        raise _err(f"expected format {FORMAT!r}, got {raw.get('format')!r}", file, "format")
    raw_trees = _obj(raw.get("trees"), file, "trees")
    if not raw_trees:
        raise _err("no trees", file, "trees")
    main = raw.get("main")
    if not isinstance(main, str) or main not in raw_trees:
        raise _err(f"main tree {main!r} is not a key of trees", file, "main")
    interfaces = {}
    for name, t in raw_trees.items():
        t = _obj(t, file, f"trees.{name}")
        iface = _obj(t.get("interface", {}), file, f"trees.{name}.interface")
        interfaces[name] = (_interface(iface.get("inputs", []), file, f"trees.{name}.interface.inputs"),
                            _interface(iface.get("outputs", []), file, f"trees.{name}.interface.outputs"))
    for i, s in enumerate(interfaces[main][0]):
        if s.key != s.name and not s.key.endswith("[0]"):
            raise _err(f"main tree inputs are the program's parameters and need unique names; {s.name!r} repeats",
                       file, f"trees.{main}.interface.inputs[{i}].name")
    trees = {name: _load_tree(name, t, raw_trees, interfaces, file) for name, t in raw_trees.items()}
    # recursive groups
    calls = {name: {n.properties["node_tree"] for n in t.nodes.values() if n.type == "GeometryNodeGroup"}
             for name, t in trees.items()}
    state: dict[str, int] = {}

    def visit(name: str):
        state[name] = 1
        for sub in sorted(calls[name]):
            if state.get(sub) == 1:
                raise _err(f"node group {sub!r} calls itself (recursive groups)", file, f"trees.{name}")
            if sub not in state:
                visit(sub)
        state[name] = 2

    for name in trees:
        if name not in state:
            visit(name)
    if not any(s.type == "GEOMETRY" for s in trees[main].outputs):
        raise _err("main tree has no GEOMETRY output", file, f"trees.{main}.interface.outputs")
    return Graph(main=main, trees=trees, source=raw, file=None if file is None else str(file))
