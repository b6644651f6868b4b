"""Loader of the C++ extension and the autograd Function around its forward/backward kernels."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from splat._cpp import load_extension

_SOURCE = Path(__file__).with_name("rasterize.cpp")


_KERNEL = ("splat_raster_cpu", _SOURCE, "the C++ CPU rasterizer", "the slow pure-PyTorch backend instead")


def load_kernel():
    """Build (first use) or load (cached) the extension; None with one warning if that fails."""
    return load_extension(*_KERNEL)


def kernel_available() -> bool:
    """True when the C++ extension is built (building it now if needed)."""
    return load_kernel() is not None


class _RasterizeToPixels(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, background, radii, depths, width, height):
        ext = load_kernel()
        means2d, conics, colors, opacities = (x.contiguous() for x in (means2d, conics, colors, opacities))
        if background is not None:
            background = background.contiguous()
        # The background term (img += T_final * bg) and alpha = 1 - T_final are done in the kernel: torch
        # ops on whole images would run on torch's OpenMP pool, slow to wake when the cores are shared.
        img, alpha, final_t, n_contrib, offsets, ids, records = ext.forward(
            means2d, conics, colors, opacities, radii.contiguous(), depths.contiguous(), background, width, height
        )
        # records: each Gaussian packed as the tile loops read it ([N, 10 + D]); all the backward needs.
        ctx.save_for_backward(records, background, offsets, ids, final_t, n_contrib)
        ctx.size = (width, height)
        return img, alpha

    @staticmethod
    def backward(ctx, v_img, v_alpha):
        records, background, offsets, ids, final_t, n_contrib = ctx.saved_tensors
        width, height = ctx.size
        v_means2d, v_conics, v_colors, v_opac, v_bg = load_kernel().backward(
            records, background, offsets, ids, final_t, n_contrib, v_img.contiguous(), v_alpha.contiguous(),
            width, height,
        )
        if background is None or not ctx.needs_input_grad[4]:
            v_bg = None
        return v_means2d, v_conics, v_colors, v_opac, v_bg, None, None, None, None


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
    """Composite one camera's screen-space Gaussians with the C++ kernel (differentiable).

    Returns:
        colors: [H, W, D]; alphas: [H, W, 1].
    """
    return _RasterizeToPixels.apply(means2d, conics, colors, opacities, background,
                                    radii.to(torch.int32), depths.detach(), width, height)
