"""Synthetic scans made by a shape program, for tests and benchmarks of the search.

Convention: the scan is ``n`` area-weighted points on the program's surface for one parameter set,
moved by ``p_scan = translation + Rz(yaw) @ p_program``, with optional isotropic Gaussian noise (metres)
and optionally the points on one side removed (``drop_side``: points with x' > cut in the object's own
frame after yaw, i.e. the side a depth camera did not see).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from splat.ops.sampling import sample_surface
from splat.program import ShapeProgram
from splat.maths import rotate_z


def synthetic_scan(
    program: ShapeProgram,
    params: Mapping[str, Any],
    n: int,
    generator: torch.Generator,
    *,
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0),
    yaw: float = 0.0,
    noise: float = 0.0,
    drop_side: float | None = None,
) -> Tensor:
    """Points ``[P, 3]`` float32 (P = n, or fewer with ``drop_side``) on the program's surface.

    ``drop_side``: remove points whose program-frame x exceeds ``drop_side`` times the half width of
    the object's box (e.g. 0.5 removes the outer quarter on the +x side).
    """
    geometry = program.evaluate(dict(params))
    mesh = geometry.realize()
    surf = sample_surface(mesh.verts.double(), mesh.faces, n, generator, mesh.face_active)
    pts = surf.points[0]
    if drop_side is not None:
        half = pts[:, 0].abs().max()
        pts = pts[pts[:, 0] <= drop_side * half]
    pts = rotate_z(pts[None], torch.tensor([float(yaw)], dtype=pts.dtype))[0]
    pts = pts + torch.tensor(translation, dtype=pts.dtype)
    if noise > 0:
        pts = pts + noise * torch.randn(pts.shape, generator=generator, dtype=pts.dtype)
    return pts.float()
