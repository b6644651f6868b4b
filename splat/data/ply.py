"""Point-cloud PLY files: reading a scene's optional ``scan.ply`` and writing fused clouds.

Convention: points in world coordinates (Blender axes, metres), docs/conventions.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from splat.errors import SplatError
from splat.io import atomic_path, ply_scalar_property, read_ply


def read_ply_points(path: str | os.PathLike, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """Read the vertex positions of a PLY file (point cloud or mesh) as [P, 3] float32.

    Raises:
        SplatError: the file is missing or unreadable, has no ``vertex`` element or no x/y/z, or holds
            non-finite coordinates.
    """
    path = Path(path)
    if not path.is_file():
        raise SplatError("PLY file does not exist", file=path)
    ply = read_ply(path)  # header checked against the file's size; plyfile's errors as SplatError
    if "vertex" not in [e.name for e in ply.elements]:
        raise SplatError("PLY has no 'vertex' element", file=path, field="vertex")
    v = ply["vertex"].data
    names = v.dtype.names or ()
    missing = [c for c in "xyz" if c not in names]
    if missing:
        raise SplatError(f"PLY vertices lack properties {missing}", file=path, field="vertex")
    pts = np.stack([ply_scalar_property(ply, "vertex", c, path).astype(np.float64) for c in "xyz"], axis=1)
    if not np.all(np.isfinite(pts)):
        raise SplatError("PLY has NaN or infinite vertex coordinates", file=path, field="vertex")
    return torch.as_tensor(pts, dtype=torch.float32, device=device)


def write_ply_points(path: str | os.PathLike, points) -> None:
    """Write [P, 3] points (numpy or torch) as a binary little-endian PLY point cloud, atomically."""
    p = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    p = p.reshape(-1, 3).astype(np.float32)
    vertex = np.empty(len(p), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    vertex["x"], vertex["y"], vertex["z"] = p[:, 0], p[:, 1], p[:, 2]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(vertex, "vertex")], text=False).write(str(tmp))
