"""Shape-program graphs: loading/validation, batched differentiable evaluation, Geometry/Part types.

See docs/graph_format.md (format) and docs/architecture.md (API).
"""

from splat.geonodes.evaluator import evaluate_graph
from splat.geonodes.format import Graph, load_graph
from splat.geonodes.geometry import Geometry, Part, RealizedMesh
from splat.geonodes.primitives import CanonicalMesh, PrimitiveKey, canonical_mesh, canonical_verts

__all__ = ["Graph", "load_graph", "evaluate_graph", "Geometry", "Part", "RealizedMesh", "CanonicalMesh",
           "PrimitiveKey", "canonical_mesh", "canonical_verts"]
