"""Blender evaluates a program: the reference our evaluator is tested against.

Open a .blend (or build a graph in memory) once, then evaluate many parameter sets: each evaluation sets
the modifier inputs, lets the depsgraph re-run the node tree and reads the evaluated mesh
(``evaluated_get`` + ``to_mesh``). About a millisecond per set for the furniture programs.

Convention: vertices are in the object's local space, float64, in Blender's order; ``polygons`` counts
Blender's faces (a cube has 6 quads), ``triangles`` counts them fan-triangulated (sum of n-2 over
faces: 12 for a cube, whatever Blender's own triangulation would pick).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple

import numpy as np

from splat.blender import current_session
from splat.blender.exporter import build_program_object, set_modifier_values
from splat.blender.importer import find_program_object, open_blend


class BlenderMesh(NamedTuple):
    """One evaluated program.

    vertices: [V, 3] float64, object-local coordinates.
    face_sizes: [F] int64, corners per polygon.
    polygons: F, the number of polygons.
    triangles: sum over polygons of (corners - 2).
    """

    vertices: np.ndarray  # [V, 3]
    face_sizes: np.ndarray  # [F]
    polygons: int
    triangles: int


class BlenderProgram:
    """A program loaded into the bpy session, ready to evaluate parameter sets.

    Build with :meth:`open` (a .blend with a geometry-nodes modifier) or :meth:`from_graph` (our graph
    JSON, built in memory by the exporter). Only one is valid at a time: opening another file or
    building another graph replaces the bpy session and invalidates earlier instances.
    """

    def __init__(self, obj, mod, file: str | os.PathLike | None):
        self._obj = obj
        self._mod = mod
        self._file = file
        self._session = current_session()

    @classmethod
    def open(cls, path: str | os.PathLike, *, object_name: str | None = None) -> "BlenderProgram":
        bpy = open_blend(path)
        obj, mod = find_program_object(bpy, path, object_name)
        return cls(obj, mod, path)

    @classmethod
    def from_graph(cls, graph: Mapping, *, file: str | os.PathLike | None = None) -> "BlenderProgram":
        obj = build_program_object(graph, None, file=file)
        return cls(obj, obj.modifiers[0], file)

    def evaluate(self, params: Mapping[str, Any]) -> BlenderMesh:
        """Set ``params`` (by interface name; others keep their current value) and evaluate."""
        import bpy

        if self._session != current_session():
            raise RuntimeError(
                "this BlenderProgram's bpy session was replaced (another file opened or graph built); "
                "open it again"
            )
        set_modifier_values(self._obj, self._mod, params, file=self._file)
        depsgraph = bpy.context.evaluated_depsgraph_get()
        evaluated = self._obj.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        try:
            n = len(mesh.vertices)
            co = np.empty(n * 3, dtype=np.float32)
            mesh.vertices.foreach_get("co", co)
            sizes = np.empty(len(mesh.polygons), dtype=np.int32)
            mesh.polygons.foreach_get("loop_total", sizes)
        finally:
            evaluated.to_mesh_clear()
        sizes = sizes.astype(np.int64)
        return BlenderMesh(co.reshape(n, 3).astype(np.float64), sizes, int(sizes.size), int((sizes - 2).sum()))
