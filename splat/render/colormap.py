"""Colour-mapping depth and alpha maps into 8-bit images (numpy only).

Convention: inputs are float arrays ``[..., H, W]``; outputs are ``uint8`` ``[..., H, W, 3]`` sRGB.
Depth is z-depth in metres (docs/conventions.md); pixels without a reading (``valid`` False, or depth
<= 0) are drawn in ``background``.
"""

from __future__ import annotations

import numpy as np

# Turbo (Google, 2019) as its published 5th-order polynomial approximation per channel, written out as
# ascending coefficients c0..c5 of x^0..x^5 (the approximation is Apache-2.0 licensed, A. Mikhailov).
_TURBO_POLY = np.array([
    [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],  # red
    [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],  # green
    [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],  # blue
])


def turbo(x: np.ndarray) -> np.ndarray:
    """Turbo colormap. x ``[...]`` in [0, 1] (clipped) -> float RGB ``[..., 3]`` in [0, 1]."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    powers = x[..., None] ** np.arange(6)  # [..., 6]
    return np.clip(powers @ _TURBO_POLY.T, 0.0, 1.0)


def depth_range(depth: np.ndarray, valid: np.ndarray, *, percentile: float = 1.0) -> tuple[float, float]:
    """Robust (near, far) of the valid depths: the ``percentile`` and ``100 - percentile`` percentiles.

    Returns ``(0, 1)`` when nothing is valid, and widens a zero-width range so that division is safe.
    """
    vals = np.asarray(depth)[np.asarray(valid, dtype=bool)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, [percentile, 100.0 - percentile])
    if not hi > lo:
        hi = lo + max(abs(lo) * 1e-3, 1e-6)
    return float(lo), float(hi)


def colorize_depth(depth: np.ndarray, valid: np.ndarray | None = None, *, near: float | None = None,
                   far: float | None = None, background: tuple[float, float, float] = (0.0, 0.0, 0.0)
                   ) -> np.ndarray:
    """Depth ``[..., H, W]`` -> turbo-coloured ``uint8 [..., H, W, 3]`` (near = blue/dark, far = red).

    ``near``/``far`` default to robust percentiles of the valid pixels (give them explicitly to keep the
    scale fixed across the frames of a video). ``valid`` defaults to ``depth > 0``.
    """
    depth = np.asarray(depth, dtype=np.float64)
    valid = (depth > 0) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(depth))
    if near is None or far is None:
        lo, hi = depth_range(depth, valid)
        near = lo if near is None else near
        far = hi if far is None else far
    span = far - near if far > near else 1e-6
    t = np.where(valid, (np.nan_to_num(depth) - near) / span, 0.0)
    rgb = turbo(t)
    rgb = np.where(valid[..., None], rgb, np.asarray(background, dtype=np.float64))
    return to_uint8(rgb)


def colorize_alpha(alpha: np.ndarray) -> np.ndarray:
    """Alpha ``[..., H, W]`` in [0, 1] -> grey ``uint8 [..., H, W, 3]``."""
    a = np.asarray(alpha, dtype=np.float64)
    return to_uint8(np.repeat(a[..., None], 3, axis=-1))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (clipped, NaN -> 0) -> ``uint8`` (rounded)."""
    a = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
