"""Parity with Blender: our evaluator and Blender (bpy) compute the same geometry.

For every program in ../shared/data/blender_programs (imported through splat.blender.importer, with the
ParamSpace of its sp_*.json) and every program of ours in programs/ (exported to a .blend through
splat.blender.exporter, then reopened), 100 random valid parameter sets (seeded) are evaluated by our
evaluator (one batched float64 evaluation) and by Blender (one opened file, modifier values changed per
set), and the realized vertex sets must agree: max nearest-neighbour distance both ways < 1e-5 m, and
equal polygon and triangle counts. The worst case per program is printed (see it with ``-rA`` or ``-s``)
and recorded as a junit property.

Budget: ~20 s for the 3 shipped + 4 own programs (700 Blender evaluations at ~1.5 ms each, one batched
evaluation of ours per program, KD-tree comparisons).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import BLENDER_PROGRAMS
from splat.program import PROGRAMS_DIR

pytestmark = pytest.mark.blender

N_SETS = 100
TOLERANCE = 1e-5  # metres
SHIPPED = ("chair", "table", "cabinet")


def _own_programs() -> list[str]:
    root = PROGRAMS_DIR
    if not root.is_dir():
        return []
    return sorted(p.stem for p in root.iterdir() if (p.is_dir() and (p / "graph.json").is_file()) or p.suffix == ".json")


def _nn_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Max nearest-neighbour distance both ways ([Na,3] vs [Nb,3]); 0 for two empty sets, inf for one."""
    from scipy.spatial import cKDTree

    if len(a) == 0 or len(b) == 0:
        return 0.0 if len(a) == len(b) else float("inf")
    return float(max(cKDTree(a).query(b)[0].max(), cKDTree(b).query(a)[0].max()))


def _python_value(kind: str, value):
    if kind == "FLOAT":
        return float(value)
    if kind == "INT":
        return int(value)
    if kind == "BOOLEAN":
        return bool(value)
    return [float(v) for v in value]


def _check_parity(name: str, program, blender, record_property) -> None:
    """Sample N_SETS parameter sets from ``program.space``, compare ours with ``blender`` per set."""
    space = program.space
    gen = torch.Generator().manual_seed(1234)
    batch = space.sample(N_SETS, gen)
    geometry = program.evaluate(batch, dtype=torch.float64)
    mesh = geometry.realize()
    verts = mesh.verts.detach().numpy()  # [B, V, 3]
    vert_active = mesh.vert_active.numpy()  # [B, V]
    face_active = mesh.face_active.numpy()  # [B, F]
    n_polys = mesh.n_polys.numpy()  # [B]

    # Every main-tree input is set on the modifier each time: the sampled value, or the interface
    # default our evaluator uses for inputs outside the space (the .blend's stored value may differ).
    main = program.graph.to_dict()
    interface = main["trees"][main["main"]]["interface"]["inputs"]
    base = {i["name"]: _python_value(i["type"], i["default"]) for i in interface if i["type"] != "GEOMETRY"}
    kinds = {i["name"]: i["type"] for i in interface}

    worst = (-1.0, -1, None)
    failures = []
    for b in range(N_SETS):
        values = dict(base)
        for pname, column in batch.items():
            values[pname] = _python_value(kinds[pname], column[b].item())
        ref = blender.evaluate(values)
        ours = verts[b][vert_active[b]]
        dist = _nn_distance(ours, ref.vertices)
        tris = int(face_active[b].sum())
        if dist > worst[0]:
            worst = (dist, b, values)
        if not (dist < TOLERANCE and int(n_polys[b]) == ref.polygons and tris == ref.triangles):
            failures.append(
                f"set {b}: nn distance {dist:.3g}, vertices ours {len(ours)} / blender {len(ref.vertices)}, "
                f"polygons {int(n_polys[b])} / {ref.polygons}, triangles {tris} / {ref.triangles}, params {values}"
            )
    structures = len(set(n_polys.tolist()))
    summary = (f"parity {name}: worst nn distance {worst[0]:.3g} m at set {worst[1]} of {N_SETS} "
               f"({structures} distinct polygon counts)")
    print(summary)
    record_property("worst_nn_distance_m", worst[0])
    record_property("worst_params", json.dumps(worst[2]))
    assert not failures, f"{summary}; {len(failures)} of {N_SETS} sets differ, first: " + failures[0]
    assert structures >= 2, f"{summary}: the sample never changed the program's structure"


@pytest.mark.parametrize("name", SHIPPED)
def test_parity_shipped_blend_programs(name, tmp_path, record_property):
    from splat.blender.evaluate import BlenderProgram
    from splat.blender.importer import import_blend
    from splat.io import write_json_atomic
    from splat.program import ShapeProgram

    blend = BLENDER_PROGRAMS / f"{name}.blend"
    imported = import_blend(blend)
    write_json_atomic(tmp_path / "graph.json", imported.graph)
    program = ShapeProgram.from_files(tmp_path / "graph.json", BLENDER_PROGRAMS / f"sp_{name}.json")
    _check_parity(f"{name}.blend", program, BlenderProgram.open(blend), record_property)


@pytest.mark.parametrize("name", _own_programs())
def test_parity_own_programs(name, tmp_path, record_property):
    from splat.blender.evaluate import BlenderProgram
    from splat.blender.exporter import export_blend
    from splat.blender.importer import import_blend
    from splat.geonodes import load_graph
    from splat.program import ShapeProgram, load_program

    program = load_program(name)
    path = export_blend(program.graph.to_dict(), program.space.defaults(), tmp_path / f"{name}.blend")
    # the exported file imports back to a graph our evaluator evaluates exactly as the original
    back = ShapeProgram(load_graph(import_blend(path).graph), program.space, name, None)
    batch = program.space.sample(16, torch.Generator().manual_seed(7))
    a = program.evaluate(batch, dtype=torch.float64).realize()
    b = back.evaluate(batch, dtype=torch.float64).realize()
    assert torch.equal(a.vert_active, b.vert_active) and torch.equal(a.n_polys, b.n_polys)
    assert torch.allclose(a.verts[a.vert_active], b.verts[b.vert_active], atol=1e-6)
    _check_parity(f"programs/{name}", program, BlenderProgram.open(path), record_property)
