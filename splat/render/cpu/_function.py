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
        img, final_t, n_contrib, offsets, ids = ext.forward(
            means2d, conics, colors, opacities, radii.contiguous(), depths.contiguous(), width, height
        )
        if background is not None:
            img = img + final_t[..., None] * background
        ctx.save_for_backward(means2d, conics, colors, opacities, background, offsets, ids, final_t, n_contrib)
        ctx.size = (width, height)
        alpha = (1 - final_t)[..., None]
        ctx.mark_non_differentiable(final_t)
        return img, alpha

    @staticmethod
    def backward(ctx, v_img, v_alpha):
        means2d, conics, colors, opacities, background, offsets, ids, final_t, n_contrib = ctx.saved_tensors
        width, height = ctx.size
        v_img = v_img.contiguous()
        v_a = v_alpha[..., 0]
        v_bg = None
        if background is not None:
            # img = C + T_final * bg and T_final = 1 - alpha: fold bg into the alpha gradient.
            v_a = v_a - (v_img * background).sum(-1)
            if ctx.needs_input_grad[4]:
                v_bg = (final_t[..., None] * v_img).sum((0, 1))
        v_means2d, v_conics, v_colors, v_opac = load_kernel().backward(
            means2d, conics, colors, opacities, offsets, ids, final_t, n_contrib, v_img,
            v_a.contiguous(), width, height,
        )
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
