"""Per-frame depth check: after posing, does a frame's depth agree with its neighbours'?

Each frame's depth readings (a random sample) are moved into the world with its pose and projected into
the frames that see the same place; where that frame has a reading, the z difference is the
disagreement. Differences above ``gate`` are occlusions or disocclusions and are not counted. A pair's
residual is the median |dz| both ways; a frame's score is the median residual to its ``neighbours`` most
overlapping frames. A pose a few centimetres off shows in every pair it is part of, while sensor noise
does not grow with it. Frames scoring above the threshold are dropped worst first, each drop leaving
the remaining frames' scores free of the dropped one.

Convention: depth is z-depth in metres (0 = no reading); poses camera->world, OpenCV camera axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from splat.capture.frames import CaptureFrame, frame_points


def occlusion_margin(depth: np.ndarray) -> np.ndarray:
    """How far behind the seen surface a point may lie and still count as on it (metres): beyond, the
    frame's view of it is blocked by something in front (an occlusion, not a disagreement)."""
    return 0.02 + 0.01 * depth


@dataclass(frozen=True)
class DepthCheckSettings:
    """How frames are compared (metres unless said)."""

    threshold: float | None = None
    """Largest accepted score; None: ``factor`` x the median score, at least ``min_threshold``."""
    factor: float = 2.5
    min_threshold: float = 0.01
    neighbours: int = 4
    """Frames a frame is compared with (the most overlapping ones)."""
    candidates: int = 12
    """Nearest frames (camera position and direction) among which the neighbours are chosen."""
    samples: int = 3000
    """Depth readings sampled per frame."""
    gate: float = 0.2
    """Differences above this are occlusions, not disagreement."""
    min_overlap: float = 0.2
    """Fraction of a frame's samples another frame must see (with a reading) to be its neighbour."""
    max_depth: float | None = None
    seed: int = 0


@dataclass(frozen=True)
class DepthCheck:
    """Result of :func:`check_depth`.

    Attributes:
        scores: [N] each frame's score (metres) with every frame present; NaN: no overlapping neighbour.
        threshold: the threshold used (metres).
        dropped: frame positions (into the checked list) dropped, worst first.
        dropped_scores: the score of each dropped frame when it was dropped.
    """

    scores: np.ndarray
    threshold: float
    dropped: tuple[int, ...]
    dropped_scores: tuple[float, ...]


def _samples(frame: CaptureFrame, n: int, max_depth, rng) -> np.ndarray:
    """World points [P, 3] of a random sample of a frame's readings."""
    p, _ = frame_points(frame, max_depth=max_depth)
    if len(p) > n:
        p = p[rng.choice(len(p), n, replace=False)]
    return p


def sample_depth(depth: np.ndarray, u: np.ndarray, v: np.ndarray, *, max_step: float = 0.05) -> np.ndarray:
    """Depth at continuous pixel coordinates (centres at +0.5): bilinear in inverse depth (exact on a
    plane) between the four surrounding readings; 0 where one is missing, outside the image, or where
    they differ by more than ``max_step`` (relative: a depth edge, not a surface)."""
    h, w = depth.shape
    x, y = u - 0.5, v - 0.5
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    ok = (x0 >= 0) & (x0 + 1 < w) & (y0 >= 0) & (y0 + 1 < h)
    x0c, y0c = np.where(ok, x0, 0), np.where(ok, y0, 0)
    q = np.stack([depth[y0c, x0c], depth[y0c, x0c + 1], depth[y0c + 1, x0c], depth[y0c + 1, x0c + 1]], axis=-1)
    q = q.astype(np.float64)
    ok &= np.all(q > 0, axis=-1)
    lo, hi = q.min(-1), q.max(-1)
    ok &= hi - lo <= max_step * np.maximum(lo, 1e-9)
    fx, fy = x - x0, y - y0
    inv = 1.0 / np.where(q > 0, q, 1.0)
    top = inv[..., 0] * (1 - fx) + inv[..., 1] * fx
    bottom = inv[..., 2] * (1 - fx) + inv[..., 3] * fx
    out = 1.0 / (top * (1 - fy) + bottom * fy)
    return np.where(ok, out, 0.0)


def _pair(points: np.ndarray, frame: CaptureFrame, gate: float) -> tuple[float, float]:
    """(overlap fraction, median |dz|) of world points seen by ``frame``. Points the frame sees something
    in front of (an occlusion) and points more than ``gate`` in front of what it sees are not counted."""
    if len(points) == 0:
        return 0.0, float("nan")
    w2c = np.linalg.inv(frame.c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    front = z > 1e-3
    zz = np.where(front, z, 1.0)
    u = frame.K[0, 0] * cam[:, 0] / zz + frame.K[0, 2]
    v = frame.K[1, 1] * cam[:, 1] / zz + frame.K[1, 2]
    d = np.where(front, sample_depth(frame.depth, u, v), 0.0)
    ok = d > 0
    if not ok.any():
        return 0.0, float("nan")
    signed = z - d  # > 0: the point lies behind what the frame sees there (hidden, or the pose is off)
    close = ok & (signed > -gate) & (signed < occlusion_margin(d))
    return float(ok.mean()), float(np.median(np.abs(signed[close]))) if close.any() else gate


def check_depth(frames: Sequence[CaptureFrame], settings: DepthCheckSettings = DepthCheckSettings()) -> DepthCheck:
    """Score every frame's depth agreement with its neighbours and pick the frames to drop."""
    n = len(frames)
    if n < 3:
        return DepthCheck(np.full(n, np.nan), float("nan"), (), ())
    rng = np.random.default_rng(settings.seed)
    pts = [_samples(f, settings.samples, settings.max_depth, rng) for f in frames]
    centres = np.stack([f.c2w[:3, 3] for f in frames])
    axes = np.stack([f.c2w[:3, 2] for f in frames])
    scale = float(np.median([np.median(np.linalg.norm(p - c, axis=1)) for p, c in zip(pts, centres) if len(p)]))
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    dist = dist + scale * (1.0 - np.clip(axes @ axes.T, -1.0, 1.0))
    np.fill_diagonal(dist, np.inf)
    k = min(settings.candidates, n - 1)
    cand = np.argsort(dist, axis=1)[:, :k]
    pairs = {(min(i, j), max(i, j)) for i in range(n) for j in cand[i]}
    overlap = np.zeros((n, n))
    resid = np.full((n, n), np.nan)
    for i, j in sorted(pairs):
        overlap[i, j], resid[i, j] = _pair(pts[i], frames[j], settings.gate)
        overlap[j, i], resid[j, i] = _pair(pts[j], frames[i], settings.gate)
    sym_overlap = np.minimum(overlap, overlap.T)
    sym_resid = (resid + resid.T) / 2

    def scores(active: np.ndarray) -> np.ndarray:
        out = np.full(n, np.nan)
        for i in np.nonzero(active)[0]:
            o = np.where(active, sym_overlap[i], 0.0)
            o[i] = 0.0
            nb = [j for j in np.argsort(-o)[: settings.neighbours] if o[j] >= settings.min_overlap]
            vals = sym_resid[i, nb]
            vals = vals[np.isfinite(vals)]
            if len(vals):
                out[i] = float(np.median(vals))
        return out

    active = np.ones(n, bool)
    first = scores(active)
    if settings.threshold is not None:
        threshold = float(settings.threshold)
    else:
        med = np.nanmedian(first) if np.isfinite(first).any() else 0.0
        threshold = max(settings.min_threshold, settings.factor * float(med))
    dropped, dropped_scores = [], []
    current = first
    while active.sum() > 2:
        s = np.where(active & np.isfinite(current), current, -np.inf)
        worst = int(np.argmax(s))
        if not s[worst] > threshold:
            break
        dropped.append(worst)
        dropped_scores.append(float(s[worst]))
        active[worst] = False
        current = scores(active)
    return DepthCheck(first, threshold, tuple(dropped), tuple(dropped_scores))
