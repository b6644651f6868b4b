"""Geometry maths shared by every layer: quaternions, rotations, covariances, SH constants, placements.

This module sits at the bottom of the package (it imports only torch and :mod:`splat.errors`): Gaussians,
the rasterizer, export and the search all import their rotation and covariance maths from here, so
each formula exists once.

Conventions (docs/conventions.md): quaternions are **wxyz** (Hamilton product, rotating column vectors,
``x' = R x``); a covariance is ``Sigma = R diag(s^2) R^T`` with ``s`` standard deviations; colours are
stored as degree-0 real SH with ``rgb = 0.5 + SH_C0 * dc``; Blender's Euler XYZ is ``R = Rz Ry Rx``; a
*placement* maps a program's own frame to the world as ``T(t) Rz(yaw) diag(exp(log_scale))`` (+Z up,
metres, right-handed yaw).
"""

from __future__ import annotations

import torch
from torch import Tensor

from splat.errors import SplatError

SH_C0 = 0.28209479177387814
"""Degree-0 real spherical-harmonic constant: ``rgb = 0.5 + SH_C0 * f_dc``."""

_MIN_VAR = 1e-20  # eigenvalue floor when factorising a covariance (sigma >= 1e-10 m)


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    """Colours in [0, 1] ``[..., 3]`` -> degree-0 SH coefficients ``[..., 3]`` (inverse of
    ``0.5 + SH_C0 * dc``)."""
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: Tensor) -> Tensor:
    """Degree-0 SH coefficients ``[..., 3]`` -> view-independent colour ``[..., 3]`` (not clamped)."""
    return 0.5 + SH_C0 * dc


def quats_to_rotmats(quats: Tensor) -> Tensor:
    """Unit quaternions ``[..., 4]`` (wxyz) -> rotation matrices ``[..., 3, 3]``.

    Convention: wxyz, Hamilton product, the matrix rotates column vectors (``x' = R x``). The input is
    normalised first.
    """
    q = quats / quats.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def rotmats_to_quats(rotmats: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` (det +1) -> unit quaternions ``[..., 4]`` (wxyz, w >= 0).

    Shepperd's method: for each matrix the largest of ``(trace, R00, R11, R22)`` picks the branch, so
    there is no division by a small number anywhere (robust near 180-degree rotations).
    """
    R = rotmats
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    tr = m00 + m11 + m22
    # four candidate solutions, each well conditioned when its pivot is the largest
    c0 = torch.stack([1 + tr, R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                      R[..., 1, 0] - R[..., 0, 1]], -1)
    c1 = torch.stack([R[..., 2, 1] - R[..., 1, 2], 1 + m00 - m11 - m22, R[..., 0, 1] + R[..., 1, 0],
                      R[..., 0, 2] + R[..., 2, 0]], -1)
    c2 = torch.stack([R[..., 0, 2] - R[..., 2, 0], R[..., 0, 1] + R[..., 1, 0], 1 - m00 + m11 - m22,
                      R[..., 1, 2] + R[..., 2, 1]], -1)
    c3 = torch.stack([R[..., 1, 0] - R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0], R[..., 1, 2] + R[..., 2, 1],
                      1 - m00 - m11 + m22], -1)
    cands = torch.stack([c0, c1, c2, c3], -2)  # [..., 4, 4]
    pivot = torch.stack([tr, m00, m11, m22], -1).argmax(-1)  # [...]
    q = torch.gather(cands, -2, pivot[..., None, None].expand(*pivot.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def covariances_to_scales_quats(covars: Tensor, *, min_scale: float = 1e-10) -> tuple[Tensor, Tensor]:
    """Factor world covariances into (log-scales, wxyz quaternions) as 3DGS stores them.

    Args:
        covars: ``[N, 3, 3]`` symmetric positive (semi-)definite covariances, any float dtype/device.
        min_scale: floor on the standard deviations (metres); degenerate (flat or needle) Gaussians get
            this along their collapsed axes instead of ``log(0)``.

    Returns:
        ``(log_scales [N, 3], quats [N, 4])`` in ``covars``' dtype and device, such that
        ``covariances_from_scales_quats(log_scales.exp(), quats)`` reproduces ``covars`` (exactly up to
        float rounding for positive-definite inputs). Scales are sorted ascending; quaternions have
        ``w >= 0``.

    Convention: the input is symmetrised (``(S + S^T) / 2``) and factored in float64 with ``eigh``; the
    eigenvector basis is made right-handed (det +1) by flipping one axis, which does not change the
    covariance. Non-finite entries raise :class:`SplatError` (field ``covars[i]``); this function does
    not differentiate (it is an export step).
    """
    if covars.ndim != 3 or covars.shape[1:] != (3, 3):
        raise ValueError(f"covars must be [N, 3, 3], got {tuple(covars.shape)}")
    bad = ~torch.isfinite(covars).reshape(covars.shape[0], -1).all(-1)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise SplatError(f"{int(bad.sum())} covariance(s) are not finite (NaN or Inf)", field=f"covars[{i}]")
    c = covars.detach().to(torch.float64)
    c = 0.5 * (c + c.transpose(-1, -2))
    evals, evecs = torch.linalg.eigh(c)  # ascending, orthonormal columns
    det = torch.linalg.det(evecs)
    evecs = torch.cat([evecs[..., :2], evecs[..., 2:] * torch.sign(det)[:, None, None]], dim=-1)
    var = evals.clamp_min(max(min_scale**2, _MIN_VAR))
    log_scales = 0.5 * var.log()
    quats = rotmats_to_quats(evecs)
    return log_scales.to(covars.dtype), quats.to(covars.dtype)


Cov6 = tuple  # (xx, xy, xz, yy, yz, zz) covariance entries, each [N]


def quat_scale_components(quats: Tensor, scales: Tensor) -> Cov6:
    """Entries of ``R S S R^T`` from wxyz quaternions (normalised here) and per-axis scales.

    Computed entry by entry on [N] tensors: on CPU this is much faster (forward and autograd) than
    batched 3x3 matmuls.
    """
    inv = torch.rsqrt((quats * quats).sum(-1).clamp_min(1e-24))
    w, x, y, z = (quats * inv[..., None]).unbind(-1)
    sx, sy, sz = scales.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    # Columns of M = R S.
    m00, m01, m02 = (1 - 2 * (yy + zz)) * sx, 2 * (xy - wz) * sy, 2 * (xz + wy) * sz
    m10, m11, m12 = 2 * (xy + wz) * sx, (1 - 2 * (xx + zz)) * sy, 2 * (yz - wx) * sz
    m20, m21, m22 = 2 * (xz - wy) * sx, 2 * (yz + wx) * sy, (1 - 2 * (xx + yy)) * sz
    return (
        m00 * m00 + m01 * m01 + m02 * m02,
        m00 * m10 + m01 * m11 + m02 * m12,
        m00 * m20 + m01 * m21 + m02 * m22,
        m10 * m10 + m11 * m11 + m12 * m12,
        m10 * m20 + m11 * m21 + m12 * m22,
        m20 * m20 + m21 * m21 + m22 * m22,
    )


def covar_components(covars: Tensor) -> Cov6:
    """Entries of a covariance matrix [N, 3, 3], symmetrised (gradients stay symmetric)."""
    c = covars
    return (c[:, 0, 0], 0.5 * (c[:, 0, 1] + c[:, 1, 0]), 0.5 * (c[:, 0, 2] + c[:, 2, 0]), c[:, 1, 1],
            0.5 * (c[:, 1, 2] + c[:, 2, 1]), c[:, 2, 2])


def covariances_from_scales_quats(scales: Tensor, quats: Tensor) -> Tensor:
    """Covariances ``R diag(scales^2) R^T`` from wxyz quaternions (normalised here) and per-axis scales.

    Args:
        scales: standard deviations along the local axes (not log). [N, 3]
        quats: wxyz. [N, 4]

    Returns:
        covariances. [N, 3, 3]
    """
    xx, xy, xz, yy, yz, zz = quat_scale_components(quats, scales)
    return torch.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], -1).reshape(quats.shape[:-1] + (3, 3))


def rotvec_to_rotmat(rotvec: Tensor) -> Tensor:  # [..., 3] -> [..., 3, 3]
    """Rotation matrices of rotation vectors (axis * angle, radians; Rodrigues), differentiable at 0."""
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]  # [..., 1, 1]
    theta = theta2.clamp_min(1e-24).sqrt()
    small = theta2 < 1e-8
    # sin(t)/t and (1 - cos t)/t^2 with their Taylor series near 0
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp_min(1e-24))
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*rotvec.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def euler_xyz_matrix(rot: Tensor) -> Tensor:  # [B, 3] -> [B, 3, 3]
    """Blender's Euler XYZ rotation: R = Rz @ Ry @ Rx (radians, column vectors)."""
    cx, cy, cz = torch.cos(rot).unbind(-1)
    sx, sy, sz = torch.sin(rot).unbind(-1)
    r = torch.stack([
        cy * cz, sy * sx * cz - cx * sz, sy * cx * cz + sx * sz,
        cy * sz, sy * sx * sz + cx * cz, sy * cx * sz - sx * cz,
        -sy, cy * sx, cy * cx,
    ], -1)
    return r.reshape(rot.shape[:-1] + (3, 3))


def loc_rot_scale(loc: Tensor, rot: Tensor, scale: Tensor) -> Tensor:  # [B,3] x3 -> [B, 4, 4]
    """T(loc) @ R(Euler XYZ rot) @ diag(scale): Blender's Transform Geometry (COMPONENTS)."""
    B = loc.shape[0]
    if rot.requires_grad or bool((rot != 0).any()):
        rs = euler_xyz_matrix(rot) * scale[:, None, :]
    else:
        rs = torch.diag_embed(scale)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=loc.dtype, device=loc.device).expand(B, 1, 4)
    return torch.cat([torch.cat([rs, loc[:, :, None]], 2), bottom], 1)


def placement_matrix(translation: Tensor, yaw: Tensor, log_scale: Tensor) -> Tensor:
    """[4, 4] ``T(translation) Rz(yaw) diag(exp(log_scale))``, differentiable. translation [3], yaw/log_scale []."""
    c, s, k = torch.cos(yaw), torch.sin(yaw), torch.exp(log_scale)
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    rows = [
        torch.stack([c * k, -s * k, zero, translation[0]]),
        torch.stack([s * k, c * k, zero, translation[1]]),
        torch.stack([zero, zero, k, translation[2]]),
        torch.stack([zero, zero, zero, one]),
    ]
    return torch.stack(rows)


def decompose_placement(m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Inverse of :func:`placement_matrix` for matrices of that form: (translation [3], yaw [], log_scale [])."""
    m = m.detach().to(torch.float64)
    k = torch.linalg.vector_norm(m[:3, 2])
    yaw = torch.atan2(m[1, 0], m[0, 0])
    return m[:3, 3].clone(), yaw, torch.log(k)


def rotate_z(points: Tensor, yaw: Tensor) -> Tensor:
    """``points [B, N, 3]`` rotated by ``yaw [B]`` radians about +Z (right-handed)."""
    c, s = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
    x, y, z = points.unbind(-1)
    return torch.stack([c * x - s * y, s * x + c * y, z], -1)
