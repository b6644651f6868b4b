"""Rendering world Gaussians into RGB / depth / alpha images and composing them into panels.

Convention: one call renders a list of :class:`splat.data.Camera` (each may have its own size). RGB
is composited over ``background`` (float RGB in [0, 1]); depth is the *expected* z-depth in metres
(``sum w_i z_i / alpha``), set to 0 where ``alpha < min_alpha``; alpha is the accumulated opacity.
Images come back as float32 numpy arrays (``rgb [H, W, 3]``, ``depth [H, W]``, ``alpha [H, W]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from splat.data import Camera
from splat.render.functional import RasterSettings, rasterize
from splat.render.colormap import colorize_alpha, colorize_depth, depth_range, to_uint8

Mode = Literal["rgb", "depth", "alpha"]
MODES: tuple[str, ...] = ("rgb", "depth", "alpha")


class Splats(NamedTuple):
    """World Gaussians as the rasterizer takes them (any object with these fields works, e.g.
    :class:`splat.gaussians.WorldGaussians`)."""

    means: Tensor  # [N, 3]
    covars: Tensor  # [N, 3, 3]
    opacities: Tensor  # [N] in [0, 1]
    sh: Tensor  # [N, K, 3]


def splats_from_cloud(cloud: Any) -> Splats:
    """A :class:`splat.export.SplatCloud` (pre-activation, e.g. read from a 3DGS PLY) -> :class:`Splats`."""
    return Splats(cloud.means, cloud.covariances(), torch.sigmoid(cloud.opacity_logits), cloud.sh)


class View(NamedTuple):
    """One rendered camera."""

    name: str
    rgb: np.ndarray  # [H, W, 3] float32 in [0, 1]
    depth: np.ndarray  # [H, W] float32 expected z-depth, metres; 0 where alpha < min_alpha
    alpha: np.ndarray  # [H, W] float32 in [0, 1]


@dataclass(frozen=True)
class ViewSettings:
    """How views are rendered."""

    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Background colour behind the object (RGB in [0, 1])."""
    min_alpha: float = 0.5
    """Depth is shown only where the accumulated alpha reaches this."""
    backend: Literal["auto", "cpu", "torch", "gsplat"] = "auto"
    """Rasterizer backend (see splat.render.rasterize)."""
    near_plane: float = 0.01
    """Near clipping plane in metres."""


def render_views(splats: Splats, cameras: Sequence[Camera], settings: ViewSettings = ViewSettings()) -> list[View]:
    """Render ``splats`` into every camera (no gradients)."""
    means = splats.means.detach()
    dtype, device = means.dtype, means.device
    sh = splats.sh.detach()
    degree = int(round(sh.shape[1] ** 0.5)) - 1
    rs = RasterSettings(render_mode="RGB+ED", backend=settings.backend, near_plane=settings.near_plane)
    bg = torch.tensor(settings.background, dtype=dtype, device=device)
    out = []
    with torch.no_grad():
        for cam in cameras:
            if means.shape[0] == 0:
                rgb = np.broadcast_to(np.asarray(settings.background, np.float32), (cam.height, cam.width, 3)).copy()
                zeros = np.zeros((cam.height, cam.width), np.float32)
                out.append(View(cam.name, rgb, zeros, zeros.copy()))
                continue
            view = torch.tensor(np.array(cam.viewmat), dtype=dtype, device=device)[None]
            K = torch.tensor(np.array(cam.K), dtype=dtype, device=device)[None]
            res = rasterize(means, splats.opacities.detach().clamp(0, 1), sh, view, K, cam.width, cam.height,
                            covars=splats.covars.detach(), sh_degree=degree, backgrounds=bg, settings=rs)
            col = res.colors[0].float().cpu().numpy()
            alpha = res.alphas[0, ..., 0].float().cpu().numpy()
            depth = np.where(alpha >= settings.min_alpha, col[..., 3], 0.0).astype(np.float32)
            out.append(View(cam.name, np.clip(col[..., :3], 0, 1).astype(np.float32), depth, alpha.astype(np.float32)))
    return out


def shared_depth_range(views: Sequence[View]) -> tuple[float, float]:
    """Robust (near, far) over all views' valid depth, so a video keeps one colour scale."""
    if not views:
        return 0.0, 1.0
    d = np.concatenate([v.depth.reshape(-1) for v in views])
    return depth_range(d, d > 0)


def view_images(view: View, modes: Sequence[str] = MODES, *, near: float | None = None,
                far: float | None = None) -> dict[str, np.ndarray]:
    """``{mode: uint8 [H, W, 3]}`` for the requested modes (depth turbo-coloured, alpha grey)."""
    out = {}
    for m in modes:
        if m == "rgb":
            out[m] = to_uint8(view.rgb)
        elif m == "depth":
            out[m] = colorize_depth(view.depth, view.depth > 0, near=near, far=far)
        elif m == "alpha":
            out[m] = colorize_alpha(view.alpha)
        else:
            raise ValueError(f"unknown mode {m!r}")
    return out


def hstack(images: Sequence[np.ndarray], *, gap: int = 0, gap_value: int = 255) -> np.ndarray:
    """Images ``uint8 [H_i, W_i, 3]`` side by side (padded to the tallest with ``gap_value``)."""
    h = max(im.shape[0] for im in images)
    cols = []
    for i, im in enumerate(images):
        if im.shape[0] < h:
            im = np.pad(im, ((0, h - im.shape[0]), (0, 0), (0, 0)), constant_values=gap_value)
        if i and gap:
            cols.append(np.full((h, gap, 3), gap_value, np.uint8))
        cols.append(im)
    return np.concatenate(cols, axis=1)


def panel(view: View, modes: Sequence[str] = MODES, *, target: np.ndarray | None = None,
          near: float | None = None, far: float | None = None) -> np.ndarray:
    """One row: ``[target |] rgb | depth | alpha`` (the requested modes), uint8 ``[H, W', 3]``."""
    ims = view_images(view, modes, near=near, far=far)
    row = [to_uint8(target)] if target is not None else []
    row += [ims[m] for m in modes]
    return hstack(row)
