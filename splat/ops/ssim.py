"""Fused SSIM on the CPU: a C++ kernel (ssim.cpp) for the SSIM map of channels-last images and its gradient.

Why: every joint training step takes the 3DGS D-SSIM loss ``1 - ssim(render, target, padding="same")``.
In torch that is five separable Gaussian blurs and about 25 elementwise ops, each a pass over the image
with its own temporaries, forward and backward (about 10 ms at 256x256x3); the kernel makes one pass
each way over rows kept in cache.

Semantics: exactly :func:`splat.metrics.ssim_map`, which dispatches here for CPU float32/float64 inputs
when only the prediction needs a gradient, and keeps its torch code as the fallback (kernel build
failed, other devices, a target that requires grad) and as the reference in tests. The window taps come
from the caller (:func:`splat.metrics.gaussian_window`), so both paths use the very same numbers.

Gradient. Per channel, with B the zero-padded blur and ``mu_x = B x``, ``exx = B x^2``, ``exy = B xy``
(and the same in y), ``sxx = exx - mu_x^2``, ``sxy = exy - mu_x mu_y``, the SSIM is
``S = a1 a2 / (b1 b2)`` with ``a1 = 2 mu_x mu_y + C1``, ``a2 = 2 sxy + C2``, ``b1 = mu_x^2 + mu_y^2 + C1``,
``b2 = sxx + syy + C2``. Holding ``exx`` and ``exy`` fixed (they are inputs of S, not functions of mu_x)::

    dS/dmu_x = 2 mu_y (a2 - a1) / (b1 b2) + 2 mu_x S (b1 - b2) / (b1 b2)
    dS/dexx  = -S / b2
    dS/dexy  = 2 a1 / (b1 b2)

With ``g`` the incoming gradient of the map divided by C (the map is the mean over channels) and
``a, b, c = g dS/dmu_x, g dS/dexx, g dS/dexy``, the chain rule through ``mu_x = B x``, ``exx = B x^2``,
``exy = B (x y)`` gives ``dL/dx = B^T a + 2 x B^T b + y B^T c``. B^T, the adjoint of a correlation with
zero padding ``pad``, is the correlation with the reversed taps and padding ``k - 1 - pad`` (for "same"
the same padding; for "valid" a "full" correlation back to the input size). The forward stores the
three derivatives per pixel and channel when a gradient is needed; the backward scales them by ``g``
and blurs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from splat._cpp import load_extension


def _load_kernel():
    """Build (first use) or load (cached) the C++ kernel; None with one warning if that fails."""
    return load_extension("splat_ssim_cpu", Path(__file__).with_name("ssim.cpp"), "the C++ SSIM kernel",
                          "the torch SSIM")


def kernel_available() -> bool:
    """True when the C++ SSIM kernel builds (or is cached) and loads."""
    return _load_kernel() is not None


class _SSIMMap(torch.autograd.Function):
    """SSIM map of ``pred`` against a constant ``target``; differentiable in ``pred`` only (once)."""

    @staticmethod
    def forward(ctx, pred: Tensor, target: Tensor, window: Tensor, pad: int, c1: float, c2: float) -> Tensor:
        need_grad = ctx.needs_input_grad[0]
        smap, factors = _load_kernel().forward(pred, target, window, pad, c1, c2, need_grad)
        if need_grad:
            ctx.save_for_backward(pred, target, window, factors)
            ctx.pad = pad
        return smap

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_map: Tensor):
        pred, target, window, factors = ctx.saved_tensors
        grad = _load_kernel().backward(pred, target, window, ctx.pad, factors, grad_map.contiguous())
        return grad, None, None, None, None, None


def ssim_map(pred: Tensor, target: Tensor, window: Tensor, pad: int, c1: float, c2: float) -> Tensor:
    """SSIM map ``[B, H', W']`` (mean over channels) of ``pred`` against ``target``, both ``[B, H, W, C]``.

    ``window`` is the 1-D window (odd length k, same dtype), ``pad`` the zero padding on each side
    (``k // 2`` for "same", 0 for "valid"; ``H' = H + 2 pad - k + 1``), ``c1``, ``c2`` the SSIM constants.
    CPU float32 or float64 only, the target without gradient, and the kernel must be available
    (:func:`kernel_available`); :func:`splat.metrics.ssim_map` checks all that and validates the shapes.
    """
    if target.requires_grad and torch.is_grad_enabled():
        raise ValueError("the SSIM kernel gives no gradient in the target; use splat.metrics.ssim_map")
    return _SSIMMap.apply(pred.contiguous(), target.contiguous(), window.contiguous(), pad, c1, c2)
