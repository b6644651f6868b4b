"""The fused C++ per-Gaussian stages (project.cpp) of the "cpu" backend: loader and autograd Functions.

Besides the renderer's stages (below), the extension holds the procedural Gaussians' pushforward from
canonical to world space (``pushforward_fused``, used by ``ProceduralGaussians.pushforward``), which has
no other C++ home and costs nothing extra to build here.

On the cpu path of ``rasterize`` these replace the PyTorch projection (``_projection.project``: ~100
elementwise ops on [C, N] tensors, whose autograd backward costs several times its forward), the torch
passes over the inputs (the NaN/Inf scan of ``_cull_non_finite``, ``_check_opacities``,
``_check_psd``) and the SH colour evaluation (``_sh.sh_to_color`` of the view directions, degree <= 3)
by one C++ pass each, forward and backward. The torch versions stay the references and the "torch"
backend's; if this kernel cannot be built, ``projection_available()`` is False and the cpu backend
uses them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from splat._cpp import load_extension
from splat.render._projection import Projection

_SOURCE = Path(__file__).with_name("project.cpp")

_KERNEL = ("splat_project_cpu", _SOURCE, "the C++ CPU projection", "the PyTorch projection instead")

SH_MAX_DEGREE = 3
"""Highest SH degree ``sh_colors_fused`` evaluates (the torch ``sh_to_color`` goes to 4)."""


def load_project_kernel():
    """Build (first use) or load (cached) the projection extension; None with one warning if that fails."""
    return load_extension(*_KERNEL)


def projection_available() -> bool:
    """True when the fused projection is built (building it now if needed)."""
    return load_project_kernel() is not None


class InputReport(NamedTuple):
    """What the kernel found in the inputs while projecting them (the caller decides what to raise)."""

    n_nonfinite: int  # Gaussians with a NaN/Inf in means, opacities, [N, 3, 3] covars or a checked tensor
    n_bad_opacities: int  # finite Gaussians with an opacity outside [0, 1]
    n_bad_psd: int  # finite Gaussians whose [N, 3, 3] covariance is not symmetric PSD (_check_psd's tolerances)
    first_bad_psd: int  # index of the first of those, -1 when there is none


class _Project(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, covars, opacities, viewmats, Ks, checks, settings):
        width, height, near_plane, far_plane, eps2d, antialiased = settings
        means2d, conics, depths, radii, opac, comp, stats = load_project_kernel().forward(
            means, covars, opacities, viewmats, Ks, list(checks), width, height, near_plane, far_plane, eps2d,
            antialiased,
        )
        ctx.mark_non_differentiable(radii, stats)
        ctx.set_materialize_grads(False)  # absent output gradients reach the kernel as None (zero)
        ctx.save_for_backward(means, covars, opacities, viewmats, Ks)  # the backward recomputes the rest
        ctx.settings = (width, height, eps2d, antialiased)
        return means2d, conics, depths, radii, opac, comp, stats

    @staticmethod
    def backward(ctx, v_means2d, v_conics, v_depths, _v_radii, v_opac, v_comp, _v_stats):
        means, covars, opacities, viewmats, Ks = ctx.saved_tensors
        width, height, eps2d, antialiased = ctx.settings
        ups = [None if v is None else v.contiguous() for v in (v_means2d, v_conics, v_depths, v_opac, v_comp)]
        grads = load_project_kernel().backward(means, covars, opacities, viewmats, Ks, *ups, width, height, eps2d,
                                               antialiased)
        grads = [g if need else None for g, need in zip(grads, ctx.needs_input_grad)]
        return (*grads, None, None, None)


def project_fused(
    means: Tensor,  # [N, 3]
    covars,  # [N, 3, 3] Tensor, or Cov6 entries
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    antialiased: bool,
    checks: Sequence[Tensor] = (),
) -> tuple[Projection, InputReport]:
    """``_projection.project(...)`` (with ``cull_by_opacity=True``) in one C++ pass, and a report on the inputs.

    Gradients flow to means, covars, opacities and viewmats (not Ks). A ``covars`` tensor [N, 3, 3] is
    checked (NaN/Inf, PSD); Cov6 entries (built from quaternions and scales, PSD by construction) are
    not: pass their sources in ``checks``, the further per-Gaussian tensors ([N, ...]) whose rows count
    as non-finite when they hold a NaN/Inf (the colours, say).
    """
    cov = covars if isinstance(covars, Tensor) else torch.stack(covars, -1)
    rows = tuple(t.detach().flatten(1).contiguous() for t in checks)
    settings = (width, height, float(near_plane), float(far_plane), float(eps2d), bool(antialiased))
    means2d, conics, depths, radii, opac, comp, stats = _Project.apply(
        means.contiguous(), cov.contiguous(), opacities.contiguous(), viewmats.contiguous(), Ks.contiguous(), rows,
        settings,
    )
    proj = Projection(means2d, conics, depths, radii, opac, comp if antialiased else None)
    return proj, InputReport(*stats.tolist())


class _ShColors(torch.autograd.Function):
    @staticmethod
    def forward(ctx, degree, means, coeffs, viewmats):
        ctx.save_for_backward(means, coeffs, viewmats)
        ctx.degree = degree
        return load_project_kernel().sh_forward(degree, means, coeffs, viewmats)

    @staticmethod
    def backward(ctx, v_colors):
        means, coeffs, viewmats = ctx.saved_tensors
        grads = load_project_kernel().sh_backward(ctx.degree, means, coeffs, viewmats, v_colors.contiguous())
        return (None, *(g if need else None for g, need in zip(grads, ctx.needs_input_grad[1:])))


def sh_colors_fused(degree: int, means: Tensor, coeffs: Tensor, viewmats: Tensor) -> Tensor:
    """``sh_to_color(degree, means - camera_centers(viewmats), coeffs)`` for every camera, in one C++ pass.

    Args:
        degree: SH degree, 0..SH_MAX_DEGREE; only the first ``(degree+1)^2`` coefficients are read.
        means: Gaussian centres (the view direction is from the camera centre to them). [N, 3]
        coeffs: SH coefficients. [N, K, 3] with K >= (degree+1)^2
        viewmats: world->camera matrices. [C, 4, 4]

    Returns:
        colours ``max(SH(dir) + 0.5, 0)``, differentiable w.r.t. means, coeffs and viewmats. [C, N, 3]
    """
    return _ShColors.apply(degree, means.contiguous(), coeffs.contiguous(), viewmats.contiguous())


class WorldTensors(NamedTuple):
    """The differentiable world Gaussians ``pushforward_fused`` returns (M of them)."""

    means: Tensor  # [M, 3]
    covars: Tensor  # [M, 3, 3], = factors @ factors^T
    factors: Tensor  # [M, 3, 3]
    opacities: Tensor  # [M]
    sh: Tensor  # [M, K, 3]


class _Pushforward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src, part, copy, A, t, means, quats, log_scales, opacity_logits, sh0, shN, residuals):
        outs = load_project_kernel().pushforward_forward(src, part, copy, A, t, means, quats, log_scales,
                                                         opacity_logits, sh0, shN, residuals)
        ctx.set_materialize_grads(False)  # absent output gradients reach the kernel as None (zero)
        # the colours' gradients are gathers of the outputs': only their sizes are kept
        ctx.save_for_backward(src, part, copy, A, t, means, quats, log_scales, opacity_logits)
        ctx.sizes = (shN.shape[1], 0 if residuals is None else residuals.shape[1])
        return tuple(outs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *v_outs):
        ups = [None if v is None else v.contiguous() for v in v_outs]
        grads = load_project_kernel().pushforward_backward(*ctx.saved_tensors, *ctx.sizes, *ups)
        # grads: means, quats, log_scales, opacity_logits, sh0, shN, residuals (None when absent), A, t
        order = (None, None, None, grads[7], grads[8], *grads[:7])
        return tuple(g if need else None for g, need in zip(order, ctx.needs_input_grad))


def pushforward_fused(
    A: Tensor,  # [P, 3, 3]
    t: Tensor,  # [P, 3]
    part: Tensor,  # [M] long
    src: Tensor,  # [M] long
    copy: Tensor,  # [M] long
    params: dict[str, Tensor],
) -> WorldTensors:
    """World Gaussian ``m`` of canonical Gaussian ``src[m]`` under the affine map ``A[part[m]], t[part[m]]``,
    in one C++ pass forward and one backward (``ProceduralGaussians.pushforward``'s torch code, fused).

    ``params`` are the canonical Gaussians' (:data:`splat.gaussians.model.PARAM_NAMES`, optionally
    ``residuals`` [N, C, 3], of which world Gaussian ``m`` adds column ``min(copy[m], C - 1)`` to its DC
    colour), float32 or float64 CPU tensors like ``A`` and ``t``. Gradients flow to every parameter and
    to ``A`` and ``t``; they are bitwise the same for any thread count.
    """
    names = ("means", "quats", "log_scales", "opacity_logits", "sh0", "shN")
    res = params.get("residuals")
    outs = _Pushforward.apply(src.contiguous(), part.contiguous(), copy.contiguous(), A.contiguous(), t.contiguous(),
                              *(params[k].contiguous() for k in names), None if res is None else res.contiguous())
    return WorldTensors(*outs)
