"""Batched, differentiable evaluation of a loaded graph.

Convention: inputs are main-tree interface values, ``[B]`` tensors (``[B, 3]`` for VECTOR/ROTATION);
FLOAT inputs keep autograd, INT (long) and BOOLEAN (bool) inputs may differ per batch element. Missing
inputs take the interface default. Nodes run once per tree invocation in dependency order; groups are
evaluated recursively with their own inputs, and primitives inside them keep the group tree's name in
their key (copies are found by tree + node name, whatever path led there). Python loops run over nodes
and parts, never over the batch.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from splat.errors import SplatError
from splat.geonodes.format import Graph, Tree
from splat.geonodes.geometry import Geometry
from splat.geonodes.spec import REGISTRY, EvalContext, constant, convert


def _as_input(name: str, type_: str, value: Any, B: int, dtype, device) -> Tensor:
    t = torch.as_tensor(value, device=device)
    want = (B, 3) if type_ in ("VECTOR", "ROTATION") else (B,)
    if t.dim() == len(want) - 1:
        t = t.expand(want) if t.dim() == 0 or type_ in ("VECTOR", "ROTATION") else t
    if tuple(t.shape) != want:
        raise SplatError(f"expected shape {list(want)}, got {list(t.shape)}", field=name)
    if type_ in ("FLOAT", "VECTOR", "ROTATION"):
        if not t.is_floating_point():
            t = t.to(dtype)
        elif t.dtype != dtype:
            t = t.to(dtype)
        if not bool(torch.isfinite(t).all()):
            raise SplatError("value is not finite", field=name)
        return t
    if type_ == "INT":
        if t.is_floating_point():
            if not bool((t == torch.round(t)).all()):
                raise SplatError("expected integer values", field=name)
        return t.long()
    return t.bool() if t.dtype == torch.bool else (t != 0)


def evaluate_graph(graph: Graph, inputs: Mapping[str, Any], *, batch_size: int,
                   dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Geometry:
    """Evaluate the main tree for a batch of ``batch_size`` input sets; return its first GEOMETRY output.

    Raises:
        SplatError: an input name that is not a main-tree interface input, or a value of the wrong
            shape or a non-finite value.
    """
    device = torch.device(device)
    cache: dict = {}
    tree = graph.trees[graph.main]
    by_name = {s.name: s for s in tree.inputs}
    for k in inputs:
        if k not in by_name:
            raise SplatError(f"unknown program input {k!r} (known: {', '.join(by_name)})", file=graph.file, field=k)
    values = {}
    for s in tree.inputs:
        if s.type == "GEOMETRY":
            values[s.key] = Geometry(batch_size)
        elif s.name in inputs:
            values[s.key] = _as_input(s.name, s.type, inputs[s.name], batch_size, dtype, device)
        else:
            values[s.key] = constant(_ctx(batch_size, dtype, device, tree.name, "", cache), s.type, s.default)
    outs = _eval_tree(graph, tree, values, batch_size, dtype, device, cache)
    for s in tree.outputs:
        if s.type == "GEOMETRY":
            return outs[s.key]
    raise AssertionError("validated graphs have a GEOMETRY output")


def _ctx(B, dtype, device, tree, node, cache) -> EvalContext:
    return EvalContext(B, dtype, device, tree, node, cache)


def _eval_tree(graph: Graph, tree: Tree, inputs: Mapping[str, Any], B: int, dtype, device,
               cache: dict) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    for name in tree.order:
        node = tree.nodes[name]
        ctx = _ctx(B, dtype, device, tree.name, name, cache)
        if node.type == "NodeGroupInput":
            results[name] = dict(inputs)
            continue
        if node.type == "NodeFrame":
            results[name] = {}
            continue
        ins: dict[str, Any] = {}
        for s in node.inputs:
            links = tree.incoming.get((name, s.key), ())
            if s.multi:
                ins[s.key] = [_linked(tree, results, l, s.type, ctx) for l in links]
            elif links:
                ins[s.key] = _linked(tree, results, links[0], s.type, ctx)
            elif s.type == "GEOMETRY":
                ins[s.key] = Geometry(B)
            else:
                ins[s.key] = constant(ctx, s.type, node.values.get(s.key, s.default))
        if node.type == "NodeGroupOutput":
            results[name] = ins
        elif node.type == "NodeReroute":
            results[name] = {"Output": ins["Input"]}
        elif node.type == "GeometryNodeGroup":
            sub = graph.trees[node.properties["node_tree"]]
            results[name] = _eval_tree(graph, sub, ins, B, dtype, device, cache)
        else:
            results[name] = REGISTRY[node.type].evaluate(ctx, node.properties, ins)
    out: dict[str, Any] = {}
    got = results.get(tree.output_node, {}) if tree.output_node else {}
    ctx = _ctx(B, dtype, device, tree.name, "", cache)
    for s in tree.outputs:
        if s.key in got:
            out[s.key] = got[s.key]
        elif s.type == "GEOMETRY":
            out[s.key] = Geometry(B)
        else:
            out[s.key] = constant(ctx, s.type, s.default)
    return out


def _linked(tree: Tree, results, link, dst_type: str, ctx: EvalContext):
    value = results[link.from_node][link.from_socket]
    if dst_type == "GEOMETRY":
        return value
    return convert(value, tree.output_types[(link.from_node, link.from_socket)], dst_type, ctx)
