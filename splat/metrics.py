"""Evaluation metrics: PSNR and SSIM on images, Chamfer / F-score / normal consistency on geometry,
parameter errors of a recovered shape program, and the outer size of a box-like point set.

Convention:
    Images are channels-last float tensors in [0, max_val], ``[B, H, W, C]`` or a single ``[H, W, C]``
    (the layout of ``Scene.images_tensor`` and of the rasterizer); masks are bool ``[B, H, W]`` / ``[H, W]``.
    Image metrics are torch functions, differentiable, returning one value per image (``[B]``, or a 0-d
    tensor for an unbatched input). Geometry metrics work in the points' unit (metres, world frame, see
    docs/conventions.md) and return Python floats; nearest neighbours come from ``scipy.spatial.cKDTree``.
    Chamfer terms are the *mean of the two one-sided means*:
    ``chamfer_l2 = (mean_p d(p, G)^2 + mean_g d(g, P)^2) / 2`` and ``chamfer_l1`` the same with unsquared
    Euclidean distances (the "Chamfer-L1" of Occupancy Networks), so a copy shifted by ``s`` (smaller than
    the point spacing) scores ``|s|`` and ``|s|^2``. F-score@tau follows Tanks and Temples: precision =
    fraction of predicted points within ``tau`` (strictly closer) of the reference, recall the converse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, Sequence, Union

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from splat.errors import SplatError
from splat.ops import ssim as fused_ssim
from splat.ops.sampling import sample_surface

# ------------------------------------------------------------------------------------------------ images


def _batch_images(pred: Tensor, target: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None, bool]:
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if pred.ndim not in (3, 4):
        raise ValueError(f"images must be [H, W, C] or [B, H, W, C], got {tuple(pred.shape)}")
    single = pred.ndim == 3
    if single:
        pred, target = pred[None], target[None]
        mask = None if mask is None else mask[None]
    if mask is not None:
        if mask.shape != pred.shape[:3]:
            raise ValueError(f"mask must be {tuple(pred.shape[:3])} ([B, H, W]), got {tuple(mask.shape)}")
        mask = mask.to(torch.bool)
    return pred, target, mask, single


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None, *, max_val: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(max_val^2 / MSE)``, per image.

    Args:
        pred, target: ``[B, H, W, C]`` or ``[H, W, C]`` float.
        mask: optional bool ``[B, H, W]`` / ``[H, W]``: the MSE is over masked pixels (all channels) only.
        max_val: the peak value (1.0 for images in [0, 1]).
    Returns:
        ``[B]`` (or 0-d): +inf for identical images, NaN for an empty mask.
    """
    pred, target, mask, single = _batch_images(pred, target, mask)
    se = (pred - target).square().mean(-1)  # [B, H, W]
    if mask is None:
        mse = se.flatten(1).mean(1)
    else:
        m = mask.to(se.dtype)
        mse = (se * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    out = 10.0 * torch.log10(max_val**2 / mse)
    return out[0] if single else out


def gaussian_window(window_size: int = 11, sigma: float = 1.5, *, dtype=torch.float32, device=None) -> Tensor:
    """Normalised 1-D Gaussian ``[window_size]``, centred; the 2-D window is its outer product."""
    x = torch.arange(window_size, dtype=torch.float64) - (window_size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _blur(x: Tensor, g: Tensor, pad: int) -> Tensor:
    """Separable Gaussian filter of ``x [N, C, H, W]`` (zero padding ``pad``; 0 = 'valid')."""
    c, k = x.shape[1], g.numel()
    gx = g.view(1, 1, 1, k).expand(c, 1, 1, k)
    gy = g.view(1, 1, k, 1).expand(c, 1, k, 1)
    x = torch.nn.functional.conv2d(x, gx, padding=(0, pad), groups=c)
    return torch.nn.functional.conv2d(x, gy, padding=(pad, 0), groups=c)


def _use_ssim_kernel(pred: Tensor, target: Tensor) -> bool:
    """Whether :func:`ssim_map` can take the fused kernel: non-empty CPU float32/float64 images of one dtype,
    no target gradient."""
    return (pred.numel() > 0 and pred.device.type == "cpu" and target.device.type == "cpu"
            and pred.dtype == target.dtype and pred.dtype in (torch.float32, torch.float64)
            and not (target.requires_grad and torch.is_grad_enabled()) and fused_ssim.kernel_available())


def ssim_map(pred: Tensor, target: Tensor, *, window_size: int = 11, sigma: float = 1.5, max_val: float = 1.0,
             padding: Literal["valid", "same"] = "valid") -> Tensor:
    """Per-pixel SSIM (Wang et al. 2004), averaged over channels.

    Gaussian window ``window_size`` x ``window_size`` with ``sigma``, ``C1 = (0.01 max_val)^2``,
    ``C2 = (0.03 max_val)^2``, population (biased) local statistics.

    Args:
        pred, target: ``[B, H, W, C]`` float, channels last.
        padding: "valid" (the reference definition: no padding, the map is
            ``[B, H - window_size + 1, W - window_size + 1]``) or "same" (zero padding, ``[B, H, W]``, as
            the 3DGS D-SSIM loss uses).
    Returns:
        ``[B, H', W']`` SSIM map.

    CPU float32/float64 inputs whose target needs no gradient go through the fused C++ kernel
    (:mod:`splat.ops.ssim`, one pass forward and one backward); everything else, and any input when the
    kernel cannot be built, through the torch code below, which is also the kernel's reference in tests.
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"pred/target must both be [B, H, W, C], got {tuple(pred.shape)}, {tuple(target.shape)}")
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    if window_size % 2 != 1:
        raise ValueError(f"window_size must be odd, got {window_size}")
    if padding == "valid" and min(pred.shape[1:3]) < window_size:
        raise ValueError(f"images {tuple(pred.shape[1:3])} are smaller than the {window_size}px window")
    pad = window_size // 2 if padding == "same" else 0
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    if _use_ssim_kernel(pred, target):
        g = gaussian_window(window_size, sigma, dtype=pred.dtype)
        return fused_ssim.ssim_map(pred, target, g, pad, c1, c2)
    x = pred.permute(0, 3, 1, 2)
    y = target.permute(0, 3, 1, 2)
    g = gaussian_window(window_size, sigma, dtype=x.dtype, device=x.device)
    mu_x, mu_y = _blur(x, g, pad), _blur(y, g, pad)
    sxx = _blur(x * x, g, pad) - mu_x * mu_x
    syy = _blur(y * y, g, pad) - mu_y * mu_y
    sxy = _blur(x * y, g, pad) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2))
    return s.mean(1)


def ssim(pred: Tensor, target: Tensor, mask: Tensor | None = None, *, window_size: int = 11, sigma: float = 1.5,
         max_val: float = 1.0, padding: Literal["valid", "same"] = "valid") -> Tensor:
    """Mean SSIM per image (see :func:`ssim_map`); differentiable (the trainer's D-SSIM is ``1 - ssim``).

    Args:
        pred, target: ``[B, H, W, C]`` or ``[H, W, C]`` float in [0, max_val], channels last.
        mask: optional bool ``[B, H, W]`` / ``[H, W]``: average the SSIM map only over pixels whose
            window centre is in the mask (with "valid" padding the mask is cropped like the map).
    Returns:
        ``[B]`` (or 0-d): 1.0 for identical images; NaN where the (cropped) mask is empty.
    """
    pred, target, mask, single = _batch_images(pred, target, mask)
    s = ssim_map(pred, target, window_size=window_size, sigma=sigma, max_val=max_val, padding=padding)
    if mask is None:
        out = s.flatten(1).mean(1)
    else:
        if padding == "valid":
            r = window_size // 2
            mask = mask[:, r: mask.shape[1] - r, r: mask.shape[2] - r]
        m = mask.to(s.dtype)
        out = (s * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    return out[0] if single else out


# ---------------------------------------------------------------------------------------------- geometry

MeshLike = Union["trimesh.Trimesh", tuple]  # noqa: F821  (trimesh.Trimesh or (verts [V,3], faces [F,3]))


class SurfacePoints(NamedTuple):
    """Points (and normals, when they come from a mesh) describing a surface."""

    points: np.ndarray  # [N, 3] float64
    normals: np.ndarray | None  # [N, 3] float64 unit normals, or None for a bare point set


def _to_numpy(a) -> np.ndarray:
    if isinstance(a, Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def sample_mesh(mesh: MeshLike, num_samples: int, generator: torch.Generator) -> SurfacePoints:
    """Area-uniform random points with face normals on a triangle mesh (seeded by ``generator``).

    Args:
        mesh: a ``trimesh.Trimesh`` or a tuple ``(verts [V, 3], faces [F, 3])`` (numpy or torch).
        num_samples: number of points N.
        generator: CPU ``torch.Generator``; the same seed gives the same points.
    """
    if isinstance(mesh, tuple):
        verts, faces = mesh[0], mesh[1]
    else:
        verts, faces = mesh.vertices, mesh.faces
    v = torch.as_tensor(_to_numpy(verts)).reshape(1, -1, 3)
    f = torch.as_tensor(np.asarray(faces.detach().cpu() if isinstance(faces, Tensor) else faces,
                                   dtype=np.int64)).reshape(-1, 3)
    s = sample_surface(v, f, num_samples, generator)
    if int(s.lengths[0]) == 0:
        raise ValueError("mesh has no surface area to sample")
    return SurfacePoints(s.points[0].numpy(), s.normals[0].numpy())


def _surface(x, num_samples: int, generator: torch.Generator | None) -> SurfacePoints:
    if isinstance(x, SurfacePoints):
        return x
    if isinstance(x, tuple) or hasattr(x, "faces"):
        if generator is None:
            raise ValueError("sampling a mesh needs an explicit torch.Generator")
        return sample_mesh(x, num_samples, generator)
    p = _to_numpy(x).reshape(-1, 3)
    return SurfacePoints(p, None)


def _nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each point of ``a [N, 3]`` to its nearest in ``b [M, 3]``, and that point's index."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError("point sets must be non-empty")
    d, i = cKDTree(b).query(a, k=1, workers=-1)
    return d, i


class FScore(NamedTuple):
    tau: float  # threshold, in the points' unit
    precision: float  # fraction of predicted points closer than tau to the reference
    recall: float  # fraction of reference points closer than tau to the prediction
    fscore: float  # 2 P R / (P + R), 0 when both are 0


class GeometryMetrics(NamedTuple):
    """Geometry metrics of a prediction against a reference (see module docstring for definitions)."""

    chamfer_l1: float  # mean of the two one-sided mean Euclidean distances
    chamfer_l2: float  # mean of the two one-sided mean squared distances
    accuracy: float  # mean distance prediction -> reference
    completeness: float  # mean distance reference -> prediction
    fscores: tuple[FScore, ...]  # one per tau, in the order given
    normal_consistency: float  # mean |cos| between normals of nearest points, both ways; NaN without normals

    def as_dict(self) -> dict[str, float]:
        """Flat ``{"chamfer_l1": .., "fscore@1cm": .., ...}`` (keys named as in docs/evaluation.md)."""
        out = {"chamfer_l1": self.chamfer_l1, "chamfer_l2": self.chamfer_l2, "accuracy": self.accuracy,
               "completeness": self.completeness, "normal_consistency": self.normal_consistency}
        for f in self.fscores:
            tag = f"{f.tau * 100:g}cm"
            out[f"fscore@{tag}"] = f.fscore
            out[f"precision@{tag}"] = f.precision
            out[f"recall@{tag}"] = f.recall
        return out


def _fscore(d_pred: np.ndarray, d_ref: np.ndarray, tau: float) -> FScore:
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    p = float(np.mean(d_pred < tau))
    r = float(np.mean(d_ref < tau))
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return FScore(float(tau), p, r, f)


def geometry_metrics(pred, ref, *, taus: Sequence[float] = (0.01, 0.02, 0.05), num_samples: int = 100_000,
                     generator: torch.Generator | None = None) -> GeometryMetrics:
    """Chamfer-L1/L2, F-score@taus and normal consistency of ``pred`` against ``ref``.

    Args:
        pred, ref: each a point set ``[N, 3]`` (numpy or torch), a mesh (``trimesh.Trimesh`` or
            ``(verts, faces)``, sampled area-uniformly with ``num_samples`` points), or
            :class:`SurfacePoints`. Normal consistency needs normals on both sides (meshes or
            SurfacePoints with normals), else it is NaN.
        taus: F-score thresholds in metres (default 1, 2, 5 cm).
        generator: required when a mesh is sampled; seed it for reproducible numbers. Both sides are
            sampled from the same generator state, so a mesh against itself scores exactly 0.
    """
    # Both sides draw from the same generator state, so a mesh compared with itself gets the very same
    # samples (Chamfer exactly 0); the generator ends advanced past one sampling.
    state = None if generator is None else generator.get_state()
    a = _surface(pred, num_samples, generator)
    if state is not None:
        after = generator.get_state()
        generator.set_state(state)
    b = _surface(ref, num_samples, generator)
    if state is not None:
        generator.set_state(after)
    d_ab, i_ab = _nearest(a.points, b.points)
    d_ba, i_ba = _nearest(b.points, a.points)
    if a.normals is not None and b.normals is not None:
        nc = 0.5 * (np.abs((a.normals * b.normals[i_ab]).sum(1)).mean()
                    + np.abs((b.normals * a.normals[i_ba]).sum(1)).mean())
    else:
        nc = math.nan
    return GeometryMetrics(
        chamfer_l1=float(0.5 * (d_ab.mean() + d_ba.mean())),
        chamfer_l2=float(0.5 * (np.square(d_ab).mean() + np.square(d_ba).mean())),
        accuracy=float(d_ab.mean()),
        completeness=float(d_ba.mean()),
        fscores=tuple(_fscore(d_ab, d_ba, t) for t in taus),
        normal_consistency=float(nc),
    )


def chamfer_l1(pred, ref, *, num_samples: int = 100_000, generator: torch.Generator | None = None) -> float:
    """``(mean_p d(p, ref) + mean_r d(r, pred)) / 2`` with Euclidean distances (inputs as :func:`geometry_metrics`)."""
    return geometry_metrics(pred, ref, taus=(), num_samples=num_samples, generator=generator).chamfer_l1


def chamfer_l2(pred, ref, *, num_samples: int = 100_000, generator: torch.Generator | None = None) -> float:
    """``(mean_p d(p, ref)^2 + mean_r d(r, pred)^2) / 2`` (inputs as :func:`geometry_metrics`)."""
    return geometry_metrics(pred, ref, taus=(), num_samples=num_samples, generator=generator).chamfer_l2


def fscore(pred, ref, tau: float, *, num_samples: int = 100_000, generator: torch.Generator | None = None) -> FScore:
    """F-score at threshold ``tau`` (inputs as :func:`geometry_metrics`)."""
    return geometry_metrics(pred, ref, taus=(tau,), num_samples=num_samples, generator=generator).fscores[0]


def normal_consistency(pred: SurfacePoints, ref: SurfacePoints) -> float:
    """Mean ``|n_p . n_nearest|`` over both directions (1 = normals agree everywhere, up to orientation)."""
    if pred.normals is None or ref.normals is None:
        raise ValueError("normal consistency needs normals on both point sets")
    return geometry_metrics(pred, ref, taus=()).normal_consistency


# -------------------------------------------------------------------------------------------- parameters


class ParamErrors(NamedTuple):
    """Errors of recovered program parameters against the ground truth, over active parameters only."""

    continuous_mae_pct: float  # mean |pred - gt| / (high - low) * 100 over active float params; NaN if none
    discrete_accuracy: float  # fraction of active int/bool params predicted exactly; NaN if none
    n_continuous: int  # active float params compared
    n_discrete: int  # active int/bool params compared
    per_param: dict[str, float]  # name -> error in % of range (float) or 1.0/0.0 correct (int/bool)


class ParamRow(NamedTuple):
    """The plain description of one parameter that :func:`param_errors` needs."""

    name: str
    type: str  # "float" | "int" | "bool"
    low: float | None  # inclusive range (floats need it)
    high: float | None
    active: bool  # active under the ground-truth assignment


def param_rows(space: Any, gt: Mapping[str, Any]) -> list[ParamRow]:
    """Adapter from a parameter space to :class:`ParamRow` s, activity judged on ``gt``.

    ``space`` is either a ``splat.params.ParamSpace`` (anything with ``.params`` of objects with
    ``name, type, low, high`` and ``.active(assignment) -> {name: bool}``), or a plain mapping
    ``{name: {"type": "float"|"int"|"bool", "low": .., "high": .., "active": bool (default True)}}``.
    """
    if isinstance(space, Mapping):
        rows = []
        for name, d in space.items():
            if not isinstance(d, Mapping) or "type" not in d:
                raise ValueError(f"parameter {name!r}: need a mapping with 'type', got {d!r}")
            rows.append(ParamRow(str(name), str(d["type"]), d.get("low"), d.get("high"), bool(d.get("active", True))))
        return rows
    active = space.active(dict(gt))
    return [ParamRow(p.name, str(p.type), p.low, p.high, bool(active[p.name])) for p in space.params]


def param_errors(pred: Mapping[str, Any], gt: Mapping[str, Any], space: Any) -> ParamErrors:
    """Parameter errors of ``pred`` against ``gt``, over the parameters active in ``gt``.

    Args:
        pred, gt: parameter name -> value (Python numbers/bools or 0-d tensors).
        space: a ParamSpace or a plain description (see :func:`param_rows`).
    Raises:
        SplatError: an active parameter is missing from ``pred`` or ``gt`` (field = its name), or a
            float parameter has no positive range.
    """
    per: dict[str, float] = {}
    cont, disc = [], []
    for row in param_rows(space, gt):
        if not row.active:
            continue
        for which, values in (("prediction", pred), ("ground truth", gt)):
            if row.name not in values:
                raise SplatError(f"active parameter missing from the {which}", field=row.name)
        p, g = _scalar(pred[row.name]), _scalar(gt[row.name])
        if row.type == "float":
            if row.low is None or row.high is None or not row.high > row.low:
                raise SplatError(f"float parameter needs a range low < high, got [{row.low}, {row.high}]",
                                 field=row.name)
            err = abs(p - g) / (row.high - row.low) * 100.0
            per[row.name] = err
            cont.append(err)
        elif row.type in ("int", "bool"):
            ok = float(round(p) == round(g))
            per[row.name] = ok
            disc.append(ok)
        else:
            raise ValueError(f"parameter {row.name!r}: unknown type {row.type!r}")
    return ParamErrors(
        continuous_mae_pct=float(np.mean(cont)) if cont else math.nan,
        discrete_accuracy=float(np.mean(disc)) if disc else math.nan,
        n_continuous=len(cont), n_discrete=len(disc), per_param=per)


def _scalar(v) -> float:
    if isinstance(v, Tensor):
        v = v.detach().cpu().reshape(-1)
        if v.numel() != 1:
            raise ValueError(f"expected one value per parameter, got {v.numel()}")
        v = v.item()
    return float(v)


# --------------------------------------------------------------------------------------- outer size


class OuterSize(NamedTuple):
    """Width (x), depth (y) and height (z) of a point set in a box frame, from its faces (metres)."""

    width: float
    depth: float
    height: float  # the top face's height above the frame's z = 0 (the floor)


def face_position(coord: np.ndarray, *, band: float = 0.08, bin_size: float = 0.0025) -> float:
    """Where the outermost face along one direction lies: the densest ``bin_size`` bin of ``coord``
    within ``band`` of its 99.5th percentile (NaN for fewer than 20 values).

    A scanned face is a slab of noisy points, not a plane: sensor noise and pose error spread a fused
    Kinect face over +-2 cm, so its outermost percentile lies past the face by the spread, while the
    density peak sits on it. Handles and other small protrusions are sparse and do not move the peak.
    """
    c = np.asarray(coord, dtype=np.float64)
    if c.size < 20:
        return math.nan
    top = float(np.percentile(c, 99.5))
    c = c[c > top - band]
    counts, edges = np.histogram(c, bins=np.arange(top - band, top + bin_size * 1.5, bin_size))
    k = int(np.argmax(counts))
    return float(edges[k] + bin_size / 2)


def outer_size(points, frame: np.ndarray | None = None, *, band: float = 0.08) -> OuterSize:
    """:class:`OuterSize` of ``points [N, 3]`` (world) in a box frame.

    ``frame [4, 4]`` maps the box frame to the world (rotation and translation; a uniform scale is
    divided out, so sizes stay in world units); None: the world axes. Each face's position is
    :func:`face_position` of the points in the middle of that face (the 20-80th percentiles along the
    other two axes, so the edges and whatever stands beside the face do not count): width is +x face
    - (-x face), depth likewise along y, height the +z face. Measure a fitted program and the scan it was
    fitted to the same way (e.g. the program's mesh as the same cameras see it) and compare.
    """
    p = np.asarray(points.detach().cpu() if isinstance(points, Tensor) else points, dtype=np.float64).reshape(-1, 3)
    if frame is not None:
        m = np.asarray(frame, dtype=np.float64)
        s = float(np.cbrt(abs(np.linalg.det(m[:3, :3]))))
        p = (p - m[:3, 3]) @ (m[:3, :3] / s)
    faces = []
    for axis, signs in ((0, (-1.0, 1.0)), (1, (-1.0, 1.0)), (2, (1.0,))):
        mid = np.ones(len(p), bool)
        for a in {0, 1, 2} - {axis}:
            if len(p):
                lo, hi = np.percentile(p[:, a], [20, 80])
                mid &= (p[:, a] > lo) & (p[:, a] < hi)
        faces.append([sign * face_position(sign * p[mid, axis], band=band) for sign in signs])
    return OuterSize(faces[0][1] - faces[0][0], faces[1][1] - faces[1][0], faces[2][0])
