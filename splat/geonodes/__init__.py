"""Shape-program graphs: loading/validation, batched differentiable evaluation, Geometry/Part types.

See docs/graph_format.md (format) and docs/architecture.md (API).
"""

from splat.geonodes.format import Graph, load_graph
from splat.geonodes.geometry import Geometry, Part, RealizedMesh
from splat.geonodes.primitives import CanonicalMesh, PrimitiveKey, canonical_mesh

__all__ = ["Graph", "load_graph", "Geometry", "Part", "RealizedMesh", "CanonicalMesh", "PrimitiveKey",
           "canonical_mesh", "evaluate_graph"]


def __getattr__(name):
    if name == "evaluate_graph":
        from splat.geonodes.evaluator import evaluate_graph

        return evaluate_graph
    raise AttributeError(name)
