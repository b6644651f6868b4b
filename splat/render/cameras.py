"""Cameras for viewing an object: look-at poses, orbits around a bounding box, camera files.

Convention: Blender's world (+Z up, metres); cameras are :class:`splat.data.Camera` (``viewmat``
world->camera in OpenCV axes, ``K`` in pixels, pixel centres at +0.5), docs/conventions.md. Azimuth is
measured in the XY plane from +X towards +Y, elevation from the XY plane towards +Z, both in degrees.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from splat.data import Camera, intrinsics_matrix
from splat.errors import SplatError


def look_at_viewmat(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """World->camera ``[4, 4]`` (OpenCV axes) of a camera at ``eye`` [3] looking at ``target`` [3].

    Image "up" follows ``up`` (default world +Z); when the view direction is parallel to ``up`` the
    world +Y axis is used instead.
    """
    eye = np.asarray(eye, dtype=np.float64)
    f = np.asarray(target, dtype=np.float64) - eye
    norm = np.linalg.norm(f)
    if not norm > 0:
        raise ValueError("eye and target coincide")
    f = f / norm
    up = np.asarray(up, dtype=np.float64)
    r = np.cross(f, up)
    if np.linalg.norm(r) < 1e-9:
        r = np.cross(f, np.array([0.0, 1.0, 0.0]))
    r = r / np.linalg.norm(r)
    d = np.cross(f, r)  # OpenCV y (down) = z x x
    c2w = np.stack([r, d, f], axis=1)  # columns: camera axes in world
    view = np.eye(4)
    view[:3, :3] = c2w.T
    view[:3, 3] = -c2w.T @ eye
    return view


def pinhole_K(width: int, height: int, fov_deg: float) -> np.ndarray:
    """``[3, 3]`` intrinsics with horizontal field of view ``fov_deg`` and the principal point at the
    image centre (square pixels)."""
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return intrinsics_matrix(f, f, width / 2.0, height / 2.0)


def orbit_distance(radius: float, fov_deg: float, width: int, height: int, margin: float = 1.15) -> float:
    """Camera distance at which a sphere of ``radius`` fits in the narrower field of view."""
    half = math.radians(fov_deg) / 2
    half_narrow = math.atan(math.tan(half) * min(1.0, height / width))
    return margin * radius / math.sin(half_narrow)


def orbit_cameras(center: np.ndarray, distance: float, n_frames: int, *, width: int, height: int,
                  fov_deg: float = 40.0, elevation_deg: float = 20.0, start_azimuth_deg: float = -90.0,
                  name: str = "orbit") -> list[Camera]:
    """``n_frames`` cameras on a circle around ``center`` [3], evenly spaced over 360 degrees (the last
    frame stops one step short of the first, so a looping video does not repeat a frame)."""
    if n_frames < 1:
        raise SplatError(f"must be >= 1, got {n_frames}", field="frames")
    center = np.asarray(center, dtype=np.float64)
    K = pinhole_K(width, height, fov_deg)
    el = math.radians(elevation_deg)
    cams = []
    for i in range(n_frames):
        az = math.radians(start_azimuth_deg + 360.0 * i / n_frames)
        eye = center + distance * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        cams.append(Camera(K=K, viewmat=look_at_viewmat(eye, center), width=width, height=height,
                           name=f"{name}_{i:04d}"))
    return cams


def bounds_sphere(points: np.ndarray, *, percentile: float = 0.5) -> tuple[np.ndarray, float]:
    """Centre [3] and radius of a robust bounding box of ``points`` [P, 3] (outliers beyond the given
    percentiles ignored); radius = half the box diagonal."""
    p = np.asarray(points, dtype=np.float64)
    if p.size == 0:
        return np.zeros(3), 1.0
    lo = np.percentile(p, percentile, axis=0)
    hi = np.percentile(p, 100.0 - percentile, axis=0)
    return (lo + hi) / 2, max(float(np.linalg.norm(hi - lo)) / 2, 1e-3)


def load_camera_file(path: str | os.PathLike) -> list[Camera]:
    """Cameras from a transforms.json-style file (or a folder holding ``transforms.json``), through
    :func:`splat.data.load_cameras` (no image is read; frames are named by ``name``, the ``file_path``
    stem, or ``view_<i>``). Errors are :class:`SplatError` naming the file and the field."""
    from splat.data import load_cameras

    return list(load_cameras(Path(path)))


def stack_cameras(cameras: list[Camera], *, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``(viewmats [C, 4, 4], Ks [C, 3, 3])`` tensors of ``cameras``."""
    v = torch.as_tensor(np.stack([c.viewmat for c in cameras]), dtype=dtype, device=device)
    k = torch.as_tensor(np.stack([c.K for c in cameras]), dtype=dtype, device=device)
    return v, k
