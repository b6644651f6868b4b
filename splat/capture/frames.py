"""One RGB-D frame of a capture: what a reader lists (:class:`FrameRef`), what is read
(:class:`CaptureFrame`), and the resampling that brings colour and depth onto one pixel grid.

Convention (docs/conventions.md): ``c2w`` is camera->capture world with **OpenCV** camera axes (x right,
y down, z forward), ``K`` in pixels with pixel centres at +0.5; depth is z-depth in metres, float32,
0 = no reading; colour is uint8 sRGB ``[H, W, 3]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from splat.errors import SplatError

GRIDS = ("depth", "rgb")


@dataclass(frozen=True, eq=False)
class FrameRef:
    """A frame as a reader lists it; no pixel is read yet.

    Attributes:
        name: unique frame name, a safe file stem (letters, digits, ``_ . -``).
        index: position in the capture's own order (what ``--frames`` and ``--every`` count).
        rgb_path: the colour image.
        depth_path: the depth map (16-bit PNG in ``depth_unit`` metres, or ``.npy`` times ``depth_unit``).
        c2w: [4, 4] float64 camera->capture world, OpenCV camera axes; rigid.
        K_rgb: [3, 3] colour intrinsics.
        rgb_size: (width, height) the colour intrinsics are for, or None when the source does not say.
        K_depth: [3, 3] depth intrinsics, or None: the depth map covers the colour image's view at its
            own resolution (the intrinsics scale with the size; nerfstudio's rule).
        depth_size: (width, height) the depth intrinsics are for, or None when the source does not say.
        depth_unit: metres per stored depth value.
        grid: the pixel grid of the imported frame: ``"depth"`` (colour is resampled onto the depth
            camera) or ``"rgb"`` (depth is resampled onto the colour camera, nearest reading).
        timestamp: seconds, when the source has them.
        pose_valid: False when the source marks the pose invalid (ScanNet writes ``-inf``); such frames
            are dropped and reported, not imported.
    """

    name: str
    index: int
    rgb_path: Path
    depth_path: Path
    c2w: np.ndarray
    K_rgb: np.ndarray
    rgb_size: tuple[int, int] | None
    K_depth: np.ndarray | None
    depth_size: tuple[int, int] | None
    depth_unit: float
    grid: str = "depth"
    timestamp: float | None = None
    pose_valid: bool = True


@dataclass(frozen=True, eq=False)
class CaptureFrame:
    """A read frame, colour and depth on one pixel grid.

    Attributes:
        name: frame name (unique, safe file stem).
        index: position in the capture's own order.
        rgb: [H, W, 3] uint8 sRGB colour.
        depth: [H, W] float32 z-depth in metres, 0 = no reading.
        K: [3, 3] float64 intrinsics of this grid.
        c2w: [4, 4] float64 camera->world (OpenCV camera axes).
    """

    name: str
    index: int
    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    c2w: np.ndarray

    @property
    def width(self) -> int:
        return int(self.depth.shape[1])

    @property
    def height(self) -> int:
        return int(self.depth.shape[0])

    def replace(self, **changes) -> "CaptureFrame":
        fields = dict(name=self.name, index=self.index, rgb=self.rgb, depth=self.depth, K=self.K, c2w=self.c2w)
        fields.update(changes)
        return CaptureFrame(**fields)


def _imread(path: Path, what: str, name: str) -> np.ndarray:
    if not path.is_file():
        raise SplatError(f"{what} of frame {name} is missing", file=path)
    try:
        return np.asarray(iio.imread(path))
    except Exception as err:  # imageio raises many types for corrupt files
        raise SplatError(f"cannot read the {what} of frame {name}: {err}", file=path) from None


def read_rgb(path: Path, name: str) -> np.ndarray:
    """[H, W, 3] uint8 colour (grey repeated, alpha dropped, 16-bit scaled down)."""
    a = _imread(path, "colour image", name)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise SplatError(f"colour image of frame {name} has shape {list(a.shape)}, expected [H, W, 3]", file=path)
    a = np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[:, :, :3]
    if a.dtype == np.uint16:
        a = np.round(a.astype(np.float64) / 257.0).astype(np.uint8)
    if a.dtype != np.uint8:
        raise SplatError(f"colour image of frame {name} has pixel type {a.dtype}, expected 8 or 16 bit", file=path)
    return a


def read_depth_metres(path: Path, unit: float, name: str) -> np.ndarray:
    """[H, W] float32 metres from a 16-bit PNG (value * unit) or a ``.npy`` (value * unit); 0 = missing."""
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise SplatError(f"depth map of frame {name} is missing", file=path)
        try:
            a = np.load(path, allow_pickle=False)
        except Exception as err:
            raise SplatError(f"cannot read the depth map of frame {name}: {err}", file=path) from None
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise SplatError(f"depth map of frame {name} has non-numeric type {a.dtype}", file=path)
    else:
        a = _imread(path, "depth map", name)
        if a.dtype != np.uint16:
            raise SplatError(f"depth PNG of frame {name} has pixel type {a.dtype}, expected 16-bit", file=path)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2:
        raise SplatError(f"depth map of frame {name} has shape {list(a.shape)}, expected [H, W]", file=path)
    d = a.astype(np.float64) * float(unit)
    d = np.where(np.isfinite(d) & (d > 0), d, 0.0)
    return d.astype(np.float32)


def scaled_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics of the same view at a resolution scaled by (sx, sy) (pixel centres at +0.5 stay exact)."""
    out = np.array(K, dtype=np.float64)
    out[0] *= sx
    out[1] *= sy
    out[2] = [0.0, 0.0, 1.0]
    return out


def _pixel_centres(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)


def _bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample [H, W, C] float at continuous pixel coordinates (centres at +0.5), edge-clamped."""
    h, w = image.shape[:2]
    x = np.clip(u - 0.5, 0.0, w - 1.0)
    y = np.clip(v - 0.5, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2) if w > 1 else np.zeros_like(x, dtype=np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2) if h > 1 else np.zeros_like(y, dtype=np.int64)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def warp_rgb(rgb: np.ndarray, K_src: np.ndarray, K_dst: np.ndarray, width: int, height: int) -> np.ndarray:
    """Colour of a camera with intrinsics ``K_src`` seen through ``K_dst`` (same centre and axes).

    Each output pixel averages s x s bilinear samples (s = the resolution ratio, rounded up, at most 4),
    so a finer source is area-averaged rather than aliased. [H', W', 3] uint8.
    """
    if np.allclose(K_src, K_dst) and rgb.shape[:2] == (height, width):
        return rgb.copy()
    ratio = max(K_src[0, 0] / K_dst[0, 0], K_src[1, 1] / K_dst[1, 1])
    s = int(min(4, max(1, math.ceil(ratio - 1e-9))))
    src = rgb.astype(np.float64)
    acc = np.zeros((height, width, 3))
    offsets = (np.arange(s) + 0.5) / s - 0.5
    for dy in offsets:
        for dx in offsets:
            u, v = _pixel_centres(width, height)
            u, v = u + dx, v + dy
            x = (u - K_dst[0, 2]) / K_dst[0, 0]
            y = (v - K_dst[1, 2]) / K_dst[1, 1]
            acc += _bilinear(src, K_src[0, 0] * x + K_src[0, 2], K_src[1, 1] * y + K_src[1, 2])
    return np.clip(np.round(acc / (s * s)), 0, 255).astype(np.uint8)


def warp_depth(depth: np.ndarray, K_src: np.ndarray, K_dst: np.ndarray, width: int, height: int) -> np.ndarray:
    """Depth of a camera with intrinsics ``K_src`` on the grid of ``K_dst`` (same centre and axes): each
    output pixel takes the reading of the source pixel its centre falls in (no new depth values), 0 outside.
    [H', W'] float32."""
    if np.allclose(K_src, K_dst) and depth.shape == (height, width):
        return depth.copy()
    u, v = _pixel_centres(width, height)
    x = (u - K_dst[0, 2]) / K_dst[0, 0]
    y = (v - K_dst[1, 2]) / K_dst[1, 1]
    col = np.floor(K_src[0, 0] * x + K_src[0, 2]).astype(np.int64)
    row = np.floor(K_src[1, 1] * y + K_src[1, 2]).astype(np.int64)
    h, w = depth.shape
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    out = np.zeros((height, width), np.float32)
    out[inside] = depth[row[inside], col[inside]]
    return out


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def read_frame(ref: FrameRef) -> CaptureFrame:
    """Read a listed frame and bring colour and depth onto one grid (``ref.grid``).

    Raises:
        SplatError: a missing or unreadable file; colour or depth of another size than the intrinsics
            say; a depth map that has no reading at all.
    """
    rgb = read_rgb(ref.rgb_path, ref.name)
    depth = read_depth_metres(ref.depth_path, ref.depth_unit, ref.name)
    rgb_size = (rgb.shape[1], rgb.shape[0])
    depth_size = (depth.shape[1], depth.shape[0])
    if ref.rgb_size is not None and rgb_size != tuple(ref.rgb_size):
        raise SplatError(f"colour image of frame {ref.name} is {_size_text(rgb_size)}, its intrinsics are for "
                         f"{_size_text(ref.rgb_size)}", file=ref.rgb_path)
    if ref.depth_size is not None and depth_size != tuple(ref.depth_size):
        raise SplatError(f"depth map of frame {ref.name} is {_size_text(depth_size)}, its intrinsics are for "
                         f"{_size_text(ref.depth_size)}", file=ref.depth_path)
    if not np.any(depth > 0):
        raise SplatError(f"depth map of frame {ref.name} is all zero (no reading)", file=ref.depth_path)
    if ref.K_depth is None:  # the depth map covers the colour view at its own resolution
        w, h = rgb_size
        if round(h * depth_size[0] / w) != depth_size[1] and round(w * depth_size[1] / h) != depth_size[0]:
            raise SplatError(f"depth map of frame {ref.name} is {_size_text(depth_size)}, which is not the "
                             f"shape of its colour image's intrinsics ({_size_text(rgb_size)})", file=ref.depth_path)
        K_depth = scaled_intrinsics(ref.K_rgb, depth_size[0] / w, depth_size[1] / h)
    else:
        K_depth = np.asarray(ref.K_depth, dtype=np.float64)
    if ref.grid == "depth":
        K = K_depth
        rgb = warp_rgb(rgb, ref.K_rgb, K, depth_size[0], depth_size[1])
    elif ref.grid == "rgb":
        K = np.asarray(ref.K_rgb, dtype=np.float64)
        depth = warp_depth(depth, K_depth, K, rgb_size[0], rgb_size[1])
    else:
        raise ValueError(f"grid must be one of {GRIDS}, got {ref.grid!r}")
    return CaptureFrame(name=ref.name, index=ref.index, rgb=rgb, depth=depth, K=K,
                        c2w=np.array(ref.c2w, dtype=np.float64))


def downscale_frame(frame: CaptureFrame, factor: int) -> CaptureFrame:
    """The frame at 1/``factor`` resolution (integer factor; rows and columns past a multiple are cut).

    Colour: mean of each factor x factor block. Depth: the lower median of the block's readings (an
    actual reading, never a blend of a near and a far surface), 0 when the block has none. Intrinsics
    scale by 1/factor (exact with pixel centres at +0.5).
    """
    if factor == 1:
        return frame
    if factor < 1:
        raise ValueError(f"downscale factor must be >= 1, got {factor}")
    h, w = frame.height // factor, frame.width // factor
    if h == 0 or w == 0:
        raise SplatError(f"--downscale {factor} leaves no pixel of the {frame.width}x{frame.height} frame "
                         f"{frame.name}", field="--downscale")
    rgb = frame.rgb[: h * factor, : w * factor].astype(np.float64)
    rgb = rgb.reshape(h, factor, w, factor, 3).mean(axis=(1, 3))
    d = frame.depth[: h * factor, : w * factor].reshape(h, factor, w, factor).transpose(0, 2, 1, 3)
    d = d.reshape(h, w, factor * factor).astype(np.float32)
    valid = d > 0
    n = valid.sum(-1)
    srt = np.sort(np.where(valid, d, np.inf), axis=-1)
    pick = np.take_along_axis(srt, np.maximum(n - 1, 0)[..., None] // 2, axis=-1)[..., 0]
    depth = np.where(n > 0, pick, 0.0).astype(np.float32)
    K = scaled_intrinsics(frame.K, 1.0 / factor, 1.0 / factor)
    return frame.replace(rgb=np.clip(np.round(rgb), 0, 255).astype(np.uint8), depth=depth, K=K)


def transform_points(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[4, 4] applied to [P, 3] points."""
    return np.asarray(points, dtype=np.float64) @ m[:3, :3].T + m[:3, 3]


def frame_points(frame: CaptureFrame, *, stride: int = 1, max_depth: float | None = None,
                 keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """World points (the frame's ``c2w`` world) of a frame's depth readings.

    Returns:
        points: [P, 3] float64.
        pixels: [P, 2] int (row, column) of each point.
    """
    depth = frame.depth
    valid = depth > 0
    if max_depth is not None:
        valid &= depth <= max_depth
    if keep is not None:
        valid &= keep
    if stride > 1:
        sub = np.zeros_like(valid)
        sub[::stride, ::stride] = True
        valid &= sub
    rows, cols = np.nonzero(valid)
    z = depth[rows, cols].astype(np.float64)
    K = frame.K
    x = (cols + 0.5 - K[0, 2]) / K[0, 0] * z
    y = (rows + 0.5 - K[1, 2]) / K[1, 1] * z
    cam = np.stack([x, y, z], axis=1)
    return transform_points(frame.c2w, cam), np.stack([rows, cols], axis=1)


def depth_normals(frame: CaptureFrame) -> np.ndarray:
    """[H, W, 3] unit surface normals of a depth map in the camera frame (central differences of the
    back-projected points; zero where a neighbour has no reading)."""
    d = frame.depth.astype(np.float64)
    h, w = d.shape
    K = frame.K
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    p = np.stack([(u - K[0, 2]) / K[0, 0] * d, (v - K[1, 2]) / K[1, 1] * d, d], axis=-1)
    valid = d > 0
    du = np.zeros_like(p)
    dv = np.zeros_like(p)
    du[:, 1:-1] = p[:, 2:] - p[:, :-2]
    dv[1:-1] = p[2:] - p[:-2]
    ok = np.zeros_like(valid)
    ok[1:-1, 1:-1] = valid[1:-1, 2:] & valid[1:-1, :-2] & valid[2:, 1:-1] & valid[:-2, 1:-1]
    n = np.cross(du, dv)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where(ok[..., None] & (norm > 0), n / np.maximum(norm, 1e-12), 0.0)
