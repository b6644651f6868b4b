"""3D Gaussian splats in the Inria 3DGS PLY layout: writer, reader, and covariance factorisation.

The file is a binary little-endian PLY with one ``vertex`` element whose float32 properties are, in
order::

    x y z  nx ny nz  f_dc_0 f_dc_1 f_dc_2  f_rest_0 .. f_rest_{3(K-1)-1}  opacity  scale_0..2  rot_0..3

This is the layout of the reference 3DGS implementation (Kerbl et al. 2023), which viewers such as
SuperSplat, the Inria SIBR viewer and gsplat's examples read.

Convention:
    Values are *pre-activation*: ``opacity`` is the logit (``alpha = sigmoid(opacity)``), ``scale_*``
    are natural-log standard deviations (``sigma_i = exp(scale_i)``), ``rot_*`` is the quaternion in
    **wxyz** order (``rot_0`` is the real part; not necessarily normalised on read, we normalise on
    write), and ``f_dc_*`` / ``f_rest_*`` are real spherical-harmonic coefficients with
    ``rgb = 0.5 + C0 * f_dc + ...`` (``C0 = 0.28209479177387814``). ``f_rest`` is stored
    channel-major, as Inria does: ``f_rest[c * (K - 1) + (k - 1)] = sh[k, c]`` for SH basis index
    ``k >= 1`` and colour channel ``c``. ``K = (degree + 1) ** 2``. Normals ``nx ny nz`` are written as
    zeros and ignored on read. Positions are world coordinates in metres (Blender world: +Z up).
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from splat.errors import SplatError
from splat.io import atomic_path, read_ply
from splat.maths import covariances_from_scales_quats, covariances_to_scales_quats, rgb_to_sh_dc

class SplatCloud(NamedTuple):
    """A set of N 3D Gaussians in pre-activation form (what a 3DGS PLY stores).

    All tensors share one device and a floating dtype. ``sh_degree`` is ``sqrt(K) - 1``.
    """

    means: Tensor  # [N, 3] world positions, metres
    sh: Tensor  # [N, K, 3] SH coefficients, K = (degree+1)^2; sh[:, 0] is the DC term
    opacity_logits: Tensor  # [N] alpha = sigmoid(opacity_logits)
    log_scales: Tensor  # [N, 3] sigma = exp(log_scales), along the rotation's columns
    quats: Tensor  # [N, 4] wxyz, unit norm

    @property
    def sh_degree(self) -> int:
        return math.isqrt(self.sh.shape[1]) - 1

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[0]

    def covariances(self) -> Tensor:  # [N, 3, 3]
        return covariances_from_scales_quats(self.log_scales.exp(), self.quats)


def splats_from_world(means: Tensor, covars: Tensor, opacities: Tensor, sh: Tensor,
                      *, min_scale: float = 1e-10, max_opacity: float = 1.0 - 1e-6) -> SplatCloud:
    """World Gaussians (activated values, as the rasterizer takes them) -> :class:`SplatCloud`.

    Args:
        means: ``[N, 3]`` world positions.
        covars: ``[N, 3, 3]`` world covariances (factored by :func:`covariances_to_scales_quats`).
        opacities: ``[N]`` alphas in [0, 1]; stored as logits, clamped to
            ``[1 - max_opacity, max_opacity]`` so the logit stays finite.
        sh: ``[N, K, 3]`` SH coefficients, or ``[N, 3]`` colours in [0, 1] (stored as degree 0).
    """
    n = means.shape[0]
    if sh.ndim == 2:
        sh = rgb_to_sh_dc(sh)[:, None, :]
    if means.shape != (n, 3) or opacities.shape != (n,) or sh.ndim != 3 or sh.shape[0] != n or sh.shape[2] != 3:
        raise ValueError(
            f"shape mismatch: means {tuple(means.shape)}, opacities {tuple(opacities.shape)}, sh {tuple(sh.shape)}")
    log_scales, quats = covariances_to_scales_quats(covars, min_scale=min_scale)
    o = opacities.detach().clamp(1.0 - max_opacity, max_opacity)
    return SplatCloud(means=means.detach(), sh=sh.detach(), opacity_logits=torch.logit(o),
                      log_scales=log_scales, quats=quats)


def _property_names(num_rest: int) -> list[str]:
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(num_rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def splats_to_array(splats: SplatCloud) -> np.ndarray:
    """:class:`SplatCloud` -> ``[N, P]`` float32 array in the Inria property order (see module doc)."""
    n = splats.num_gaussians
    k = splats.sh.shape[1]
    if k < 1 or math.isqrt(k) ** 2 != k:
        raise ValueError(f"sh must have a square number of coefficients (1, 4, 9, 16), got {k}")
    for name, t, shape in (("means", splats.means, (n, 3)), ("sh", splats.sh, (n, k, 3)),
                           ("opacity_logits", splats.opacity_logits, (n,)),
                           ("log_scales", splats.log_scales, (n, 3)), ("quats", splats.quats, (n, 4))):
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must be {list(shape)}, got {list(t.shape)}")
    f = lambda t: t.detach().to("cpu", torch.float64).numpy()  # noqa: E731
    sh = f(splats.sh)
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (k - 1))  # channel-major, as Inria
    q = f(splats.quats)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    cols = [f(splats.means), np.zeros((n, 3)), sh[:, 0, :], rest, f(splats.opacity_logits)[:, None],
            f(splats.log_scales), q]
    arr = np.concatenate(cols, axis=1).astype(np.float32)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise SplatError(f"{int(bad.sum())} Gaussian(s) have non-finite values", field=f"gaussians[{int(bad.argmax())}]")
    return arr


def write_splats_ply(path: str | os.PathLike, splats: SplatCloud) -> None:
    """Write ``splats`` to ``path`` (binary little-endian PLY, Inria 3DGS layout), atomically."""
    arr = splats_to_array(splats)
    names = _property_names(arr.shape[1] - 17)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {arr.shape[0]}"]
    header += [f"property float {nm}" for nm in names]
    header += ["end_header"]
    data = ("\n".join(header) + "\n").encode("ascii") + np.ascontiguousarray(arr, dtype="<f4").tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_splats_ply(path: str | os.PathLike, *, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> SplatCloud:
    """Read a 3DGS PLY (any PLY flavour plyfile reads: binary or ASCII, float or double properties).

    Raises :class:`SplatError` naming the file and the field for a missing file, a file that is not a
    PLY, a missing ``vertex`` element or property, an ``f_rest`` count that is not ``3 * ((d+1)^2 - 1)``,
    or non-finite values. Quaternions are normalised; zero quaternions are an error.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SplatError("file not found", file=path)
    ply = read_ply(path)  # header checked against the file's size; plyfile's errors as SplatError
    if "vertex" not in [e.name for e in ply.elements]:
        raise SplatError("no 'vertex' element", file=path, field="vertex")
    v = ply["vertex"].data
    names = set(v.dtype.names or ())
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                "rot_0", "rot_1", "rot_2", "rot_3"]
    for nm in required:
        if nm not in names:
            raise SplatError("missing property (not a 3DGS splat file?)", file=path, field=f"vertex.{nm}")
    for nm in sorted(names):
        if (nm in required or nm.startswith("f_rest_")) and v[nm].dtype == object:
            raise SplatError("is a list property, expected a number per vertex", file=path, field=f"vertex.{nm}")
    num_rest = len([nm for nm in names if nm.startswith("f_rest_")])
    if num_rest % 3 or math.isqrt(num_rest // 3 + 1) ** 2 != num_rest // 3 + 1:
        raise SplatError(f"{num_rest} f_rest properties; expected 3 * ((degree + 1)^2 - 1) (0, 9, 24, 45)",
                         file=path, field="vertex.f_rest")
    for i in range(num_rest):
        if f"f_rest_{i}" not in names:
            raise SplatError("f_rest properties are not numbered 0..n-1", file=path, field=f"vertex.f_rest_{i}")
    col = lambda nm: np.asarray(v[nm], dtype=np.float64)  # noqa: E731
    n = len(v)
    k = num_rest // 3 + 1
    means = np.stack([col("x"), col("y"), col("z")], -1)
    dc = np.stack([col(f"f_dc_{c}") for c in range(3)], -1)
    rest = (np.stack([col(f"f_rest_{i}") for i in range(num_rest)], -1) if num_rest
            else np.zeros((n, 0)))
    sh = np.concatenate([dc[:, None, :], rest.reshape(n, 3, k - 1).transpose(0, 2, 1)], axis=1)
    opac = col("opacity")
    scales = np.stack([col(f"scale_{i}") for i in range(3)], -1)
    quats = np.stack([col(f"rot_{i}") for i in range(4)], -1)
    for field, a in (("x/y/z", means), ("f_dc/f_rest", sh), ("opacity", opac), ("scale", scales), ("rot", quats)):
        bad = ~np.isfinite(a.reshape(n, -1)).all(-1) if n else np.zeros(0, dtype=bool)  # 0 Gaussians: empty cloud
        if bad.any():
            raise SplatError(f"{int(bad.sum())} non-finite value(s), first at vertex {int(bad.argmax())}",
                             file=path, field=f"vertex.{field}")
    qn = np.linalg.norm(quats, axis=-1, keepdims=True)
    if (qn == 0).any():
        raise SplatError(f"zero quaternion at vertex {int((qn[:, 0] == 0).argmax())}", file=path, field="vertex.rot")
    t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    return SplatCloud(means=t(means), sh=t(sh), opacity_logits=t(opac), log_scales=t(scales), quats=t(quats / qn))
