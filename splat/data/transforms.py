"""Loading a scene folder in the nerfstudio ``transforms.json`` format, with our optional keys.

Format (docs/conventions.md, section "Scene format")::

    {
      "fl_x": 280.0, "fl_y": 280.0, "cx": 128.0, "cy": 128.0, "w": 256, "h": 256,
      "depth_unit_scale_factor": 0.001,                 # optional, metres per PNG depth unit
      "frames": [
        {"file_path": "images/r_000.png", "transform_matrix": [[...4x4 camera->world, OpenGL...]],
         "depth_file_path": "depth/r_000.png",          # optional (16-bit PNG or float32 .npy metres)
         "mask_path": "masks/r_000.png",                # optional
         "name": "r_000",                               # optional, default: file_path stem
         "fl_x": ..., "w": ...}                         # optional per-frame intrinsics overrides
      ],
      "split": {"train": ["r_000", ...], "test": [...]},  # optional (ours)
      "program": "chair",                                 # optional (ours)
      "gt_params": {"Seat Height": 0.45, ...},            # optional (ours)
      "gt_mesh": "gt_mesh.ply", "manifest": {...}         # any other key: kept in Scene.extras
    }

Every problem is a :class:`SplatError` naming the transforms.json and the field at fault.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from splat.data.camera import Camera, intrinsics_matrix, rigidity_error
from splat.data.images import read_depth, read_image, read_mask
from splat.data.scene import Scene, check_split_names, resolve_inside
from splat.errors import SplatError
from splat.io import read_json

TRANSFORMS = "transforms.json"
DEFAULT_DEPTH_SCALE = 1e-3

INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE")
# Top-level keys the loader interprets; every other top-level key goes to Scene.extras.
TOP_KEYS = ("frames", "split", "program", "gt_params", "depth_unit_scale_factor", "camera_model",
            *INTRINSIC_KEYS, *DISTORTION_KEYS)


def _number(value: Any, *, json_file, field: str, positive: bool = False, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SplatError(f"must be a finite number, got {value!r}", file=json_file, field=field)
    if integer and float(value) != int(value):
        raise SplatError(f"must be an integer, got {value!r}", file=json_file, field=field)
    if positive and value <= 0:
        raise SplatError(f"must be > 0, got {value!r}", file=json_file, field=field)
    return int(value) if integer else float(value)


def _lookup(frame: dict, meta: dict, key: str, i: int) -> tuple[Any, str]:
    """Per-frame value overriding the global one; returns (value, field name) or (None, global field)."""
    if key in frame:
        return frame[key], f"frames[{i}].{key}"
    return meta.get(key), key


def frame_camera(frame: dict, meta: dict, i: int, name: str, json_file) -> Camera:
    """The :class:`Camera` of ``frames[i]`` (per-frame intrinsics override ``meta``'s), fully checked."""
    vals = {}
    for key in INTRINSIC_KEYS:
        value, fld = _lookup(frame, meta, key, i)
        if value is None:
            raise SplatError(f"missing intrinsic {key!r} (give it globally or per frame)",
                             file=json_file, field=fld)
        vals[key] = _number(value, json_file=json_file, field=fld, positive=key != "cx" and key != "cy",
                            integer=key in ("w", "h"))
    model, fld = _lookup(frame, meta, "camera_model", i)
    if model is not None and model not in PINHOLE_MODELS:
        raise SplatError(f"camera model {model!r} is not supported; use one of {list(PINHOLE_MODELS)} "
                         "(undistorted pinhole images)", file=json_file, field=fld)
    for key in DISTORTION_KEYS:
        value, fld = _lookup(frame, meta, key, i)
        if value is not None and _number(value, json_file=json_file, field=fld) != 0.0:
            raise SplatError(f"lens distortion is not supported ({key}={value}); undistort the images first",
                             file=json_file, field=fld)
    fld = f"frames[{i}].transform_matrix"
    if "transform_matrix" not in frame:
        raise SplatError("missing camera pose", file=json_file, field=fld)
    try:
        c2w = np.array(frame["transform_matrix"], dtype=np.float64)
    except (TypeError, ValueError):
        raise SplatError("must be a 4x4 list of numbers", file=json_file, field=fld) from None
    if c2w.shape == (3, 4):
        c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]])
    why = rigidity_error(c2w)
    if why:
        raise SplatError(f"camera->world matrix {why}", file=json_file, field=fld)
    K = intrinsics_matrix(vals["fl_x"], vals["fl_y"], vals["cx"], vals["cy"])
    return Camera.from_opengl_c2w(c2w, K, vals["w"], vals["h"], name)


_camera = frame_camera  # the name splat.render.cameras imported first


def _frame_name(frame: dict, i: int, json_file) -> str:
    if "name" in frame:
        name = frame["name"]
        if not isinstance(name, str) or not name:
            raise SplatError(f"must be a non-empty string, got {name!r}", file=json_file, field=f"frames[{i}].name")
        return name
    fp = frame.get("file_path")
    if not isinstance(fp, str) or not fp:
        raise SplatError(f"must be a non-empty relative path string, got {fp!r}", file=json_file,
                         field=f"frames[{i}].file_path")
    return Path(fp.replace("\\", "/")).stem


def read_transforms(root: str | os.PathLike) -> tuple[Path, dict]:
    """Read and parse ``root/transforms.json`` (or a path to the json itself). Returns (path, dict)."""
    path = Path(root)
    if path.is_dir() or path.suffix.lower() != ".json":
        path = path / TRANSFORMS
    if not path.is_file():
        raise SplatError("scene has no transforms.json (is this a scene folder?)", file=path)
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise SplatError("top level must be a JSON object", file=path)
    return path, meta


def load_cameras(root: str | os.PathLike) -> tuple[Camera, ...]:
    """Only the cameras of a scene folder or transforms.json-style file; no image file is opened.

    Frames need ``transform_matrix`` and intrinsics; ``file_path`` may be absent (the frame is then
    named ``name`` or ``view_<i>``). Errors are :class:`SplatError` naming the file and field.
    """
    json_file, meta = read_transforms(root)
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise SplatError("must be a non-empty list of frames", file=json_file, field="frames")
    cams, seen = [], {}
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise SplatError("must be an object", file=json_file, field=f"frames[{i}]")
        if "name" in frame or "file_path" in frame:
            name = _frame_name(frame, i, json_file)
        else:
            name = f"view_{i:04d}"
        if name in seen:
            raise SplatError(f"duplicate frame name {name!r} (also frames[{seen[name]}])", file=json_file,
                             field=f"frames[{i}].file_path")
        seen[name] = i
        cams.append(frame_camera(frame, meta, i, name, json_file))
    return tuple(cams)


def load_scene(root: str | os.PathLike) -> Scene:
    """Load a scene folder (or its transforms.json) into a :class:`Scene`, checking everything.

    All frames are read eagerly (scenes are small). Depth NaN/+inf readings become 0 (missing) with one
    warning for the whole scene.

    Raises:
        SplatError: naming transforms.json and the field (``frames[3].file_path``) for a missing
            transforms.json, malformed JSON, missing/unreadable/mis-sized images, depth of the wrong
            shape or negative, paths escaping the scene folder, non-rigid or singular poses, duplicate
            frame names, a split naming unknown frames, an empty mask, or unsupported camera models.
    """
    json_file, meta = read_transforms(root)
    scene_root = json_file.parent
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise SplatError("must be a non-empty list of frames", file=json_file, field="frames")
    scale = _number(meta.get("depth_unit_scale_factor", DEFAULT_DEPTH_SCALE), json_file=json_file,
                    field="depth_unit_scale_factor", positive=True)

    cameras, images, depths, masks = [], [], [], []
    seen: dict[str, int] = {}
    nonfinite_frames = []
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise SplatError("must be an object", file=json_file, field=f"frames[{i}]")
        name = _frame_name(frame, i, json_file)
        if name in seen:
            raise SplatError(f"duplicate frame name {name!r} (also frames[{seen[name]}]); give each frame a "
                             "unique file stem or \"name\"", file=json_file, field=f"frames[{i}].file_path")
        seen[name] = i
        cam = frame_camera(frame, meta, i, name, json_file)
        h, w = cam.height, cam.width
        fld = f"frames[{i}].file_path"
        img_path = resolve_inside(scene_root, frame.get("file_path"), json_file=json_file, field=fld)
        images.append(read_image(img_path, h, w, json_file=json_file, field=fld))
        depth = None
        if frame.get("depth_file_path") is not None:
            fld = f"frames[{i}].depth_file_path"
            p = resolve_inside(scene_root, frame["depth_file_path"], json_file=json_file, field=fld)
            depth, n_bad = read_depth(p, h, w, scale, json_file=json_file, field=fld)
            if n_bad:
                nonfinite_frames.append((name, n_bad))
        mask = None
        if frame.get("mask_path") is not None:
            fld = f"frames[{i}].mask_path"
            p = resolve_inside(scene_root, frame["mask_path"], json_file=json_file, field=fld)
            mask = read_mask(p, h, w, json_file=json_file, field=fld)
        cameras.append(cam)
        depths.append(depth)
        masks.append(mask)
    if nonfinite_frames:
        total = sum(n for _, n in nonfinite_frames)
        warnings.warn(f"{json_file}: {total} NaN/inf depth readings in {len(nonfinite_frames)} frame(s) "
                      f"(first: {nonfinite_frames[0][0]}) treated as missing (0)", stacklevel=2)

    split = check_split_names(meta.get("split"), [c.name for c in cameras], json_file=json_file)
    program = meta.get("program")
    if program is not None and not isinstance(program, str):
        raise SplatError(f"must be a program name string, got {program!r}", file=json_file, field="program")
    gt_params = meta.get("gt_params")
    if gt_params is not None and not isinstance(gt_params, dict):
        raise SplatError("must be an object mapping parameter names to values", file=json_file, field="gt_params")
    extras = {k: v for k, v in meta.items() if k not in TOP_KEYS}
    return Scene(root=scene_root, cameras=tuple(cameras), images=tuple(images), depths=tuple(depths),
                 masks=tuple(masks), split=split, program=program, gt_params=gt_params, extras=extras)
