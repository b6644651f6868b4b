"""Depth fusion: back-project the (masked) depth maps of a scene into one world point cloud.

Convention: depth is z-depth in metres (0 = missing), sampled at pixel centres (+0.5); points are in
world coordinates (Blender axes, metres). See docs/conventions.md.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from splat.data.scene import Scene


def voxel_downsample(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Keep one point per occupied voxel: the mean of the points in it.

    Args:
        points: [P, 3] float.
        voxel_size: voxel edge in metres (> 0); voxels are aligned to the world origin.
    Returns:
        [Q, 3] float64, Q <= P, ordered by voxel key (deterministic).
    """
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(p) == 0:
        return p
    keys = np.floor(p / voxel_size).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    sums = np.zeros((len(counts), 3))
    for d in range(3):
        sums[:, d] = np.bincount(inverse, weights=p[:, d], minlength=len(counts))
    return sums / counts[:, None]


def fuse_depth(
    scene: Scene,
    frames: Sequence[int] | str | None = None,
    *,
    voxel_size: float | None = None,
    use_masks: bool = True,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Back-project the depth maps of the selected frames into one world point cloud.

    Args:
        scene: a loaded scene.
        frames: frame indices, a split name ("train", "test"), or None for every frame. Frames without
            depth contribute nothing.
        voxel_size: if given, keep one point (the mean) per voxel of this edge length in metres.
        use_masks: keep only pixels inside the frame's mask (frames without a mask keep every pixel).
        device: device of the returned tensor.
    Returns:
        [P, 3] float32 world points (P may be 0).
    """
    if frames is None:
        idx = range(len(scene))
    elif isinstance(frames, str):
        idx = scene.split[frames]
    else:
        idx = [int(i) for i in frames]
    chunks = []
    for i in idx:
        depth = scene.depths[i]
        if depth is None:
            continue
        mask = scene.masks[i] if use_masks else None
        chunks.append(scene.cameras[i].backproject(depth, mask))
    pts = np.concatenate(chunks) if chunks else np.zeros((0, 3))
    if voxel_size is not None:
        pts = voxel_downsample(pts, voxel_size)
    return torch.as_tensor(pts, dtype=torch.float32, device=device)
