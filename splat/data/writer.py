"""Writing a scene folder in the format :func:`splat.data.load_scene` reads.

Layout written::

    root/transforms.json          (written last: a scene is complete once it exists)
    root/images/<name>.png|.jpg   8-bit sRGB
    root/depth/<name>.png|.npy    16-bit PNG in units of depth_unit_scale_factor, or float32 metres
    root/masks/<name>.png         8-bit, 255 = object

Every file is written atomically (splat.io).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from splat.data.camera import Camera
from splat.data.images import write_depth, write_image, write_mask
from splat.data.scene import check_split_names
from splat.data.transforms import DEFAULT_DEPTH_SCALE, TOP_KEYS, TRANSFORMS
from splat.io import write_text_atomic

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# A JSON list holding only numbers, as json.dumps(indent=2) spreads it over several lines.
# Matching starts at "[" + newline, which never occurs inside a JSON string (newlines there are escaped).
_NUMBER_LIST = re.compile(r"\[\n\s*(-?[0-9][0-9.eE+\-]*(?:,\n\s*-?[0-9][0-9.eE+\-]*)*)\n\s*\]")


def _dumps(meta: dict) -> str:
    """Indented JSON with each list of numbers (matrix rows, vectors) on one line."""
    text = json.dumps(meta, indent=2)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def _intrinsics(cam: Camera) -> dict[str, Any]:
    return {"fl_x": float(cam.K[0, 0]), "fl_y": float(cam.K[1, 1]), "cx": float(cam.K[0, 2]),
            "cy": float(cam.K[1, 2]), "w": int(cam.width), "h": int(cam.height)}


def _per_frame(seq, n: int, what: str) -> list:
    if seq is None:
        return [None] * n
    seq = list(seq)
    if len(seq) != n:
        raise ValueError(f"{what}: got {len(seq)} entries for {n} cameras")
    return seq


def write_scene(
    root: str | os.PathLike,
    cameras: Sequence[Camera],
    images: Sequence[np.ndarray],
    *,
    depths: Sequence[np.ndarray | None] | None = None,
    masks: Sequence[np.ndarray | None] | None = None,
    split: Mapping[str, Sequence[str]] | None = None,
    program: str | None = None,
    gt_params: Mapping[str, Any] | None = None,
    extras: Mapping[str, Any] | None = None,
    depth_format: str = "png",
    depth_unit_scale_factor: float = DEFAULT_DEPTH_SCALE,
    image_format: str = "png",
    jpeg_quality: int = 95,
) -> Path:
    """Write a scene folder; returns the path of its transforms.json.

    Args:
        root: scene folder (created if needed; files of the same names are replaced).
        cameras: one :class:`Camera` per frame; ``name`` becomes the file stem, so names must be unique
            and made of letters, digits, ``_ . -``.
        images: per frame [H, W, 3] float in [0, 1] (sRGB values) or uint8, H/W matching the camera.
        depths: per frame [H, W] z-depth in metres (0 or NaN = missing) or None; or None for no depth.
        masks: per frame [H, W] bool (True = object) or None; or None for no masks.
        split: split name -> frame names, e.g. ``{"train": [...], "test": [...]}``.
        program: shape-program name (ground truth or intended).
        gt_params: ground-truth program parameters, name -> JSON value.
        extras: other top-level keys to store (e.g. ``{"gt_mesh": "gt_mesh.ply", "manifest": {...}}``);
            they come back unchanged in ``Scene.extras``. Must not reuse a key the format defines.
        depth_format: ``"png"`` (16-bit, ``round(depth / depth_unit_scale_factor)``) or ``"npy"``
            (float32 metres).
        depth_unit_scale_factor: metres per PNG depth unit (default 1e-3: millimetres).
        image_format: ``"png"`` (lossless) or ``"jpg"`` (for photographs: a fraction of the size).
        jpeg_quality: JPEG quality (1-100) when ``image_format="jpg"``.

    Convention: cameras are written as ``transform_matrix`` = camera->world in OpenGL axes; intrinsics
    are global when every camera shares them, else per frame (docs/conventions.md).
    """
    root = Path(root)
    cameras = list(cameras)
    n = len(cameras)
    if n == 0:
        raise ValueError("write_scene needs at least one camera")
    images = _per_frame(images, n, "images")
    depths = _per_frame(depths, n, "depths")
    masks = _per_frame(masks, n, "masks")
    if depth_format not in ("png", "npy"):
        raise ValueError(f"depth_format must be 'png' or 'npy', got {depth_format!r}")
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    names = [c.name for c in cameras]
    for name in names:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"camera name {name!r} is not a safe file stem (letters, digits, _ . -)")
    if len(set(names)) != n:
        raise ValueError("camera names must be unique")
    extras = dict(extras or {})
    clash = sorted(set(extras) & set(TOP_KEYS))
    if clash:
        raise ValueError(f"extras reuse keys of the format: {clash}")
    if split is not None:
        split = {k: list(v) for k, v in split.items()}
        check_split_names(split, names, json_file=root / TRANSFORMS)

    intr = [_intrinsics(c) for c in cameras]
    shared = all(d == intr[0] for d in intr)
    meta: dict[str, Any] = dict(intr[0]) if shared else {}
    meta["camera_model"] = "OPENCV"
    meta["depth_unit_scale_factor"] = float(depth_unit_scale_factor)
    frames = []
    for cam, intr_i, image, depth, mask in zip(cameras, intr, images, depths, masks):
        image = np.asarray(image)
        if image.shape != (cam.height, cam.width, 3):
            raise ValueError(f"image of {cam.name} has shape {image.shape}, camera is {cam.height}x{cam.width}")
        frame: dict[str, Any] = {"file_path": f"images/{cam.name}.{image_format}",
                                 "transform_matrix": cam.c2w_opengl.tolist()}
        write_image(root / frame["file_path"], image, jpeg_quality=jpeg_quality)
        if depth is not None:
            if np.shape(depth) != (cam.height, cam.width):
                raise ValueError(f"depth of {cam.name} has shape {np.shape(depth)}, camera is "
                                 f"{cam.height}x{cam.width}")
            frame["depth_file_path"] = f"depth/{cam.name}.{depth_format}"
            write_depth(root / frame["depth_file_path"], depth, depth_unit_scale_factor)
        if mask is not None:
            if np.shape(mask) != (cam.height, cam.width):
                raise ValueError(f"mask of {cam.name} has shape {np.shape(mask)}, camera is "
                                 f"{cam.height}x{cam.width}")
            frame["mask_path"] = f"masks/{cam.name}.png"
            write_mask(root / frame["mask_path"], mask)
        if not shared:
            frame.update(intr_i)
        frames.append(frame)
    meta["frames"] = frames
    if split is not None:
        meta["split"] = split
    if program is not None:
        meta["program"] = str(program)
    if gt_params is not None:
        meta["gt_params"] = dict(gt_params)
    meta.update(extras)
    path = root / TRANSFORMS
    write_text_atomic(path, _dumps(meta))
    return path
