"""Writing 8-bit images atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from splat.io import atomic_path


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write ``uint8 [H, W, 3]`` (or ``[H, W]``) to ``path`` as PNG, atomically; return the path."""
    import imageio.v3 as iio

    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8, got {image.dtype}")
    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, image, extension=".png")
    return path
