"""EWA projection of 3D Gaussians to screen-space conics, in PyTorch (differentiable).

The "torch" backend's projection, and the reference for the "cpu" backend's fused C++ twin
(splat/render/cpu/project.cpp, same outputs and gradients), which the cpu backend uses when it builds.

Convention: world->camera ``viewmats`` in OpenCV axes (x right, y down, z forward), pinhole ``Ks`` in
pixels, pixel centres at +0.5. Quaternions are wxyz and need not be normalised. Semantics follow
gsplat 1.5.3's fused projection: the Jacobian uses x/z and y/z clamped to 1.3x the frustum, ``eps2d``
is added to the 2D covariance diagonal, Gaussians with depth outside [near, far], a non-positive 2D
determinant, an effective opacity below 1/255 or a box fully off-screen get radius 0 (culled). The box
half-sizes are ``ceil(e * sqrt(cov2d_xx))``, ``ceil(e * sqrt(cov2d_yy))`` with
``e = min(3.33, sqrt(2 ln(255 * opacity)))`` (opacity-aware bound).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from splat.maths import covar_components

ALPHA_THRESHOLD = 1.0 / 255.0


class Projection(NamedTuple):
    """Per-camera screen-space Gaussians."""

    means2d: Tensor  # [C, N, 2] pixel coordinates (differentiable)
    conics: Tensor  # [C, N, 3] inverse 2D covariance (a, b, c): sigma = .5(a dx^2 + c dy^2) + b dx dy
    depths: Tensor  # [C, N] camera z (differentiable)
    radii: Tensor  # [C, N, 2] int32 box half-size in pixels, 0 = culled
    opacities: Tensor  # [C, N] opacity times the antialiasing compensation when enabled
    compensations: Optional[Tensor]  # [C, N] sqrt(det(cov2d) / det(cov2d + eps2d I)), or None


def project(
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
    cull_by_opacity: bool = True,
) -> Projection:
    """Project world-space Gaussians into each camera (EWA splatting, pinhole).

    ``cull_by_opacity=False`` reproduces gsplat's pure-torch helper (fixed 3.33 sigma boxes, no
    opacity culling); the renderer always uses True, as gsplat's CUDA projection does.
    All arithmetic is on [C, N] component tensors (no batched 3x3 matmuls): fast on CPU with autograd.
    """
    sxx, sxy, sxz, syy, syz, szz = covar_components(covars) if isinstance(covars, Tensor) else covars
    rot = viewmats[:, :3, :3]  # [C, 3, 3]
    means_c = torch.matmul(means, rot.transpose(-1, -2)) + viewmats[:, None, :3, 3]  # [C, N, 3]
    tx, ty, tz = means_c.unbind(-1)  # [C, N]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    safe_z = torch.where(tz.abs() > 1e-12, tz, torch.full_like(tz, 1e-12))
    inv_z = 1.0 / safe_z
    # Clamp the ray direction used by the Jacobian to a margin around the frustum (as gsplat).
    lim_xp = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_xn = cx / fx + 0.3 * (0.5 * width / fx)
    lim_yp = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_yn = cy / fy + 0.3 * (0.5 * height / fy)
    jx = torch.clamp(tx * inv_z, min=-lim_xn, max=lim_xp)  # clamped x/z
    jy = torch.clamp(ty * inv_z, min=-lim_yn, max=lim_yp)
    # Rows of J R_view (J = d pixel / d camera point): t1 = fx/z (R0 - jx R2), t2 = fy/z (R1 - jy R2).
    r = [[rot[:, i, j, None] for j in range(3)] for i in range(3)]  # [C, 1] each
    fxz, fyz = fx * inv_z, fy * inv_z
    t1 = [fxz * (r[0][k] - jx * r[2][k]) for k in range(3)]  # 3 x [C, N]
    t2 = [fyz * (r[1][k] - jy * r[2][k]) for k in range(3)]
    # Sigma t (Sigma symmetric, broadcast from [N] to [C, N]).
    st1 = [sxx * t1[0] + sxy * t1[1] + sxz * t1[2], sxy * t1[0] + syy * t1[1] + syz * t1[2],
           sxz * t1[0] + syz * t1[1] + szz * t1[2]]
    st2_0 = sxy * t2[0] + syy * t2[1] + syz * t2[2]  # only the entries needed below
    a = t1[0] * st1[0] + t1[1] * st1[1] + t1[2] * st1[2]  # 2D covariance [[a, b], [b, c]]
    b = t2[0] * st1[0] + t2[1] * st1[1] + t2[2] * st1[2]
    c = t2[0] * (sxx * t2[0] + sxy * t2[1] + sxz * t2[2]) + t2[1] * st2_0 + t2[2] * (
        sxz * t2[0] + syz * t2[1] + szz * t2[2])

    k00, k01, k02 = Ks[:, 0, 0, None], Ks[:, 0, 1, None], Ks[:, 0, 2, None]
    k10, k11, k12 = Ks[:, 1, 0, None], Ks[:, 1, 1, None], Ks[:, 1, 2, None]
    means2d = torch.stack([(k00 * tx + k01 * ty + k02 * tz) * inv_z, (k10 * tx + k11 * ty + k12 * tz) * inv_z], -1)

    det_orig = a * c - b * b
    a = a + eps2d
    c = c + eps2d
    det = a * c - b * b
    det_ok = det > 0
    inv_det = 1.0 / torch.where(det_ok, det, torch.ones_like(det))
    conics = torch.stack([c * inv_det, -b * inv_det, a * inv_det], dim=-1)  # [C, N, 3]

    compensations = None
    opac = opacities[None, :].expand_as(tz)
    if antialiased:
        compensations = torch.sqrt(torch.clamp(det_orig * inv_det, min=0.0))
        opac = opac * compensations

    with torch.no_grad():
        valid = det_ok & (tz >= near_plane) & (tz <= far_plane)
        extend = torch.full_like(tz, 3.33)
        if cull_by_opacity:
            valid &= opac >= ALPHA_THRESHOLD
            extend = torch.minimum(
                extend, torch.sqrt(2.0 * torch.log(opac.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
            )
        rx = torch.ceil(extend * torch.sqrt(a.clamp_min(0)))
        ry = torch.ceil(extend * torch.sqrt(c.clamp_min(0)))
        valid &= (rx > 0) | (ry > 0)
        mx, my = means2d[..., 0], means2d[..., 1]
        valid &= (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
        radii = torch.stack([rx, ry], dim=-1)
        radii = torch.where(valid[..., None] & torch.isfinite(radii), radii, 0).to(torch.int32)

    return Projection(means2d, conics, tz, radii, opac, compensations)


def camera_centers(viewmats: Tensor) -> Tensor:
    """World-space camera centres ``-R^T t`` of world->camera matrices. [C, 4, 4] -> [C, 3]"""
    rot = viewmats[:, :3, :3]
    return -(rot.transpose(-1, -2) @ viewmats[:, :3, 3:4])[..., 0]


def tile_grid(width: int, height: int, tile_size: int) -> tuple[int, int]:
    """Number of tiles along x and y."""
    return math.ceil(width / tile_size), math.ceil(height / tile_size)
