"""Real spherical harmonics up to degree 4, evaluated in PyTorch (differentiable).

Convention: the basis order and signs are the ones used by 3DGS / gsplat (band l, orders m = -l..l),
so SH coefficients trained with gsplat render the same colour here. A colour is
``max(sum_k basis_k(dir) * coeff_k + 0.5, 0)`` with ``dir`` the unit vector from the camera centre to the
Gaussian mean. The "cpu" backend evaluates degrees <= 3 with a C++ twin of ``sh_to_color``
(splat/render/cpu/project.cpp); this module is its reference.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MAX_SH_DEGREE = 4

# Normalisation constants of the real SH bands, written from the closed forms
# Y_l^m = K_l^m * P_l^|m|(cos theta) * {cos, sin}(|m| phi) (sqrt(2) folded in for m != 0).
_C0 = 0.5 / math.sqrt(math.pi)
_C1 = math.sqrt(3.0 / (4.0 * math.pi))
_C2 = (
    0.5 * math.sqrt(15.0 / math.pi),  # xy
    0.5 * math.sqrt(15.0 / math.pi),  # yz (sign applied below)
    0.25 * math.sqrt(5.0 / math.pi),  # 3z^2 - 1
    0.5 * math.sqrt(15.0 / math.pi),  # xz
    0.25 * math.sqrt(15.0 / math.pi),  # x^2 - y^2
)
_C3 = (
    0.25 * math.sqrt(35.0 / (2.0 * math.pi)),
    0.5 * math.sqrt(105.0 / math.pi),
    0.25 * math.sqrt(21.0 / (2.0 * math.pi)),
    0.25 * math.sqrt(7.0 / math.pi),
    0.25 * math.sqrt(21.0 / (2.0 * math.pi)),
    0.25 * math.sqrt(105.0 / math.pi),
    0.25 * math.sqrt(35.0 / (2.0 * math.pi)),
)
_C4 = (
    0.75 * math.sqrt(35.0 / math.pi),
    0.75 * math.sqrt(35.0 / (2.0 * math.pi)),
    0.75 * math.sqrt(5.0 / math.pi),
    0.75 * math.sqrt(5.0 / (2.0 * math.pi)),
    3.0 / 16.0 * math.sqrt(1.0 / math.pi),
    0.75 * math.sqrt(5.0 / (2.0 * math.pi)),
    0.375 * math.sqrt(5.0 / math.pi),
    0.75 * math.sqrt(35.0 / (2.0 * math.pi)),
    3.0 / 16.0 * math.sqrt(35.0 / math.pi),
)


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Real SH basis values at unit directions.

    Args:
        degree: 0..4.
        dirs: unit vectors. [..., 3]

    Returns:
        basis values, ``(degree + 1) ** 2`` per direction. [..., (degree+1)^2]
    """
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, _C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            _C2[0] * x * y,
            -_C2[1] * y * z,
            _C2[2] * (3.0 * zz - 1.0),
            -_C2[3] * x * z,
            _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            -_C3[0] * y * (3.0 * xx - yy),
            _C3[1] * x * y * z,
            -_C3[2] * y * (5.0 * zz - 1.0),
            _C3[3] * z * (5.0 * zz - 3.0),
            -_C3[4] * x * (5.0 * zz - 1.0),
            _C3[5] * z * (xx - yy),
            -_C3[6] * x * (xx - 3.0 * yy),
        ]
    if degree >= 4:
        out += [
            _C4[0] * x * y * (xx - yy),
            -_C4[1] * y * z * (3.0 * xx - yy),
            _C4[2] * x * y * (7.0 * zz - 1.0),
            -_C4[3] * y * z * (7.0 * zz - 3.0),
            _C4[4] * (35.0 * zz * zz - 30.0 * zz + 3.0),
            -_C4[5] * x * z * (7.0 * zz - 3.0),
            _C4[6] * (xx - yy) * (7.0 * zz - 1.0),
            -_C4[7] * x * z * (xx - 3.0 * yy),
            _C4[8] * (xx * (xx - 3.0 * yy) - yy * (3.0 * xx - yy)),
        ]
    return torch.stack(out, dim=-1)


def sh_to_color(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """View-dependent colour from SH coefficients, as 3DGS: ``clamp_min(sum basis*coeff + 0.5, 0)``.

    Args:
        degree: SH degree in use, 0..4; only the first ``(degree+1)^2`` coefficients are read.
        dirs: view directions, need not be unit length (normalised here). [..., 3]
        coeffs: SH coefficients. [..., K, 3] with K >= (degree+1)^2

    Returns:
        colours. [..., 3]
    """
    n = (degree + 1) ** 2
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    basis = sh_basis(degree, dirs)  # [..., n]
    return torch.clamp_min((basis[..., None] * coeffs[..., :n, :]).sum(dim=-2) + 0.5, 0.0)
