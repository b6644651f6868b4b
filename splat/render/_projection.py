"""EWA projection of 3D Gaussians to screen-space conics, in PyTorch (differentiable).

Shared by the "cpu" and "torch" backends: only the per-pixel compositing differs between them.

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

ALPHA_THRESHOLD = 1.0 / 255.0


class Projection(NamedTuple):
    """Per-camera screen-space Gaussians."""

    means2d: Tensor  # [C, N, 2] pixel coordinates (differentiable)
    conics: Tensor  # [C, N, 3] inverse 2D covariance (a, b, c): sigma = .5(a dx^2 + c dy^2) + b dx dy
    depths: Tensor  # [C, N] camera z (differentiable)
    radii: Tensor  # [C, N, 2] int32 box half-size in pixels, 0 = culled
    opacities: Tensor  # [C, N] opacity times the antialiasing compensation when enabled
    compensations: Optional[Tensor]  # [C, N] sqrt(det(cov2d) / det(cov2d + eps2d I)), or None


def quat_scale_to_covar(quats: Tensor, scales: Tensor) -> Tensor:
    """Covariance ``R S S R^T`` from wxyz quaternions (normalised here) and per-axis scales.

    Args:
        quats: wxyz. [N, 4]
        scales: standard deviations along the local axes. [N, 3]

    Returns:
        covariances. [N, 3, 3]
    """
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    rot = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(q.shape[:-1] + (3, 3))
    m = rot * scales[..., None, :]
    return m @ m.transpose(-1, -2)


def project(
    means: Tensor,  # [N, 3]
    covars: Tensor,  # [N, 3, 3]
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
    """
    rot = viewmats[:, :3, :3]  # [C, 3, 3]
    trans = viewmats[:, :3, 3]  # [C, 3]
    means_c = torch.einsum("cij,nj->cni", rot, means) + trans[:, None, :]  # [C, N, 3]
    covars_c = rot[:, None] @ covars[None] @ rot[:, None].transpose(-1, -2)  # [C, N, 3, 3]

    tx, ty, tz = means_c.unbind(-1)  # [C, N]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    safe_z = torch.where(tz.abs() > 1e-12, tz, torch.full_like(tz, 1e-12))
    # Clamp the ray direction used by the Jacobian to a margin around the frustum (as gsplat).
    lim_xp = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_xn = cx / fx + 0.3 * (0.5 * width / fx)
    lim_yp = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_yn = cy / fy + 0.3 * (0.5 * height / fy)
    jx = safe_z * torch.clamp(tx / safe_z, min=-lim_xn, max=lim_xp)
    jy = safe_z * torch.clamp(ty / safe_z, min=-lim_yn, max=lim_yp)
    zero = torch.zeros_like(tz)
    jac = torch.stack(
        [fx / safe_z, zero, -fx * jx / safe_z**2, zero, fy / safe_z, -fy * jy / safe_z**2], dim=-1
    ).reshape(tz.shape + (2, 3))  # [C, N, 2, 3]
    cov2d = jac @ covars_c @ jac.transpose(-1, -2)  # [C, N, 2, 2]

    uv = torch.einsum("cij,cnj->cni", Ks[:, :2, :3], means_c)  # [C, N, 2]
    means2d = uv / safe_z[..., None]

    a = cov2d[..., 0, 0]
    b = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    c = cov2d[..., 1, 1]
    det_orig = a * c - b * b
    a = a + eps2d
    c = c + eps2d
    det = a * c - b * b
    det_ok = det > 0
    safe_det = torch.where(det_ok, det, torch.ones_like(det))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], dim=-1)  # [C, N, 3]

    compensations = None
    opac = opacities[None, :].expand_as(tz)
    if antialiased:
        compensations = torch.sqrt(torch.clamp(det_orig / safe_det, min=0.0))
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
