"""CUDA dispatch: a thin call to ``gsplat.rasterization`` (gsplat's own CUDA kernels).

Only used for CUDA tensors. Same semantics as the CPU backends (both follow gsplat 1.5.3); the result
is repacked into :class:`splat.render.functional.RasterResult`.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def gsplat_available() -> bool:
    """True when torch sees a CUDA device and gsplat's CUDA extension loads."""
    if not torch.cuda.is_available():
        return False
    try:
        from gsplat.cuda._backend import _C  # noqa: F401  (builds or loads gsplat's extension)
    except Exception:  # pragma: no cover - depends on the machine
        return False
    return _C is not None


def rasterize_gsplat(means, opacities, colors, viewmats, Ks, width, height, quats, scales, covars,
                     sh_degree, backgrounds, settings):
    """Call gsplat.rasterization (non-packed, so means2d is [C, N, 2]) and wrap its outputs."""
    import gsplat

    from splat.render.functional import RasterResult

    from splat.errors import SplatError

    if means.dtype != torch.float32:
        raise SplatError(f"the gsplat backend needs float32 tensors, got {means.dtype}", field="means")
    n, n_cam = means.shape[0], viewmats.shape[0]
    invalid = ~torch.isfinite(means).all(-1) | ~torch.isfinite(opacities)
    invalid |= ~torch.isfinite(colors.flatten(1)).all(-1)
    if covars is not None:
        invalid |= ~torch.isfinite(covars.reshape(n, 9)).all(-1)
    else:
        invalid |= ~torch.isfinite(quats).all(-1) | ~torch.isfinite(scales).all(-1)
    n_invalid = int(invalid.sum())
    if n_invalid:
        keep = ~invalid
        means = torch.where(keep[:, None], means, 0.0)
        opacities = torch.where(keep, opacities, 0.0)  # opacity 0 -> culled by gsplat
        colors = torch.where(keep.reshape((n,) + (1,) * (colors.dim() - 1)), colors, 0.0)
        if covars is not None:
            covars = torch.where(keep[:, None, None], covars, 0.0)
        else:
            quats = torch.where(keep[:, None], quats, torch.ones_like(quats))
            scales = torch.where(keep[:, None], scales, 0.0)
    if backgrounds is not None and backgrounds.dim() == 1:
        backgrounds = backgrounds[None].expand(n_cam, -1)
    if covars is not None:
        quats = scales = None
    render, alphas, meta = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=settings.near_plane, far_plane=settings.far_plane, eps2d=settings.eps2d,
        sh_degree=sh_degree, packed=False, tile_size=16, backgrounds=backgrounds,
        render_mode=settings.render_mode,
        rasterize_mode="antialiased" if settings.antialiased else "classic", covars=covars,
    )
    radii = meta["radii"]
    if radii.dim() == 2:  # older gsplat: one radius per Gaussian
        radii = radii[..., None].expand(-1, -1, 2)
    return RasterResult(render, alphas, meta["means2d"], radii.to(torch.int32), meta["depths"], n_invalid,
                        "gsplat")
