"""The package's layering: no import circle inside splat/, and every import points down the layer table.

The graph is read from the source (ast), not from a running interpreter, so function-level imports count
as much as module-level ones (a function-level import is still a dependency; it only hides a circle).
Imports under ``if TYPE_CHECKING:`` are annotations only and are not edges. Importing ``splat.a.b``
also executes ``splat.a``'s ``__init__``, so that is an edge too. docs/architecture.md shows the same
table.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


SPLAT = Path(__file__).resolve().parents[1] / "splat"

# Lowest first. A unit (a top-level module or subpackage of splat) may import units of its own layer or
# of lower ones, never higher; the cycle check below keeps same-layer imports acyclic.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("splat", "splat.errors", "splat.maths", "splat._cpp")),
    ("io", ("splat.io", "splat.cli")),
    ("core", ("splat.ops", "splat.params", "splat.data", "splat.geonodes", "splat.runs")),
    ("models", ("splat.render", "splat.metrics", "splat.program", "splat.capture", "splat.library", "splat.preview")),
    ("fitting", ("splat.gaussians", "splat.search", "splat.programs")),
    ("assets", ("splat.export", "splat.config")),
    ("presets", ("splat.presets",)),
    ("workspace", ("splat.workspace",)),
    ("stages", ("splat.blender", "splat.evaluate", "splat.train", "splat.viewer")),
    ("batch", ("splat.batch",)),
    ("commands", ("splat.commands", "splat.__main__")),
)


def _modules() -> dict[str, Path]:
    mods = {}
    for p in SPLAT.rglob("*.py"):
        parts = list(p.relative_to(SPLAT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imported_names(mod: str, path: Path) -> set[str]:
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the splat modules its import statements execute (parents included)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        edges = set()
        for name in _imported_names(mod, path):
            if name != "splat" and not name.startswith("splat."):
                continue
            while name and name not in mods:  # `from splat.x import func` -> splat.x
                name = name.rpartition(".")[0]
            parts = name.split(".")
            for k in range(1, len(parts) + 1):
                target = ".".join(parts[:k])
                # a module's own ancestors are already executing when it runs: not a new dependency
                if target in mods and target != mod and not mod.startswith(target + "."):
                    edges.add(target)
        graph[mod] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


def unit_of(mod: str) -> str:
    parts = mod.split(".")
    return ".".join(parts[:2])


def layer_of() -> dict[str, int]:
    return {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}


def test_no_import_circle_inside_splat():
    found = cycles(import_graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_every_module_has_a_layer():
    layers = layer_of()
    missing = sorted({unit_of(m) for m in _modules()} - set(layers))
    assert not missing, f"put these in LAYERS (tests/test_layers.py) and docs/architecture.md: {missing}"


def test_imports_point_down_the_layer_table():
    layers, names = layer_of(), [name for name, _ in LAYERS]
    bad = []
    for mod, edges in sorted(import_graph().items()):
        for target in sorted(edges):
            a, b = unit_of(mod), unit_of(target)
            if a != b and layers[b] > layers[a]:
                bad.append(f"{mod} ({names[layers[a]]}) imports {target} ({names[layers[b]]})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_checker_sees_circles_and_edges(tmp_path):
    """The checks above can fail: a planted circle is found; function-level imports are edges,
    TYPE_CHECKING imports are not; `from splat.x import f` is an edge to splat.x."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from splat.train import TrainConfig\n"
        "def f():\n    from splat.export.asset import load_asset\n"
        "from . import sibling\n")
    names = _imported_names("splat.pkg.m", src)
    assert "splat.export.asset" in names and "splat.pkg.sibling" in names
    assert not any(n.startswith("splat.train") for n in names)
    graph = import_graph()
    assert "splat.maths" in graph["splat.gaussians.model"]
    layers = layer_of()
    assert layers["splat.commands"] > layers["splat.train"] > layers["splat.workspace"] > layers["splat.export"]
