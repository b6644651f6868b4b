"""Plain-PyTorch twin of the tile rasterizer: tile binning and dense per-tile compositing.

Slow and simple, differentiated by autograd. It is the reference the C++ kernel is tested against and
the fallback when no C++ compiler works. Each tile is composited densely: every pixel of the tile
against every Gaussian in the tile's depth-sorted list, with ``cumprod`` for transmittance. Tiles are
batched in chunks of bounded size and each chunk is wrapped in ``torch.utils.checkpoint``, so memory
stays bounded (the [tiles, pixels, Gaussians] tensors are recomputed in backward instead of kept).

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


def _composite_tiles(
    px: Tensor,  # [T, P] pixel centre x
    py: Tensor,  # [T, P] pixel centre y
    means2d: Tensor,  # [T, M, 2] each tile's Gaussians, front to back (padding: opacity 0)
    conics: Tensor,  # [T, M, 3]
    opacities: Tensor,  # [T, M]
    colors: Tensor,  # [T, M, D]
) -> tuple[Tensor, Tensor]:
    """Dense compositing of a batch of tiles: every pixel against every Gaussian of its tile."""
    dx = means2d[:, None, :, 0] - px[:, :, None]  # [T, P, M]
    dy = means2d[:, None, :, 1] - py[:, :, None]
    a, b, c = (conics[:, None, :, i] for i in range(3))
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.clamp_max(opacities[:, None, :] * torch.exp(-sigma), 0.999)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, torch.zeros_like(alpha))
    with torch.no_grad():
        keep = torch.cumprod(1 - alpha, dim=-1) > T_STOP  # a prefix of each pixel's list
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    trans = torch.cumprod(1 - alpha, dim=-1)  # transmittance after each Gaussian
    t_before = torch.cat([torch.ones_like(trans[..., :1]), trans[..., :-1]], dim=-1)
    color = torch.bmm(alpha * t_before, colors)  # [T, P, D]
    return color, trans[..., -1]


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
    chunk_elements: int = 1 << 22,
) -> tuple[Tensor, Tensor]:
    """Composite one camera's screen-space Gaussians into an image (autograd for gradients).

    Tiles are processed in chunks (sorted by list length, padded to the chunk's longest list) of at
    most ``chunk_elements`` pixel-Gaussian pairs; each chunk is checkpointed when gradients are needed.

    Returns:
        colors: [H, W, D]; alphas: [H, W, 1] (= 1 - final transmittance).
    """
    offsets, ids = bin_gaussians(means2d, radii, depths, width, height)
    tw, _ = tile_grid(width, height, TILE_SIZE)
    n, n_ch = means2d.shape[0], colors.shape[-1]
    dev, dt = means2d.device, means2d.dtype
    img = torch.zeros(height * width, n_ch, device=dev, dtype=dt)
    trans = torch.ones(height * width, device=dev, dtype=dt)
    counts = offsets[1:] - offsets[:-1]
    order = torch.argsort(counts, stable=True)
    order = order[counts[order] > 0]
    if len(order):
        # A padding Gaussian (index n) with opacity 0 never contributes.
        m2 = torch.cat([means2d, means2d.new_zeros(1, 2)])
        con = torch.cat([conics, conics.new_zeros(1, 3)])
        opa = torch.cat([opacities, opacities.new_zeros(1)])
        col = torch.cat([colors, colors.new_zeros(1, n_ch)])
        lane = torch.arange(TILE_SIZE * TILE_SIZE, device=dev)
        cnt_sorted = counts[order].tolist()
        idx_all, col_all, t_all = [], [], []
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and (stop + 1 - start) * 256 * cnt_sorted[stop] <= chunk_elements:
                stop += 1
            tiles = order[start:stop]
            m = cnt_sorted[stop - 1]
            pos = torch.arange(m, device=dev)
            valid = pos[None, :] < counts[tiles][:, None]
            gid = torch.where(valid, ids[(offsets[tiles][:, None] + pos).clamp_max(max(len(ids) - 1, 0))], n)
            xs = (tiles % tw)[:, None] * TILE_SIZE + lane % TILE_SIZE  # [T, P]
            ys = (tiles // tw)[:, None] * TILE_SIZE + lane // TILE_SIZE
            args = (xs.to(dt) + 0.5, ys.to(dt) + 0.5, m2[gid], con[gid], opa[gid], col[gid])
            if torch.is_grad_enabled() and any(x.requires_grad for x in args):
                c_out, t_out = checkpoint(_composite_tiles, *args, use_reentrant=False)
            else:
                c_out, t_out = _composite_tiles(*args)
            inside = (xs < width) & (ys < height)
            idx_all.append((ys * width + xs)[inside])
            col_all.append(c_out[inside])
            t_all.append(t_out[inside])
            start = stop
        idx = torch.cat(idx_all)
        img = img.index_put((idx,), torch.cat(col_all))
        trans = trans.index_put((idx,), torch.cat(t_all))
    if background is not None:
        img = img + trans[:, None] * background
    return img.reshape(height, width, n_ch), (1 - trans).reshape(height, width, 1)
