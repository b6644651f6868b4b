"""A tiny analytic scene (a textured square on the ground plane) for tests and demos.

The object is the square ``|x|, |y| <= half_extent`` on the plane ``z = 0`` (world = Blender axes, +Z
up, metres), checker-coloured; everything else is a grey background. Depth is the exact z-depth of the
infinite plane at each pixel centre (0 where the ray misses it) and the mask is the square. Nothing here
is rendered by a rasterizer, so data-layer tests do not depend on one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from splat.data.camera import Camera, intrinsics_matrix, opengl_c2w_to_viewmat
from splat.data.writer import write_scene

BACKGROUND = (0.5, 0.5, 0.5)


def look_at_c2w(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """[4, 4] camera->world in OpenGL axes (x right, y up, z back) for a camera at ``eye`` facing ``target``."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    if np.linalg.norm(right) < 1e-9:  # looking straight along `up`: pick any right vector
        right = np.cross((0.0, 1.0, 0.0), back)
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, back, eye
    return c2w


class PlaneView(NamedTuple):
    image: np.ndarray  # [H, W, 3] float32 in [0, 1]
    depth: np.ndarray  # [H, W] float32 metres, 0 = ray misses the plane
    mask: np.ndarray  # [H, W] bool, True inside the square


def render_plane(camera: Camera, half_extent: float = 0.5, checker: float = 0.25) -> PlaneView:
    """Exact image, z-depth and mask of the checker square on ``z = 0`` seen by ``camera``."""
    h, w = camera.height, camera.width
    fx, fy, cx, cy = camera.K[0, 0], camera.K[1, 1], camera.K[0, 2], camera.K[1, 2]
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    d_cam = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)  # z = 1: t is z-depth
    r = camera.viewmat[:3, :3]
    d_world = d_cam @ r  # R^T d
    c = camera.center
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -c[2] / d_world[..., 2]
    hit = np.isfinite(t) & (t > 0)
    t = np.where(hit, t, 0.0)
    p = c + t[..., None] * d_world
    mask = hit & (np.abs(p[..., 0]) <= half_extent) & (np.abs(p[..., 1]) <= half_extent)
    cell = (np.floor(p[..., 0] / checker) + np.floor(p[..., 1] / checker)).astype(np.int64) % 2
    colors = np.array([[0.9, 0.3, 0.2], [0.2, 0.4, 0.9]])
    image = np.where(mask[..., None], colors[cell], np.array(BACKGROUND))
    return PlaneView(image.astype(np.float32), t.astype(np.float32), mask)


def plane_cameras(n_views: int = 3, width: int = 32, height: int = 24, distance: float = 2.0,
                  elevation_deg: float = 50.0, fov_deg: float = 50.0) -> list[Camera]:
    """``n_views`` cameras on a ring around the origin, all looking at it, named ``view_000``..."""
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    K = intrinsics_matrix(f, f, width / 2, height / 2)
    el = math.radians(elevation_deg)
    cams = []
    for i in range(n_views):
        az = 2 * math.pi * i / n_views + 0.3
        eye = distance * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        cams.append(Camera(K=K, viewmat=opengl_c2w_to_viewmat(look_at_c2w(eye)), width=width, height=height,
                           name=f"view_{i:03d}"))
    return cams


def write_plane_scene(root: str | os.PathLike, n_views: int = 3, n_test: int = 1, width: int = 32,
                      height: int = 24, half_extent: float = 0.5, depth_format: str = "png") -> Path:
    """Write the analytic plane scene (last ``n_test`` views are test); returns its transforms.json."""
    cams = plane_cameras(n_views, width, height)
    views = [render_plane(c, half_extent) for c in cams]
    names = [c.name for c in cams]
    return write_scene(
        root, cams, [v.image for v in views], depths=[v.depth for v in views], masks=[v.mask for v in views],
        split={"train": names[: n_views - n_test], "test": names[n_views - n_test:]},
        program="plane", gt_params={"half_extent": half_extent}, depth_format=depth_format)
