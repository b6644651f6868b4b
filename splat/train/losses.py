"""Losses of the joint stage: photometric, mask, expected depth, Chamfer to the scan, regularisers.

Convention: images are channels-last ``[H, W, C]`` floats in [0, 1] (the rasterizer's layout), masks
bool ``[H, W]``, depths z-depth in metres with 0 = missing. Every function returns a 0-d tensor.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from splat.metrics import ssim
from splat.ops import ChamferSettings, chamfer_distance


def photometric_loss(render: Tensor, target: Tensor, ssim_weight: float,
                     keep: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """3DGS photometric loss ``(1 - w) L1 + w (1 - SSIM)`` on ``[H, W, 3]`` images; returns (loss, l1).

    ``keep [H, W]`` bool (None: every pixel) limits the loss to some pixels (the object mask of a
    capture, minus occluded pixels): elsewhere the target is replaced by the (detached) render, so those
    pixels cost nothing and give no gradient, while SSIM windows that straddle the border still compare
    the kept pixels; L1 is the mean over the kept pixels.
    """
    if keep is not None:
        target = torch.where(keep[..., None], target, render.detach())
        n = keep.sum().clamp_min(1) * render.shape[-1]
        l1 = (render - target).abs().sum() / n
    else:
        l1 = (render - target).abs().mean()
    if ssim_weight <= 0:
        return l1, l1
    d_ssim = 1.0 - ssim(render, target, padding="same")
    return (1.0 - ssim_weight) * l1 + ssim_weight * d_ssim, l1


def mask_loss(alpha: Tensor, mask: Tensor, valid: Tensor | None = None) -> Tensor:
    """L1 between accumulated opacity ``[H, W]`` and the object mask ``[H, W]`` (over ``valid`` pixels
    when given: an occluded pixel says nothing about the object's silhouette)."""
    err = (alpha - mask.to(alpha.dtype)).abs()
    if valid is None:
        return err.mean()
    return (err * valid).sum() / valid.sum().clamp_min(1)


def depth_loss(expected_depth: Tensor, depth: Tensor, mask: Tensor | None, *,
               max_residual: float = 0.0) -> Tensor:
    """Mean |ED - depth| (metres) over pixels with a depth reading (inside the mask when given).

    ``max_residual`` > 0 leaves out residuals above it (sensor outliers, flying pixels at depth edges),
    so a few bad readings cannot pull the surface: the loss is the mean over the inliers."""
    valid = depth > 0
    if mask is not None:
        valid = valid & mask
    if max_residual > 0:
        valid = valid & ((expected_depth.detach() - depth).abs() <= max_residual)
    if not bool(valid.any()):
        return expected_depth.sum() * 0.0
    return (expected_depth[valid] - depth[valid]).abs().mean()


def erode_mask(mask: Tensor, pixels: int) -> Tensor:
    """``mask [H, W]`` bool shrunk by ``pixels`` (a square structuring element; beyond the image border
    counts as outside)."""
    if pixels <= 0:
        return mask
    outside = torch.nn.functional.pad((~mask).to(torch.float32)[None, None], (pixels,) * 4, value=1.0)
    grown = torch.nn.functional.max_pool2d(outside, 2 * pixels + 1, stride=1)
    return grown[0, 0] == 0


def occluded_pixels(expected_depth: Tensor, alpha: Tensor, depth: Tensor, margin: float) -> Tensor:
    """``[H, W]`` bool: pixels where the sensor saw something nearer than the rendered object by more than
    ``margin`` metres, where the object is rendered (alpha > 0.5): an occluder the model does not hold."""
    ed, a = expected_depth.detach(), alpha.detach()
    return (depth > 0) & (a > 0.5) & (depth < ed - margin)


def chamfer_loss(surface: Tensor, scan: Tensor, extent: float, *, trim: float = 0.0) -> Tensor:
    """One-sided squared Chamfer from the scan ``[P, 3]`` to program surface samples ``[S, 3]``
    (completeness), divided by ``extent^2`` so it is scale-free.

    One-sided on purpose: surfaces no camera saw (the underside of a seat) have no scan points, and
    the program->scan term would pull them onto the visible side, biasing thin parts thinner. Extra
    program surface is penalised by the photometric and mask losses instead. ``trim`` in [0, 0.5)
    leaves out that fraction of the scan points farthest from the surface (a trimmed mean: clutter or
    floor left in a capture's scan cannot drag the program)."""
    res = chamfer_distance(surface[None], scan[None].to(surface.dtype),
                           settings=ChamferSettings(squared=True, direction="y_to_x", trim=trim))
    return res.loss[0] / (extent**2)


def scale_loss(world_factors: Tensor, max_scale: float) -> Tensor:
    """Mean squared excess of world axis lengths (columns of ``factors [M, 3, 3]``) over ``max_scale``."""
    if world_factors.shape[0] == 0:
        return world_factors.sum() * 0.0
    # relu(|column| - max_scale) as sqrt(max(|column|^2, max_scale^2)) - max_scale: the same value, a
    # finite gradient (the clamp keeps sqrt away from 0), and 6-8x faster than linalg.vector_norm over
    # the middle dim of a [M, 3, 3] tensor on the CPU (a strided reduction; bench/bench_train.py)
    sq = world_factors.square().sum(-2)
    return ((sq.clamp_min(max_scale * max_scale).sqrt() - max_scale) / max_scale).square().mean()


class SurfaceRegulariser:
    """Keeps canonical Gaussians near their primitive's surface, measured in world units.

    For each primitive key, fixed canonical surface samples with normals; a Gaussian's residual is the
    point-to-plane distance ``n_w . A (mu_c - p)`` to its nearest sample ``p`` (``A`` the first copy's
    linear map, detached; ``n_w`` the sample's normal mapped by ``A^-T``), nearest found by a KD-tree in
    the world-scaled canonical coordinates. The loss is the mean squared residual divided by ``extent^2``.
    """

    def __init__(self, samples: Sequence[tuple[Tensor, Tensor]], refresh_every: int = 20, band: float = 0.0):
        self.samples = [(p.to(torch.float64), n.to(torch.float64)) for p, n in samples]
        self.refresh_every = refresh_every
        self.band = float(band)
        self._cache: dict[int, tuple[Tensor, Tensor, Tensor]] = {}  # key -> (gaussian idx, nearest j, n_w)

    def invalidate(self) -> None:
        """Forget the cached nearest samples (after densification changed the Gaussians)."""
        self._cache.clear()

    def state(self) -> dict[str, list[Tensor]]:
        keys = sorted(self._cache)
        return {"keys": [torch.tensor(k) for k in keys], "idx": [self._cache[k][0] for k in keys],
                "j": [self._cache[k][1] for k in keys], "n_w": [self._cache[k][2] for k in keys]}

    def load_state(self, state: dict[str, list[Tensor]]) -> None:
        self._cache = {int(k): (i, j, n) for k, i, j, n in zip(state["keys"], state["idx"], state["j"], state["n_w"])}

    def __call__(self, means_c: Tensor, prim: Tensor, linear_maps: Sequence[Tensor | None], extent: float,
                 step: int = 0) -> Tensor:
        """Mean squared point-to-plane residual / extent^2; nearest samples are refreshed every
        ``refresh_every`` steps (and after :meth:`invalidate`)."""
        total = means_c.sum() * 0.0
        n = 0
        if step % self.refresh_every == 0:
            self._cache.clear()
        for k, (pts, nrm) in enumerate(self.samples):
            A = linear_maps[k]
            if A is None:
                continue
            A = A.detach().to(means_c.dtype)
            cached = self._cache.get(k)
            if cached is not None and cached[0].numel() == int((prim == k).sum()):
                idx, j, n_w = cached
                mu = means_c[idx]
                r = (((mu - pts[j].to(mu.dtype)) @ A.T) * n_w).sum(-1)
                total = total + self._penalty(r).sum()
                n += idx.numel()
                continue
            idx = torch.nonzero(prim == k).squeeze(1)
            if idx.numel() == 0:
                continue
            mu = means_c[idx]
            with torch.no_grad():
                Ad = A.double().numpy()
                tree = cKDTree(pts.numpy() @ Ad.T)
                _, j = tree.query(mu.detach().double().numpy() @ Ad.T, k=1, workers=-1)
                j = torch.as_tensor(np.asarray(j), dtype=torch.long)
                n_w = nrm[j] @ torch.linalg.inv(A.double() + 1e-12 * torch.eye(3, dtype=torch.float64))
                n_w = (n_w / torch.linalg.vector_norm(n_w, dim=-1, keepdim=True).clamp_min(1e-30)).to(mu.dtype)
                self._cache[k] = (idx, j, n_w)
            r = (((mu - pts[j].to(mu.dtype)) @ A.T) * n_w).sum(-1)
            total = total + self._penalty(r).sum()
            n += idx.numel()
        return total / max(n, 1) / (extent**2)

    def _penalty(self, r: Tensor) -> Tensor:
        """``r^2``, or with a band Huber's ``r^2`` within it and ``band (2 |r| - band)`` beyond."""
        if self.band <= 0:
            return r.square()
        a = r.abs()
        return torch.where(a <= self.band, r.square(), self.band * (2 * a - self.band))
