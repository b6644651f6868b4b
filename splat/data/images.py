"""Reading and writing the per-frame files of a scene: RGB images, depth maps, masks.

Convention (docs/conventions.md): images are 8-bit sRGB PNG on disk and float32 [H, W, 3] in [0, 1]
in memory (still sRGB-encoded, not linear). Depth is z-depth in metres in memory, [H, W] float32 with 0
meaning no reading; on disk a 16-bit PNG holding ``depth / depth_unit_scale_factor`` (default 1e-3, so
millimetres) or a float32 ``.npy`` holding metres. Masks are bool [H, W] in memory (True = object) and
a single-channel PNG on disk (a pixel is True when its value is at least half the dtype's maximum).

Readers raise :class:`SplatError` naming ``json_file`` (the transforms.json) and ``field``
(``frames[3].depth_file_path``) and say what the file at fault is.
"""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from splat.errors import SplatError
from splat.io import atomic_path


_PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _imread(path: Path, json_file, field: str, what: str) -> np.ndarray:
    if not path.is_file():
        raise SplatError(f"{what} file {path} does not exist", file=json_file, field=field)
    plugin = "pillow" if path.suffix.lower() in _PILLOW_SUFFIXES else None
    try:
        return np.asarray(iio.imread(path, plugin=plugin))
    except Exception as err:  # imageio raises many types for corrupt or unknown files
        raise SplatError(f"cannot read {what} file {path}: {err}", file=json_file, field=field) from None


def _check_size(a: np.ndarray, height: int, width: int, path: Path, json_file, field: str, what: str):
    if a.shape[:2] != (height, width):
        raise SplatError(
            f"{what} {path} is {a.shape[1]}x{a.shape[0]} (w x h), expected {width}x{height} from w/h",
            file=json_file, field=field)


def read_image(path: Path, height: int, width: int, *, json_file=None, field: str = "file_path") -> np.ndarray:
    """Read an RGB image as float32 [H, W, 3] in [0, 1].

    8-bit and 16-bit images are divided by their maximum code value; grey images are repeated to three
    channels; an alpha channel is dropped (give the object mask with ``mask_path``).
    """
    a = _imread(path, json_file, field, "image")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise SplatError(f"image {path} has shape {list(a.shape)}, expected [H, W, 3]", file=json_file, field=field)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    a = a[:, :, :3]
    _check_size(a, height, width, path, json_file, field, "image")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    raise SplatError(f"image {path} has unsupported pixel type {a.dtype}, expected 8- or 16-bit",
                     file=json_file, field=field)


def read_depth(path: Path, height: int, width: int, scale: float, *, json_file=None,
               field: str = "depth_file_path") -> tuple[np.ndarray, int]:
    """Read a z-depth map in metres, [H, W] float32, 0 = missing.

    ``.npy`` files hold float metres; PNG files hold 16-bit integers times ``scale`` metres. NaN and
    +inf are replaced by 0 (missing); the caller warns. Negative depth is an error.

    Returns:
        depth: [H, W] float32 metres.
        n_nonfinite: how many NaN/+inf readings were replaced by 0.
    """
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise SplatError(f"depth file {path} does not exist", file=json_file, field=field)
        try:
            a = np.load(path, allow_pickle=False)
        except Exception as err:
            raise SplatError(f"cannot read depth file {path}: {err}", file=json_file, field=field) from None
        if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
            raise SplatError(f"depth {path} has non-numeric type {a.dtype}", file=json_file, field=field)
        a = a.astype(np.float32)
    else:
        a = _imread(path, json_file, field, "depth")
        if a.dtype != np.uint16:
            raise SplatError(f"depth PNG {path} has pixel type {a.dtype}, expected 16-bit (uint16)",
                             file=json_file, field=field)
        a = a.astype(np.float32) * np.float32(scale)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2 or a.shape != (height, width):
        raise SplatError(f"depth {path} has shape {list(a.shape)}, expected [{height}, {width}] ([h, w])",
                         file=json_file, field=field)
    if np.any(a < 0):  # NaN compares False
        raise SplatError(f"depth {path} has negative values (min {np.nanmin(a):.6g}); depth must be >= 0, "
                         "0 meaning no reading", file=json_file, field=field)
    bad = ~np.isfinite(a)
    n_bad = int(bad.sum())
    if n_bad:
        a = np.where(bad, np.float32(0.0), a)
    return a, n_bad


def read_mask(path: Path, height: int, width: int, *, json_file=None, field: str = "mask_path") -> np.ndarray:
    """Read an object mask as bool [H, W] (True = object). An all-empty mask is an error."""
    a = _imread(path, json_file, field, "mask")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2:
        raise SplatError(f"mask {path} has shape {list(a.shape)}, expected a single-channel [H, W] image",
                         file=json_file, field=field)
    _check_size(a, height, width, path, json_file, field, "mask")
    if a.dtype == np.bool_:
        m = a
    elif np.issubdtype(a.dtype, np.integer):
        m = a >= (np.iinfo(a.dtype).max + 1) // 2
    else:
        m = a >= 0.5
    if not m.any():
        raise SplatError(f"mask {path} is empty (no object pixel)", file=json_file, field=field)
    return m


def write_image(path: str | os.PathLike, image: np.ndarray, *, jpeg_quality: int = 95) -> None:
    """Write [H, W, 3] float in [0, 1] (or uint8) as an 8-bit PNG (or JPEG for a .jpg path), atomically."""
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image must be [H, W, 3], got {a.shape}")
    if a.dtype != np.uint8:
        if not np.all(np.isfinite(a)):
            raise ValueError("image has NaN or infinite values")
        a = np.clip(np.round(np.asarray(a, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        if tmp.suffix.lower() in (".jpg", ".jpeg"):
            iio.imwrite(tmp, a, quality=int(jpeg_quality))
        else:
            iio.imwrite(tmp, a)


def write_depth(path: str | os.PathLike, depth: np.ndarray, scale: float = 1e-3) -> None:
    """Write [H, W] z-depth in metres (0/NaN = missing), atomically.

    ``.png``: 16-bit integers ``round(depth / scale)``; depth beyond ``65535 * scale`` is an error.
    ``.npy``: float32 metres (NaN stored as 0).
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be [H, W], got {d.shape}")
    d = np.where(np.isfinite(d), d, 0.0)
    if np.any(d < 0):
        raise ValueError("depth must be >= 0")
    path = Path(path)
    if path.suffix.lower() == ".npy":
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, d.astype(np.float32))
        return
    q = np.round(d / scale)
    if q.max(initial=0) > 65535:
        raise ValueError(f"depth {d.max():.4g} m does not fit a 16-bit PNG at scale {scale} m")
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, q.astype(np.uint16))


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a bool [H, W] mask as an 8-bit PNG (0 / 255), atomically."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be [H, W], got {m.shape}")
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.where(m.astype(bool), 255, 0).astype(np.uint8))
