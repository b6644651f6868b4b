"""Plain-PyTorch twin of the tile rasterizer: tile binning and dense per-tile compositing.

Slow and simple, differentiated by autograd. It is the reference the C++ kernel is tested against and
the fallback when no C++ compiler works. Each tile is composited densely: every pixel of the tile
against every Gaussian in the tile's depth-sorted list, with ``cumprod`` for transmittance. Tiles are
wrapped in ``torch.utils.checkpoint`` so that memory stays bounded (the per-tile [pixels, Gaussians]
matrices are recomputed in backward instead of kept).

Convention: compositing rules as gsplat 1.5.3: pixel centres at +0.5, ``alpha = min(0.999, o *
exp(-sigma))``, Gaussians with ``sigma < 0`` or ``alpha < 1/255`` skipped, a pixel stops before the
Gaussian that would bring its transmittance to <= 1e-4, background added as ``T_final * bg``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from splat.render._projection import ALPHA_THRESHOLD, tile_grid

TILE_SIZE = 16
T_STOP = 1e-4


@torch.no_grad()
def bin_gaussians(
    means2d: Tensor,  # [N, 2]
    radii: Tensor,  # [N, 2] int32
    depths: Tensor,  # [N]
    width: int,
    height: int,
) -> tuple[Tensor, Tensor]:
    """Per-tile lists of Gaussians, each sorted front to back (depth, then index).

    Returns:
        offsets: start of each tile's list in ``ids``; tile ``t`` is ``ids[offsets[t]:offsets[t+1]]``,
            tiles row-major. [n_tiles + 1] int64
        ids: Gaussian indices. [n_isects] int64
    """
    tw, th = tile_grid(width, height, TILE_SIZE)
    device = means2d.device
    m = means2d.float() / TILE_SIZE
    r = radii.float() / TILE_SIZE
    x0 = torch.floor(m[:, 0] - r[:, 0]).clamp(0, tw).long()
    x1 = torch.ceil(m[:, 0] + r[:, 0]).clamp(0, tw).long()
    y0 = torch.floor(m[:, 1] - r[:, 1]).clamp(0, th).long()
    y1 = torch.ceil(m[:, 1] + r[:, 1]).clamp(0, th).long()
    live = (radii > 0).all(dim=-1)
    counts = torch.where(live, (x1 - x0) * (y1 - y0), 0)
    order = torch.argsort(depths.float(), stable=True)  # front to back, ties by index
    counts_o = counts[order]
    total = int(counts_o.sum())
    if total == 0:
        return torch.zeros(tw * th + 1, dtype=torch.long, device=device), torch.zeros(
            0, dtype=torch.long, device=device
        )
    gid = torch.repeat_interleave(order, counts_o)  # [n_isects]
    start = torch.cumsum(counts_o, 0) - counts_o
    local = torch.arange(total, device=device) - torch.repeat_interleave(start, counts_o)
    bw = (x1 - x0)[gid]
    tx = x0[gid] + local % bw
    ty = y0[gid] + local // bw
    tile = ty * tw + tx
    perm = torch.argsort(tile, stable=True)  # keeps the depth order inside each tile
    ids = gid[perm]
    offsets = torch.zeros(tw * th + 1, dtype=torch.long, device=device)
    offsets[1:] = torch.cumsum(torch.bincount(tile, minlength=tw * th), 0)
    return offsets, ids


def _composite_tile(
    pix: Tensor,  # [P, 2] pixel centres
    means2d: Tensor,  # [M, 2]
    conics: Tensor,  # [M, 3]
    opacities: Tensor,  # [M]
    colors: Tensor,  # [M, D]
) -> tuple[Tensor, Tensor]:
    dx = means2d[None, :, 0] - pix[:, 0:1]  # [P, M]
    dy = means2d[None, :, 1] - pix[:, 1:2]
    sigma = 0.5 * (conics[:, 0] * dx * dx + conics[:, 2] * dy * dy) + conics[:, 1] * dx * dy
    alpha = torch.clamp_max(opacities * torch.exp(-sigma), 0.999)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, torch.zeros_like(alpha))
    with torch.no_grad():
        keep = torch.cumprod(1 - alpha, dim=1) > T_STOP  # a prefix of each row
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    trans = torch.cumprod(1 - alpha, dim=1)  # transmittance after each Gaussian
    t_before = torch.cat([torch.ones_like(trans[:, :1]), trans[:, :-1]], dim=1)
    color = (alpha * t_before) @ colors  # [P, D]
    return color, trans[:, -1]


def rasterize_to_pixels(
    means2d: Tensor,  # [N, 2]
    conics: Tensor,  # [N, 3]
    colors: Tensor,  # [N, D]
    opacities: Tensor,  # [N]
    radii: Tensor,  # [N, 2] int32
    depths: Tensor,  # [N]
    width: int,
    height: int,
    background: Optional[Tensor] = None,  # [D]
) -> tuple[Tensor, Tensor]:
    """Composite one camera's screen-space Gaussians into an image (autograd for gradients).

    Returns:
        colors: [H, W, D]; alphas: [H, W, 1] (= 1 - final transmittance).
    """
    offsets, ids = bin_gaussians(means2d, radii, depths, width, height)
    tw, th = tile_grid(width, height, TILE_SIZE)
    n_ch = colors.shape[-1]
    dev, dt = means2d.device, means2d.dtype
    out_idx, out_col, out_t = [], [], []
    offs = offsets.tolist()
    for t in range(tw * th):
        lo, hi = offs[t], offs[t + 1]
        if hi == lo:
            continue
        ty, tx = divmod(t, tw)
        ys = torch.arange(ty * TILE_SIZE, min((ty + 1) * TILE_SIZE, height), device=dev)
        xs = torch.arange(tx * TILE_SIZE, min((tx + 1) * TILE_SIZE, width), device=dev)
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        pix = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1).to(dt) + 0.5
        g = ids[lo:hi]
        args = (pix, means2d[g], conics[g], opacities[g], colors[g])
        if torch.is_grad_enabled() and any(a.requires_grad for a in args):
            col, tfin = checkpoint(_composite_tile, *args, use_reentrant=False)
        else:
            col, tfin = _composite_tile(*args)
        out_idx.append((yy * width + xx).reshape(-1))
        out_col.append(col)
        out_t.append(tfin)
    img = torch.zeros(height * width, n_ch, device=dev, dtype=dt)
    trans = torch.ones(height * width, device=dev, dtype=dt)
    if out_idx:
        idx = torch.cat(out_idx)
        img = img.index_put((idx,), torch.cat(out_col))
        trans = trans.index_put((idx,), torch.cat(out_t))
    if background is not None:
        img = img + trans[:, None] * background
    return img.reshape(height, width, n_ch), (1 - trans).reshape(height, width, 1)
