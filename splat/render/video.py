"""Writing frame sequences as MP4 (H.264 via imageio-ffmpeg) or GIF, atomically.

Convention: frames are ``uint8 [T, H, W, 3]`` sRGB. The container is picked from the suffix (``.mp4``
or ``.gif``). The file is written under a temporary name beside the target and renamed when complete,
so a killed render never leaves a truncated video under the final name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from splat.errors import SplatError
from splat.io import atomic_path

VIDEO_SUFFIXES = (".mp4", ".gif")


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad H and W to even sizes by repeating the last row/column (yuv420p needs even sizes)."""
    t, h, w, _ = frames.shape
    ph, pw = h % 2, w % 2
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return frames


def write_video(path: str | os.PathLike, frames: np.ndarray | list[np.ndarray], *, fps: float = 20.0) -> Path:
    """Write ``frames`` (uint8 ``[T, H, W, 3]``) to ``path`` (.mp4 or .gif) atomically; return the path.

    MP4 uses libx264 / yuv420p at quality 8 (odd sizes are padded by one pixel). GIF loops forever;
    Pillow stores identical consecutive frames once with their durations added, so a GIF may hold fewer
    frames than ``T`` while playing for exactly ``T / fps`` seconds.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise SplatError(f"unsupported video format {path.suffix!r}; use one of {list(VIDEO_SUFFIXES)}", file=path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] < 1:
        raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.dtype} {frames.shape}")
    if not fps > 0:
        raise SplatError(f"must be > 0, got {fps}", field="fps")
    import imageio.v2 as imageio

    with atomic_path(path) as tmp:
        if suffix == ".mp4":
            writer = imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=8,
                                        pixelformat="yuv420p", macro_block_size=1)
            try:
                for f in _even(frames):
                    writer.append_data(f)
            finally:
                writer.close()
        else:
            imageio.mimwrite(tmp, list(frames), format="GIF", duration=1000.0 / fps, loop=0)
    return path


def count_frames(path: str | os.PathLike) -> int:
    """Number of frames in a video written by :func:`write_video` (decodes the file)."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix.lower() == ".mp4":
        return sum(1 for _ in iio.imiter(path, plugin="pyav")) if _has_pyav() else _count_ffmpeg(path)
    return iio.imread(path, index=None).shape[0]


def _has_pyav() -> bool:
    import importlib.util

    return importlib.util.find_spec("av") is not None


def _count_ffmpeg(path: Path) -> int:
    import imageio.v2 as imageio

    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        return sum(1 for _ in reader)
    finally:
        reader.close()
