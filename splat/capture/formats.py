"""Readers of RGB-D capture layouts. Each lists the frames of a source folder as :class:`FrameRef`s
(poses, intrinsics, file paths; no pixel read) in one common form; :func:`splat.capture.frames.read_frame`
reads them.

Formats:

- ``tum``: the TUM RGB-D benchmark. Either the original layout (``rgb.txt``, ``depth.txt``,
  ``groundtruth.txt`` with timestamps; colour, depth and pose associated by nearest timestamp within a
  tolerance, the pose interpolated between the two ground-truth samples around the colour time) or the
  CubeSLAM copy (``rgb/NNNN_*.jpg|png``, ``depth/NNNN_*.png``, ``truth_cam_poses.txt`` with line k for
  frame k). Poses ``timestamp tx ty tz qx qy qz qw`` are camera->world with OpenCV camera axes; depth
  PNG values / 5000 = metres. Intrinsics from ``intrinsics.txt`` (``fx 535.4`` lines; ``width``,
  ``height``, ``depth_scale`` too), ``--intrinsics``, or the fr3 calibration for a ``freiburg3`` folder.
- ``scannet``: the ScanNet SensReader export: ``color/N.jpg``, ``depth/N.png`` (mm), ``pose/N.txt``
  (4x4 camera->world, OpenCV axes), ``intrinsic/intrinsic_color.txt`` and ``intrinsic_depth.txt`` (4x4).
  Colour and depth have different resolutions; colour is resampled onto the depth camera. Image sizes
  come from the scan's ``<scene>.txt`` (``colorWidth = 1296`` ...) when present. Poses of ``-inf``
  (ScanNet's mark for lost tracking) are dropped and reported.
- ``nerfstudio``: a ``transforms.json`` with ``depth_file_path`` per frame (Polycam, Record3D through
  ``ns-process-data``): OpenGL camera->world ``transform_matrix``, intrinsics global or per frame, depth
  PNG or ``.npy`` times ``depth_unit_scale_factor`` (nerfstudio's default 1e-3 when absent; as nerfstudio
  does, the factor applies to ``.npy`` too). A depth map of another size but the same shape as the colour
  image is resampled onto the colour camera (nerfstudio's rule).

Every problem is a :class:`SplatError` naming the file (and the frame or line) at fault.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import imageio.v3 as iio
import numpy as np

from splat.capture.frames import FrameRef
from splat.data.camera import intrinsics_matrix, rigid_inverse, rigidity_error
from splat.errors import SplatError
from splat.io import read_json

FORMATS = ("tum", "scannet", "nerfstudio")

TUM_DEPTH_UNIT = 1.0 / 5000.0
TUM_FR3 = {"fx": 535.4, "fy": 539.2, "cx": 320.1, "cy": 247.6, "width": 640, "height": 480}
"""TUM fr3 colour calibration (images already undistorted), as published with the benchmark."""

_SAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])
_QUAT_NORM_TOLERANCE = 1e-2


@dataclass(frozen=True)
class ReaderOptions:
    """What a reader may need beyond the source folder (every field optional)."""

    intrinsics: tuple[float, float, float, float] | None = None
    """fx fy cx cy (pixels) overriding the source's colour intrinsics (TUM without intrinsics.txt)."""
    depth_unit: float | None = None
    """Metres per stored depth value, overriding the format's (TUM 1/5000, ScanNet 1e-3)."""
    time_tolerance: float = 0.02
    """TUM original layout: largest colour/depth/pose time difference (seconds) of one frame."""
    skip_unmatched: bool = False
    """TUM original layout: drop colour frames without depth or pose in time instead of failing."""


@dataclass(frozen=True, eq=False)
class CaptureListing:
    """The frames a reader found, in the capture's order.

    Attributes:
        format: "tum" | "scannet" | "nerfstudio".
        source: the source folder.
        layout: which layout of the format (e.g. "tum", "cubeslam").
        frames: every frame, in capture order (``frames[i].index == i``).
        notes: what the reader decided that a user should know (one line each).
        unmatched: names of colour frames left out for lack of a depth map or pose (``skip_unmatched``).
    """

    format: str
    source: Path
    layout: str
    frames: tuple[FrameRef, ...]
    notes: tuple[str, ...] = ()
    unmatched: tuple[str, ...] = ()


def quat_xyzw_to_matrix(q: np.ndarray) -> np.ndarray:
    """[4] unit quaternion (x, y, z, w) -> [3, 3] float64 rotation."""
    x, y, z, w = (float(c) for c in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    q0, q1 = q0 / np.linalg.norm(q0), q1 / np.linalg.norm(q1)
    dot = float(q0 @ q1)
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(1.0, dot))
    return (math.sin((1 - t) * theta) * q0 + math.sin(t * theta) * q1) / math.sin(theta)


def _pose(t: np.ndarray, q: np.ndarray, *, file: Path, field: str) -> np.ndarray:
    norm = float(np.linalg.norm(q))
    if not abs(norm - 1.0) <= _QUAT_NORM_TOLERANCE:
        raise SplatError(f"pose is not rigid: its quaternion has norm {norm:.6g}, a rotation needs 1", file=file,
                         field=field)
    m = np.eye(4)
    m[:3, :3] = quat_xyzw_to_matrix(q / norm)
    m[:3, 3] = t
    return m


def _numbers(line: str, n: int, *, file: Path, field: str) -> np.ndarray:
    parts = line.split()
    if len(parts) != n:
        raise SplatError(f"expected {n} numbers, got {len(parts)}: {line.strip()!r}", file=file, field=field)
    try:
        vals = np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        raise SplatError(f"not a number in {line.strip()!r}", file=file, field=field) from None
    if not np.all(np.isfinite(vals)):
        raise SplatError(f"NaN or infinite value in {line.strip()!r}", file=file, field=field)
    return vals


def _data_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the non-empty, non-comment lines of a text file."""
    if not path.is_file():
        raise SplatError("file not found", file=path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise SplatError(f"cannot read: {err}", file=path) from None
    out = []
    for k, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append((k, line))
    return out


def _safe_name(text: str) -> str:
    name = _SAFE.sub("_", text)
    return name if name and name[0] not in ".-" else f"f{name}"


def _check_source(src: Path) -> Path:
    src = Path(src)
    if not src.is_dir():
        raise SplatError("capture folder not found", file=src, field="SRC")
    return src


# ----------------------------------------------------------------------------------------------- TUM


def _tum_intrinsics(src: Path, options: ReaderOptions) -> tuple[np.ndarray, tuple[int, int] | None, float, str]:
    """(K, (w, h) or None, depth unit, where they came from)."""
    unit = TUM_DEPTH_UNIT
    size: tuple[int, int] | None = None
    vals: dict[str, float] = {}
    origin = ""
    path = src / "intrinsics.txt"
    if path.is_file():
        for k, line in _data_lines(path):
            parts = line.split()
            if len(parts) != 2:
                raise SplatError(f"expected 'key value', got {line!r}", file=path, field=f"line {k}")
            try:
                vals[parts[0]] = float(parts[1])
            except ValueError:
                raise SplatError(f"not a number: {parts[1]!r}", file=path, field=parts[0]) from None
        missing = [key for key in ("fx", "fy", "cx", "cy") if key not in vals and options.intrinsics is None]
        if missing:
            raise SplatError(f"missing {missing} (lines like 'fx 535.4')", file=path)
        if "width" in vals and "height" in vals:
            size = (int(vals["width"]), int(vals["height"]))
        if "depth_scale" in vals:
            if not vals["depth_scale"] > 0:
                raise SplatError(f"must be > 0, got {vals['depth_scale']}", file=path, field="depth_scale")
            unit = 1.0 / vals["depth_scale"]
        origin = str(path)
    elif options.intrinsics is None:
        if "freiburg3" in str(src.resolve()).lower() or "fr3" in src.resolve().name.lower():
            vals, size, origin = dict(TUM_FR3), (TUM_FR3["width"], TUM_FR3["height"]), "TUM fr3 calibration"
        else:
            raise SplatError("no intrinsics.txt in the capture folder: give --intrinsics FX FY CX CY (TUM fr1/fr2 "
                             "images are distorted; undistort them first)", file=src, field="intrinsics")
    if options.intrinsics is not None:
        vals.update(zip(("fx", "fy", "cx", "cy"), options.intrinsics))
        origin = "--intrinsics"
    K = intrinsics_matrix(vals["fx"], vals["fy"], vals["cx"], vals["cy"])
    if options.depth_unit is not None:
        unit = options.depth_unit
    return K, size, unit, origin


def _frame_number(path: Path) -> int | None:
    m = re.match(r"^(\d+)", path.stem)
    return int(m.group(1)) if m else None


def _numbered_files(folder: Path, suffixes: tuple[str, ...]) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in suffixes:
            k = _frame_number(p)
            if k is not None:
                if k in out:
                    raise SplatError(f"two files for frame {k}: {out[k].name} and {p.name}", file=folder)
                out[k] = p
    return out


def _read_tum_poses(path: Path) -> list[tuple[float, np.ndarray, np.ndarray, int]]:
    """[(timestamp, t [3], q xyzw [4], line number)] of a TUM trajectory file."""
    out = []
    for k, line in _data_lines(path):
        v = _numbers(line, 8, file=path, field=f"line {k}")
        out.append((float(v[0]), v[1:4], v[4:8], k))
    return out


def _list_cubeslam(src: Path, options: ReaderOptions) -> CaptureListing:
    K, size, unit, origin = _tum_intrinsics(src, options)
    rgb = _numbered_files(src / "rgb", (".jpg", ".jpeg", ".png"))
    depth = _numbered_files(src / "depth", (".png", ".npy"))
    if not rgb:
        raise SplatError("no colour images (NNNN_*.jpg or .png)", file=src / "rgb")
    only_rgb, only_depth = sorted(set(rgb) - set(depth)), sorted(set(depth) - set(rgb))
    if only_rgb or only_depth:
        what = (f"colour frames without a depth map: {only_rgb[:5]}" if only_rgb
                else f"depth maps without a colour image: {only_depth[:5]}")
        raise SplatError(f"unmatched frames, {what}", file=src / ("depth" if only_rgb else "rgb"))
    poses_path = src / "truth_cam_poses.txt"
    poses = _read_tum_poses(poses_path)
    numbers = sorted(rgb)
    if numbers != list(range(len(numbers))):
        gaps = sorted(set(range(numbers[-1] + 1)) - set(numbers))
        raise SplatError(f"missing frames {gaps[:5]}: frame k pairs with pose line k+1, so frames must be "
                         "numbered 0, 1, 2, ...", file=src / "rgb")
    if len(poses) != len(numbers):
        raise SplatError(f"unmatched frames: {len(numbers)} frames but {len(poses)} poses (one line per frame)",
                         file=poses_path)
    frames = []
    for i, k in enumerate(numbers):
        stamp, t, q, line = poses[i]
        frames.append(FrameRef(
            name=f"{k:04d}", index=i, rgb_path=rgb[k], depth_path=depth[k],
            c2w=_pose(t, q, file=poses_path, field=f"line {line}"), K_rgb=K, rgb_size=size, K_depth=K,
            depth_size=size, depth_unit=unit, grid="depth", timestamp=stamp))
    return CaptureListing("tum", src, "cubeslam", tuple(frames), notes=(f"intrinsics: {origin}",))


def _read_tum_list(path: Path) -> list[tuple[float, str, int]]:
    out = []
    for k, line in _data_lines(path):
        parts = line.split()
        if len(parts) != 2:
            raise SplatError(f"expected 'timestamp filename', got {line!r}", file=path, field=f"line {k}")
        try:
            stamp = float(parts[0])
        except ValueError:
            raise SplatError(f"not a timestamp: {parts[0]!r}", file=path, field=f"line {k}") from None
        out.append((stamp, parts[1], k))
    return out


def _interpolated_pose(stamps: np.ndarray, poses, t: float, tol: float, path: Path) -> np.ndarray | None:
    j = int(np.searchsorted(stamps, t))
    before = j - 1 if j > 0 else None
    after = j if j < len(stamps) else None
    if before is not None and after is not None and stamps[after] - stamps[before] <= 2 * tol:
        s0, t0, q0, line0 = poses[before]
        s1, t1, q1, line1 = poses[after]
        _pose(t0, q0, file=path, field=f"line {line0}")
        _pose(t1, q1, file=path, field=f"line {line1}")
        a = 0.0 if s1 == s0 else (t - s0) / (s1 - s0)
        m = np.eye(4)
        m[:3, :3] = quat_xyzw_to_matrix(_slerp(q0, q1, a))
        m[:3, 3] = (1 - a) * t0 + a * t1
        return m
    best = [i for i in (before, after) if i is not None]
    if not best:
        return None
    i = min(best, key=lambda i: abs(stamps[i] - t))
    if abs(stamps[i] - t) > tol:
        return None
    s, tt, q, line = poses[i]
    return _pose(tt, q, file=path, field=f"line {line}")


def _list_tum_original(src: Path, options: ReaderOptions) -> CaptureListing:
    K, size, unit, origin = _tum_intrinsics(src, options)
    rgb_list = _read_tum_list(src / "rgb.txt")
    depth_list = _read_tum_list(src / "depth.txt")
    gt_path = src / "groundtruth.txt"
    poses = sorted(_read_tum_poses(gt_path), key=lambda p: p[0])
    if not rgb_list:
        raise SplatError("lists no colour image", file=src / "rgb.txt")
    if not depth_list or not poses:
        raise SplatError("is empty", file=src / ("depth.txt" if not depth_list else "groundtruth.txt"))
    d_stamps = np.array([d[0] for d in depth_list])
    g_stamps = np.array([p[0] for p in poses])
    tol = options.time_tolerance
    frames, unmatched, used_depth = [], [], {}
    for stamp, rel, line in rgb_list:
        name = _safe_name(Path(rel).stem)
        j = int(np.argmin(np.abs(d_stamps - stamp)))
        pose = _interpolated_pose(g_stamps, poses, stamp, tol, gt_path)
        why = None
        if abs(d_stamps[j] - stamp) > tol:
            why = f"no depth map within {tol} s"
        elif pose is None:
            why = f"no ground-truth pose within {tol} s"
        elif j in used_depth:
            why = f"its nearest depth map is already paired with {used_depth[j]}"
        if why:
            if not options.skip_unmatched:
                raise SplatError(f"unmatched frame {name} (t = {stamp:.6f}): {why}; --skip-unmatched drops such "
                                 "frames", file=src / "rgb.txt", field=f"line {line}")
            unmatched.append(name)
            continue
        used_depth[j] = name
        frames.append(FrameRef(
            name=name, index=len(frames), rgb_path=src / rel, depth_path=src / depth_list[j][1], c2w=pose,
            K_rgb=K, rgb_size=size, K_depth=K, depth_size=size, depth_unit=unit, grid="depth", timestamp=stamp))
    if not frames:
        raise SplatError("no colour frame has a depth map and a pose in time", file=src / "rgb.txt")
    names = [f.name for f in frames]
    if len(set(names)) != len(names):
        raise SplatError("two colour images share a file name", file=src / "rgb.txt")
    notes = [f"intrinsics: {origin}"]
    if unmatched:
        notes.append(f"{len(unmatched)} colour frames without depth or pose in time left out (--skip-unmatched)")
    return CaptureListing("tum", src, "tum", tuple(frames), notes=tuple(notes), unmatched=tuple(unmatched))


def list_tum(src: Path, options: ReaderOptions = ReaderOptions()) -> CaptureListing:
    """List a TUM RGB-D capture (original or CubeSLAM layout, see the module docstring)."""
    src = _check_source(src)
    if (src / "rgb.txt").is_file() or (src / "groundtruth.txt").is_file():
        return _list_tum_original(src, options)
    if (src / "truth_cam_poses.txt").is_file() or (src / "rgb").is_dir():
        if not (src / "depth").is_dir():
            raise SplatError("no depth/ folder beside rgb/", file=src)
        return _list_cubeslam(src, options)
    raise SplatError("not a TUM capture: expected rgb.txt, depth.txt and groundtruth.txt (TUM) or rgb/, depth/ "
                     "and truth_cam_poses.txt (CubeSLAM copy)", file=src)


# ------------------------------------------------------------------------------------------- ScanNet


def _matrix_file(path: Path, *, what: str) -> np.ndarray:
    rows = _data_lines(path)
    try:
        m = np.array([[float(x) for x in line.split()] for _, line in rows], dtype=np.float64)
    except ValueError:
        raise SplatError(f"{what} must be a 4x4 matrix of numbers", file=path) from None
    if m.shape != (4, 4):
        raise SplatError(f"{what} must be a 4x4 matrix, got shape {list(m.shape)}", file=path)
    return m


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file (header only) or a .npy array."""
    try:
        if path.suffix.lower() == ".npy":
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        else:
            shape = iio.improps(path).shape
    except Exception as err:
        raise SplatError(f"cannot read: {err}", file=path) from None
    return int(shape[1]), int(shape[0])


def _scannet_sizes(src: Path) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """(colour (w, h), depth (w, h)) from the scan's ``<scene>.txt`` / ``_info.txt``, when present."""
    keys = {"colorWidth": None, "colorHeight": None, "depthWidth": None, "depthHeight": None,
            "m_colorWidth": None, "m_colorHeight": None, "m_depthWidth": None, "m_depthHeight": None}
    for p in sorted(src.glob("*.txt")):
        for _, line in _data_lines(p):
            if "=" in line:
                k, _, v = (s.strip() for s in line.partition("="))
                if k in keys:
                    try:
                        keys[k] = int(float(v))
                    except ValueError:
                        raise SplatError(f"not a number: {v!r}", file=p, field=k) from None

    def pair(a, b):
        w = keys[a] if keys[a] is not None else keys["m_" + a]
        h = keys[b] if keys[b] is not None else keys["m_" + b]
        return (w, h) if w is not None and h is not None else None

    return pair("colorWidth", "colorHeight"), pair("depthWidth", "depthHeight")


def list_scannet(src: Path, options: ReaderOptions = ReaderOptions()) -> CaptureListing:
    """List a ScanNet SensReader export (see the module docstring)."""
    src = _check_source(src)
    for sub in ("color", "depth", "pose", "intrinsic"):
        if not (src / sub).is_dir():
            raise SplatError(f"not a ScanNet export: no {sub}/ folder (expected color/, depth/, pose/, intrinsic/)",
                             file=src)
    K_rgb = _matrix_file(src / "intrinsic" / "intrinsic_color.txt", what="colour intrinsics")[:3, :3]
    K_depth = _matrix_file(src / "intrinsic" / "intrinsic_depth.txt", what="depth intrinsics")[:3, :3]
    for name in ("extrinsic_color.txt", "extrinsic_depth.txt"):
        p = src / "intrinsic" / name
        if p.is_file() and not np.allclose(_matrix_file(p, what="extrinsics"), np.eye(4), atol=1e-6):
            raise SplatError("colour and depth cameras at different places are not supported (extrinsics must be "
                             "the identity)", file=p)
    color = _numbered_files(src / "color", (".jpg", ".jpeg", ".png"))
    depth = _numbered_files(src / "depth", (".png", ".npy"))
    pose = _numbered_files(src / "pose", (".txt",))
    if not color:
        raise SplatError("no colour images (N.jpg)", file=src / "color")
    for what, have in (("depth map", depth), ("pose", pose)):
        missing = sorted(set(color) - set(have))
        if missing:
            raise SplatError(f"missing frames: colour frames {missing[:5]} have no {what}",
                             file=src / ("depth" if what == "depth map" else "pose"))
    extra = sorted((set(depth) | set(pose)) - set(color))
    if extra:
        raise SplatError(f"unmatched frames: depth maps or poses {extra[:5]} have no colour image", file=src / "color")
    rgb_size, depth_size = _scannet_sizes(src)
    first = min(color)
    stated = rgb_size is not None and depth_size is not None
    rgb_size = rgb_size or _image_size(color[first])
    depth_size = depth_size or _image_size(depth[first])
    for K, size, what, path in ((K_rgb, rgb_size, "colour", "intrinsic_color.txt"),
                                (K_depth, depth_size, "depth", "intrinsic_depth.txt")):
        if not (0 < K[0, 2] < size[0] and 0 < K[1, 2] < size[1]):
            raise SplatError(f"the {what} intrinsics (principal point {K[0, 2]:.1f}, {K[1, 2]:.1f}) do not fit "
                             f"{what} images of {size[0]}x{size[1]}", file=src / "intrinsic" / path)
    unit = options.depth_unit if options.depth_unit is not None else 1e-3
    if options.intrinsics is not None:
        K_rgb = intrinsics_matrix(*options.intrinsics)
    frames, invalid = [], []
    for i, k in enumerate(sorted(color)):
        path = pose[k]
        rows = _data_lines(path)
        try:
            m = np.array([[float(x) for x in line.split()] for _, line in rows], dtype=np.float64)
        except ValueError:
            raise SplatError("pose must be a 4x4 matrix of numbers", file=path) from None
        if m.shape != (4, 4):
            raise SplatError(f"pose must be a 4x4 matrix, got shape {list(m.shape)}", file=path)
        valid = bool(np.all(np.isfinite(m)))
        if valid:
            why = rigidity_error(m)
            if why:
                raise SplatError(f"camera->world pose {why}", file=path)
        else:
            invalid.append(str(k))
            m = np.eye(4)
        frames.append(FrameRef(
            name=str(k), index=i, rgb_path=color[k], depth_path=depth[k], c2w=m, K_rgb=K_rgb, rgb_size=rgb_size,
            K_depth=K_depth, depth_size=depth_size, depth_unit=unit, grid="depth", pose_valid=valid))
    notes = ["colour resampled onto the depth camera"]
    if not stated:
        notes.append("image sizes not stated (no <scene>.txt): every frame checked against the first one's")
    return CaptureListing("scannet", src, "sensreader", tuple(frames), notes=tuple(notes))


# ---------------------------------------------------------------------------------------- nerfstudio


def list_nerfstudio(src: Path, options: ReaderOptions = ReaderOptions()) -> CaptureListing:
    """List a nerfstudio ``transforms.json`` capture with depth (see the module docstring)."""
    from splat.data.transforms import frame_camera

    src = Path(src)
    json_file = src if src.suffix.lower() == ".json" else src / "transforms.json"
    if not json_file.parent.is_dir():
        raise SplatError("capture folder not found", file=json_file.parent, field="SRC")
    if not json_file.is_file():
        raise SplatError("not a nerfstudio capture: no transforms.json", file=json_file.parent)
    root = json_file.parent
    meta = read_json(json_file)
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list) or not meta["frames"]:
        raise SplatError("must be an object with a non-empty 'frames' list", file=json_file, field="frames")
    scale = meta.get("depth_unit_scale_factor", 1e-3)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise SplatError(f"must be a number > 0, got {scale!r}", file=json_file, field="depth_unit_scale_factor")
    unit = options.depth_unit if options.depth_unit is not None else float(scale)
    frames, seen = [], {}
    for i, frame in enumerate(meta["frames"]):
        if not isinstance(frame, dict):
            raise SplatError("must be an object", file=json_file, field=f"frames[{i}]")
        paths = {}
        for key in ("file_path", "depth_file_path"):
            rel = frame.get(key)
            if not isinstance(rel, str) or not rel:
                what = "a depth map: this importer needs depth" if key == "depth_file_path" else "an image"
                raise SplatError(f"missing frame data: frame {i} has no {what}", file=json_file,
                                 field=f"frames[{i}].{key}")
            p = Path(rel.replace("\\", "/"))
            paths[key] = p if p.is_absolute() else root / p
        name = _safe_name(paths["file_path"].stem)
        if name in seen:
            raise SplatError(f"frame name {name!r} is used twice (also frames[{seen[name]}])", file=json_file,
                             field=f"frames[{i}].file_path")
        seen[name] = i
        cam = frame_camera(frame, meta, i, name, json_file)
        c2w = rigid_inverse(cam.viewmat)
        if options.intrinsics is not None:
            K = intrinsics_matrix(*options.intrinsics)
        else:
            K = cam.K
        frames.append(FrameRef(
            name=name, index=i, rgb_path=paths["file_path"], depth_path=paths["depth_file_path"], c2w=c2w, K_rgb=K,
            rgb_size=(cam.width, cam.height), K_depth=None, depth_size=None, depth_unit=unit, grid="rgb"))
    return CaptureListing("nerfstudio", root, "transforms.json", tuple(frames))


READERS: dict[str, Callable[[Path, ReaderOptions], CaptureListing]] = {
    "tum": list_tum, "scannet": list_scannet, "nerfstudio": list_nerfstudio}


def list_capture(fmt: str, src: Path, options: ReaderOptions = ReaderOptions()) -> CaptureListing:
    """List the frames of ``src`` read as ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in READERS:
        raise SplatError(f"unknown capture format {fmt!r} (formats: {', '.join(FORMATS)})", field="FORMAT")
    return READERS[fmt](Path(src), options)
