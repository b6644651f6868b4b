"""Public, stateless Gaussian rasterizer: ``rasterize(...) -> RasterResult``.

Backends (``RasterSettings.backend``):

- ``"cpu"``: our C++ multi-threaded tile kernels (forward and backward by hand), JIT-built on first
  use with ``torch.utils.cpp_extension`` and cached in torch's extension folder. The everyday path
  without a GPU.
- ``"torch"``: plain-PyTorch twin (dense per-tile compositing, autograd). Reference and fallback.
- ``"gsplat"``: CUDA tensors, a thin call to ``gsplat.rasterization``.
- ``"auto"`` (default): gsplat for CUDA tensors when gsplat's CUDA build loads, else cpu, else torch
  (one warning when the C++ build fails).

Projection (EWA covariance -> conic): for "cpu" one fused C++ pass forward and one backward
(splat/render/cpu/project.cpp), which also checks the inputs (NaN/Inf rows, opacity range, PSD
covariances) that the other paths check with torch ops; for "torch", and for "cpu" when that kernel
cannot be built, PyTorch with autograd (splat/render/_projection.py, the reference). SH -> colour
likewise: C++ (degree <= 3) in the same extension for "cpu", PyTorch (splat/render/_sh.py) otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, Optional

import torch
from torch import Tensor

from splat.errors import SplatError
from splat.maths import quat_scale_components
from splat.render._projection import camera_centers, project
from splat.render._sh import MAX_SH_DEGREE, sh_to_color

RenderMode = Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"]
Backend = Literal["auto", "cpu", "torch", "gsplat"]
_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
_BACKENDS = ("auto", "cpu", "torch", "gsplat")


@dataclass(frozen=True)
class RasterSettings:
    """How to rasterize; everything except the scene and the cameras."""

    render_mode: RenderMode = "RGB"
    """RGB: colours; D: accumulated z-depth sum(w_i z_i); ED: expected depth D / alpha;
    RGB+D / RGB+ED: colours with the depth as an extra last channel."""
    near_plane: float = 0.01
    """Gaussians whose centre has camera z < near_plane are culled (metres, > 0)."""
    far_plane: float = 1e10
    """Gaussians whose centre has camera z > far_plane are culled."""
    eps2d: float = 0.3
    """Low-pass filter: added to the 2D covariance diagonal (pixels^2)."""
    antialiased: bool = False
    """Multiply opacities by sqrt(det(cov2d) / det(cov2d + eps2d I)) (gsplat rasterize_mode="antialiased")."""
    backend: Backend = "auto"
    """"auto", "cpu" (C++ kernels), "torch" (pure-PyTorch twin) or "gsplat" (CUDA only)."""

    def __post_init__(self):
        if self.render_mode not in _MODES:
            raise SplatError(f"unknown render mode {self.render_mode!r}; expected one of {_MODES}",
                             field="render_mode")
        if self.backend not in _BACKENDS:
            raise SplatError(f"unknown backend {self.backend!r}; expected one of {_BACKENDS}",
                             field="backend")
        if not (self.near_plane > 0 and self.far_plane > self.near_plane):
            raise SplatError(f"need 0 < near_plane < far_plane, got {self.near_plane}, {self.far_plane}",
                             field="near_plane")
        if not self.eps2d >= 0:
            raise SplatError(f"eps2d must be >= 0, got {self.eps2d}", field="eps2d")


class RasterResult(NamedTuple):
    """What ``rasterize`` returns. C cameras, N Gaussians, H x W images."""

    colors: Tensor  # [C, H, W, D_out] D_out = D (RGB), 1 (D, ED), D + 1 (RGB+D, RGB+ED; depth last)
    alphas: Tensor  # [C, H, W, 1] accumulated opacity 1 - T_final
    means2d: Tensor  # [C, N, 2] projected centres in pixels; call .retain_grad() before backward
    radii: Tensor  # [C, N, 2] int32 screen-space box half-sizes (x, y) in pixels; 0 = not rendered
    depths: Tensor  # [C, N] camera z of the centres
    n_invalid: int  # Gaussians culled because an input of theirs was NaN or Inf
    backend: str  # the backend that ran: "cpu", "torch" or "gsplat"



def _cull_non_finite(means, opacities, colors, quats, scales, covars):
    """Replace the rows of Gaussians with a NaN/Inf in any of their inputs by harmless values: zero
    opacity and size, identity rotation (so they get zero gradient and are never drawn). Returns the
    cleaned inputs and the culled mask [N] bool."""
    n = means.shape[0]
    invalid = ~torch.isfinite(means).all(-1) | ~torch.isfinite(opacities)
    invalid |= ~torch.isfinite(colors.flatten(1)).all(-1)
    if covars is not None:
        invalid |= ~torch.isfinite(covars.reshape(n, 9)).all(-1)
    else:
        invalid |= ~torch.isfinite(quats).all(-1) | ~torch.isfinite(scales).all(-1)
    if bool(invalid.any()):
        keep = ~invalid
        means = torch.where(keep[:, None], means, 0.0)
        opacities = torch.where(keep, opacities, 0.0)
        colors = torch.where(keep.reshape((n,) + (1,) * (colors.dim() - 1)), colors, 0.0)
        if covars is not None:
            covars = torch.where(keep[:, None, None], covars, 0.0)
        else:
            identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=quats.dtype, device=quats.device)
            quats = torch.where(keep[:, None], quats, identity)
            scales = torch.where(keep[:, None], scales, 0.0)
    return means, opacities, colors, quats, scales, covars, invalid

def rasterize(
    means: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D], or SH coefficients [N, K, 3] when sh_degree is given
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    quats: Optional[Tensor] = None,  # [N, 4]
    scales: Optional[Tensor] = None,  # [N, 3]
    covars: Optional[Tensor] = None,  # [N, 3, 3]
    sh_degree: Optional[int] = None,
    backgrounds: Optional[Tensor] = None,  # [C, D] or [D]
    settings: RasterSettings = RasterSettings(),
) -> RasterResult:
    """Render N 3D Gaussians into C pinhole cameras (3DGS tile rasterization, gsplat semantics).

    Give the shape either as ``quats`` + ``scales`` or as ``covars`` (not both). Gradients flow to
    means, quats, scales / covars, opacities, colors and viewmats (and backgrounds).

    Convention: world->camera ``viewmats`` in OpenCV axes (x right, y down, z forward), ``Ks`` in
    pixels, pixel centres at +0.5, quaternions wxyz (normalised internally), opacities in [0, 1]
    (post-sigmoid). With ``sh_degree``, colours are ``max(SH(dir) + 0.5, 0)`` with ``dir`` from the
    camera centre to the mean. Backgrounds are added as ``T_final * bg``; in "D"/"ED" modes they are
    ignored and the depth channel's background is 0. All float inputs share one dtype (float32 or
    float64) and one device.

    For densification: ``res.means2d.retain_grad()`` before ``loss.backward()``, then
    ``res.means2d.grad`` [C, N, 2] is the gradient w.r.t. the projected centres in pixels (gsplat's
    ``meta["means2d"]``). Gaussians with ``res.radii == 0`` were not rendered in that camera.

    Errors: wrong shapes/dtypes, mixed devices, width/height <= 0, non-finite cameras or
    backgrounds, opacities outside [0, 1], non-positive-semidefinite covariances raise
    :class:`~splat.errors.SplatError`. A Gaussian with a NaN/Inf in any of its own inputs is culled
    and counted in ``n_invalid``.
    """
    s = settings
    n, n_cam, dtype, device = _check_inputs(
        means, opacities, colors, viewmats, Ks, width, height, quats, scales, covars, sh_degree,
        backgrounds,
    )
    backend = _choose_backend(s.backend, device)
    fused = backend == "cpu" and _fused_projection_available()
    if fused:
        means, opacities, colors, proj, invalid = _project_cpu(means, opacities, colors, viewmats, Ks, width,
                                                               height, quats, scales, covars, s)
        n_invalid = 0 if invalid is None else int(invalid.sum())
    else:
        means, opacities, colors, quats, scales, covars, invalid = _cull_non_finite(
            means, opacities, colors, quats, scales, covars)
        n_invalid = int(invalid.sum())
        if backend == "gsplat":
            from splat.render._gsplat import rasterize_gsplat

            out = rasterize_gsplat(means, opacities, colors, viewmats, Ks, width, height, quats, scales,
                                   covars, sh_degree, backgrounds, s)
            return RasterResult(*out, n_invalid, "gsplat")

        _check_opacities(opacities)
        if covars is None:
            covars = quat_scale_components(quats, scales)
        else:
            _check_psd(covars)
        proj = project(means, covars, opacities, viewmats, Ks, width, height, near_plane=s.near_plane,
                       far_plane=s.far_plane, eps2d=s.eps2d, antialiased=s.antialiased)
    radii = proj.radii
    if n_invalid:
        radii = torch.where(invalid[None, :, None], 0, radii)

    if sh_degree is not None:
        feats = _sh_colors(sh_degree, means, colors, viewmats, fused)  # [C, N, 3]
    else:
        feats = colors[None].expand(n_cam, -1, -1)  # [C, N, D]
    if backgrounds is not None and backgrounds.dim() == 1:
        backgrounds = backgrounds[None].expand(n_cam, -1)
    mode = s.render_mode
    if mode in ("RGB+D", "RGB+ED"):
        feats = torch.cat([feats, proj.depths[..., None]], dim=-1)
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(n_cam, 1)], dim=-1)
    elif mode in ("D", "ED"):
        feats = proj.depths[..., None]
        backgrounds = None

    if backend == "cpu":
        from splat.render.cpu import rasterize_to_pixels
    else:
        from splat.render._reference import rasterize_to_pixels
    out_c, out_a = [], []
    for ci in range(n_cam):
        bg = None if backgrounds is None else backgrounds[ci]
        col, alpha = rasterize_to_pixels(proj.means2d[ci], proj.conics[ci], feats[ci], proj.opacities[ci],
                                         radii[ci], proj.depths[ci], width, height, bg)
        out_c.append(col)
        out_a.append(alpha)
    render = torch.stack(out_c)
    alphas = torch.stack(out_a)
    if mode in ("ED", "RGB+ED"):
        render = torch.cat([render[..., :-1], render[..., -1:] / alphas.clamp_min(1e-10)], dim=-1)
    return RasterResult(render, alphas, proj.means2d, radii, proj.depths, n_invalid, backend)


def _choose_backend(name: str, device: torch.device) -> str:
    if name == "gsplat":
        if device.type != "cuda":
            raise SplatError("backend 'gsplat' needs CUDA tensors", field="backend")
        return "gsplat"
    if name in ("cpu", "torch"):
        if device.type != "cpu":
            raise SplatError(f"backend {name!r} needs CPU tensors, got {device}", field="backend")
        if name == "cpu":
            from splat.render.cpu import kernel_available

            return "cpu" if kernel_available() else "torch"
        return name
    if device.type == "cuda":
        from splat.render._gsplat import gsplat_available

        if gsplat_available():
            return "gsplat"
        raise SplatError("CUDA tensors given but gsplat's CUDA backend is unavailable; move them to CPU",
                         field="backend")
    from splat.render.cpu import kernel_available

    return "cpu" if kernel_available() else "torch"


def _fused_projection_available() -> bool:
    from splat.render.cpu import projection_available

    return projection_available()


def _sh_colors(degree: int, means: Tensor, coeffs: Tensor, viewmats: Tensor, fused: bool) -> Tensor:
    """SH colours [C, N, 3]: one C++ pass on the cpu backend's fused path (degree <= 3), else PyTorch."""
    if fused:
        from splat.render.cpu import SH_MAX_DEGREE, sh_colors_fused

        if degree <= SH_MAX_DEGREE:
            return sh_colors_fused(degree, means, coeffs, viewmats)
    dirs = means[None] - camera_centers(viewmats)[:, None]  # [C, N, 3]
    return sh_to_color(degree, dirs, coeffs[None].expand(viewmats.shape[0], -1, -1, -1))


def _project_cpu(means, opacities, colors, viewmats, Ks, width, height, quats, scales, covars, s):
    """The cpu backend's projection: the fused C++ pass, which also does what the other paths do with torch
    passes first (_cull_non_finite's scan, _check_opacities, _check_psd) and raises the same errors.

    Returns (means, opacities, colors, projection, culled mask or None). Only when a Gaussian has a
    NaN/Inf (rare) are the inputs cleaned by _cull_non_finite and projected again.
    """
    from splat.render.cpu import project_fused

    def run(means, opacities, colors, quats, scales, covars):
        if covars is not None:  # checked by the kernel: NaN/Inf and PSD
            shape, checks = covars, (colors,)
        else:  # PSD by construction; the kernel checks their sources for NaN/Inf
            shape, checks = quat_scale_components(quats, scales), (colors, quats, scales)
        return project_fused(means, shape, opacities, viewmats, Ks, width, height, near_plane=s.near_plane,
                             far_plane=s.far_plane, eps2d=s.eps2d, antialiased=s.antialiased, checks=checks)

    proj, report = run(means, opacities, colors, quats, scales, covars)
    invalid = None
    if report.n_nonfinite:
        means, opacities, colors, quats, scales, covars, invalid = _cull_non_finite(
            means, opacities, colors, quats, scales, covars)
        proj, report = run(means, opacities, colors, quats, scales, covars)
    if report.n_bad_opacities:
        raise _opacity_error()
    if report.n_bad_psd:
        raise _psd_error(report.first_bad_psd, report.n_bad_psd)
    return means, opacities, colors, proj, invalid


def _opacity_error() -> SplatError:
    return SplatError("opacities must lie in [0, 1] (apply a sigmoid to logits)", field="opacities")


def _psd_error(first: int, count: int) -> SplatError:
    return SplatError(f"covariance of Gaussian {first} is not symmetric positive semi-definite ({count} such)",
                      field="covars")


def _check_opacities(opacities: Tensor) -> None:
    if opacities.numel() and bool(((opacities < 0) | (opacities > 1)).any()):
        raise _opacity_error()


def _check_psd(covars: Tensor) -> None:
    """Symmetric positive semi-definite up to float tolerance (degenerate, flat Gaussians are fine)."""
    if covars.numel() == 0:
        return
    with torch.no_grad():
        c = covars.double()
        scale = c.diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp_min(1e-30)  # [N]
        tol = 1e-4
        asym = (c - c.transpose(-1, -2)).abs().amax((-1, -2)) > tol * scale
        d = c.diagonal(dim1=-2, dim2=-1)
        m01 = c[:, 0, 0] * c[:, 1, 1] - c[:, 0, 1] * c[:, 1, 0]
        m02 = c[:, 0, 0] * c[:, 2, 2] - c[:, 0, 2] * c[:, 2, 0]
        m12 = c[:, 1, 1] * c[:, 2, 2] - c[:, 1, 2] * c[:, 2, 1]
        det = (c[:, 0, 0] * (c[:, 1, 1] * c[:, 2, 2] - c[:, 1, 2] * c[:, 2, 1])
               - c[:, 0, 1] * (c[:, 1, 0] * c[:, 2, 2] - c[:, 1, 2] * c[:, 2, 0])
               + c[:, 0, 2] * (c[:, 1, 0] * c[:, 2, 1] - c[:, 1, 1] * c[:, 2, 0]))
        bad = asym | (d < -tol * scale[:, None]).any(-1)
        bad |= (torch.stack([m01, m02, m12], -1) < -tol * scale[:, None] ** 2).any(-1)
        bad |= det < -tol * scale**3
        if bool(bad.any()):
            raise _psd_error(int(torch.nonzero(bad)[0]), int(bad.sum()))


def _check_inputs(means, opacities, colors, viewmats, Ks, width, height, quats, scales, covars,
                  sh_degree, backgrounds):
    def tensor(x, name):
        if not isinstance(x, Tensor):
            raise SplatError(f"expected a torch.Tensor, got {type(x).__name__}", field=name)

    tensor(means, "means")
    if means.dim() != 2 or means.shape[1] != 3:
        raise SplatError(f"expected shape [N, 3], got {list(means.shape)}", field="means")
    n = means.shape[0]
    dtype, device = means.dtype, means.device
    if dtype not in (torch.float32, torch.float64):
        raise SplatError(f"expected float32 or float64, got {dtype}", field="means")
    named = {"opacities": opacities, "colors": colors, "viewmats": viewmats, "Ks": Ks,
             "quats": quats, "scales": scales, "covars": covars, "backgrounds": backgrounds}
    for name, x in named.items():
        if x is None:
            continue
        tensor(x, name)
        if x.dtype != dtype:
            raise SplatError(f"dtype {x.dtype} differs from means' {dtype}", field=name)
        if x.device != device:
            raise SplatError(f"device {x.device} differs from means' {device}", field=name)
    if opacities.shape != (n,):
        raise SplatError(f"expected shape [{n}], got {list(opacities.shape)}", field="opacities")
    if (covars is None) == (quats is None and scales is None):
        raise SplatError("give either quats and scales, or covars", field="covars")
    if covars is not None:
        if quats is not None or scales is not None:
            raise SplatError("give either quats and scales, or covars, not both", field="covars")
        if covars.shape != (n, 3, 3):
            raise SplatError(f"expected shape [{n}, 3, 3], got {list(covars.shape)}", field="covars")
    else:
        if quats is None or quats.shape != (n, 4):
            raise SplatError(f"expected shape [{n}, 4]", field="quats")
        if scales is None or scales.shape != (n, 3):
            raise SplatError(f"expected shape [{n}, 3]", field="scales")
    if sh_degree is None:
        if colors.dim() != 2 or colors.shape[0] != n or colors.shape[1] < 1:
            raise SplatError(f"expected shape [{n}, D], got {list(colors.shape)}", field="colors")
        d = colors.shape[1]
    else:
        if not isinstance(sh_degree, int) or not 0 <= sh_degree <= MAX_SH_DEGREE:
            raise SplatError(f"sh_degree must be an int in 0..{MAX_SH_DEGREE}, got {sh_degree!r}",
                             field="sh_degree")
        if (colors.dim() != 3 or colors.shape[0] != n or colors.shape[2] != 3
                or colors.shape[1] < (sh_degree + 1) ** 2):
            raise SplatError(f"expected SH coefficients [{n}, K>={(sh_degree + 1) ** 2}, 3], got "
                             f"{list(colors.shape)}", field="colors")
        d = 3
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4) or viewmats.shape[0] < 1:
        raise SplatError(f"expected shape [C, 4, 4], got {list(viewmats.shape)}", field="viewmats")
    n_cam = viewmats.shape[0]
    if Ks.shape != (n_cam, 3, 3):
        raise SplatError(f"expected shape [{n_cam}, 3, 3], got {list(Ks.shape)}", field="Ks")
    if not (torch.isfinite(viewmats).all() and torch.isfinite(Ks).all()):
        raise SplatError("cameras contain NaN or Inf", field="viewmats" if not torch.isfinite(viewmats).all() else "Ks")
    if not bool((Ks[:, 0, 0] > 0).all() and (Ks[:, 1, 1] > 0).all()):
        raise SplatError("focal lengths Ks[:, 0, 0] and Ks[:, 1, 1] must be > 0", field="Ks")
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise SplatError(f"must be a positive int, got {v!r}", field=name)
    if backgrounds is not None:
        if backgrounds.shape not in ((n_cam, d), (d,)):
            raise SplatError(f"expected shape [{n_cam}, {d}] or [{d}], got {list(backgrounds.shape)}",
                             field="backgrounds")
        if not torch.isfinite(backgrounds).all():
            raise SplatError("backgrounds contain NaN or Inf", field="backgrounds")
    return n, n_cam, dtype, device
