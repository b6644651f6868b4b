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
    """Call gsplat.rasterization (non-packed, so means2d is [C, N, 2]).

    Non-finite Gaussians were already culled by the caller (zero opacity: gsplat skips them). Returns
    ``(render, alphas, means2d, radii [C, N, 2] int32, depths)``; the caller wraps them in its
    ``RasterResult``."""
    import gsplat

    from splat.errors import SplatError

    if means.dtype != torch.float32:
        raise SplatError(f"the gsplat backend needs float32 tensors, got {means.dtype}", field="means")
    n_cam = viewmats.shape[0]
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
    return render, alphas, meta["means2d"], radii.to(torch.int32), meta["depths"]
