"""Chamfer distance between ragged batches of point clouds, per batch element, differentiable in both.

Convention:
    ``x [Bx, N, 3]`` with ``x_lengths [Bx]`` and ``y [By, M, 3]`` with ``y_lengths [By]``, padded as in
    :mod:`splat.ops.knn` (Bx and By equal, or one of them 1 and broadcast: a GA generation against one
    scan is one call). Per point, the distance to the nearest point of the other cloud is squared
    Euclidean (``squared=True``, Chamfer-L2) or Euclidean (Chamfer-L1 style), in the points' unit (metres).
    The one-sided terms are means (or sums) over each cloud's valid points; the loss is their sum.
    A batch element whose needed cloud is empty gets loss +inf (and no gradient).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from splat.ops.knn import Backend, _lengths, _valid_mask, knn_indices, knn_points
from splat.ops.mesh_distance import point_mesh_sq_distance, triangle_sq_distance


@dataclass(frozen=True)
class ChamferSettings:
    """How per-point nearest distances are turned into one number per batch element."""

    squared: bool = True
    """Squared Euclidean distances (Chamfer-L2); False for unsquared (Chamfer-L1 style)."""
    direction: Literal["both", "x_to_y", "y_to_x"] = "both"
    """Two-sided, or only from x to its nearest in y (accuracy), or from y to x (completeness)."""
    reduction: Literal["mean", "sum"] = "mean"
    """Reduce each one-sided term over the cloud's valid points by mean or sum."""
    clamp: float | None = None
    """Per-point distances (in the unit chosen by ``squared``) above this are clamped: outliers then
    add a constant and no gradient. None for no clamp."""
    trim: float = 0.0
    """Fraction in [0, 1) of each cloud's largest per-point distances dropped before reducing
    (trimmed Chamfer, robust to outliers and partial scans)."""
    x_margin: float = 0.0
    """Distances from x below this are free: each x point adds ``max(d - x_margin, 0)`` (in the unit
    chosen by ``squared``). With x = surface samples and y = a scan, a sample on the scanned surface still
    lies up to about the scan's point spacing from its nearest scan point; a margin of that size removes
    this floor (and its sampling noise), so the x -> y term measures only geometry the scan does not
    show. Applied before ``clamp`` and ``trim``; 0 leaves the term as is."""

    def __post_init__(self):
        if self.direction not in ("both", "x_to_y", "y_to_x"):
            raise ValueError(f"direction must be 'both', 'x_to_y' or 'y_to_x', got {self.direction!r}")
        if self.reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {self.reduction!r}")
        if not 0.0 <= self.trim < 1.0:
            raise ValueError(f"trim must lie in [0, 1), got {self.trim}")
        if self.clamp is not None and not self.clamp > 0:
            raise ValueError(f"clamp must be positive, got {self.clamp}")
        if not (self.x_margin >= 0.0 and math.isfinite(self.x_margin)):
            raise ValueError(f"x_margin must be finite and >= 0, got {self.x_margin}")


class ChamferResult(NamedTuple):
    """Chamfer terms per batch element (B = max(Bx, By))."""

    loss: Tensor  # [B] sum of the selected one-sided terms; +inf where a needed cloud is empty
    x_to_y: Tensor | None  # [B] reduced distance from x to nearest y; None when not selected
    y_to_x: Tensor | None  # [B] reduced distance from y to nearest x; None when not selected
    x_dists: Tensor | None  # [B, N] per-point distance x -> y (unclamped, 0 at padding); None when not selected
    y_dists: Tensor | None  # [B, M] per-point distance y -> x (unclamped, 0 at padding); None when not selected


def _reduce(d: Tensor, valid: Tensor, lengths: Tensor, settings: ChamferSettings) -> Tensor:
    """Reduce per-point distances ``d [B, N]`` over valid points to ``[B]`` (+inf where length is 0)."""
    if settings.clamp is not None:
        d = d.clamp(max=settings.clamp)
    if settings.trim > 0.0:
        keep = torch.ceil((1.0 - settings.trim) * lengths.to(d.dtype) - 1e-9).to(torch.int64)
        keep = torch.maximum(keep, torch.ones_like(keep))
        sorted_d = torch.sort(torch.where(valid, d, torch.full_like(d, math.inf)), dim=1).values
        kept = torch.arange(d.shape[1], device=d.device)[None, :] < keep[:, None]
        total = torch.where(kept, sorted_d, torch.zeros_like(sorted_d)).sum(1)
        count = keep
    else:
        total = torch.where(valid, d, torch.zeros_like(d)).sum(1)
        count = lengths
    out = total / count.clamp(min=1).to(d.dtype) if settings.reduction == "mean" else total
    return torch.where(lengths > 0, out, torch.full_like(out, math.inf))


def _one_side(
    a: Tensor, b: Tensor, al: Tensor, bl: Tensor, settings: ChamferSettings, backend: Backend, batch: int,
    margin: float | Tensor = 0.0,
    a_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    knn = knn_points(a, b, al, bl, K=1, backend=backend)
    d2 = knn.dists[..., 0]  # [B, N]
    if isinstance(margin, Tensor):  # per point of b: each a point gets its nearest b point's margin
        margin = margin.to(d2.dtype).expand(batch, -1).gather(1, knn.idx[..., 0].clamp(min=0))
    if settings.squared:
        d = d2
    else:
        # sqrt with a zero (not NaN/inf) gradient where a point coincides with its neighbour.
        pos = d2 > 0
        d = torch.where(pos, torch.sqrt(torch.where(pos, d2, torch.ones_like(d2))), torch.zeros_like(d2))
    al_b = al.expand(batch)
    bl_b = bl.expand(batch)
    valid = _valid_mask(al_b, a.shape[1]) & (bl_b > 0)[:, None]
    counted = al_b
    if a_mask is not None:  # only these points of a count; the mean is over them
        valid = valid & a_mask.expand(batch, -1)
        counted = valid.sum(1)
    has_margin = isinstance(margin, Tensor) or margin > 0
    reduced = _reduce((d - margin).clamp(min=0) if has_margin else d, valid, counted, settings)
    if a_mask is not None:  # a cloud with points but none of them counted adds nothing
        reduced = torch.where((al_b > 0) & (counted == 0), torch.zeros_like(reduced), reduced)
    reduced = torch.where(bl_b > 0, reduced, torch.full_like(reduced, math.inf))
    return reduced, torch.where(valid, d, torch.zeros_like(d))


def chamfer_distance(
    x: Tensor,
    y: Tensor,
    x_lengths: Tensor | None = None,
    y_lengths: Tensor | None = None,
    settings: ChamferSettings = ChamferSettings(),
    *,
    backend: Backend = "auto",
) -> ChamferResult:
    """Chamfer distance per batch element between ``x [Bx, N, 3]`` and ``y [By, M, 3]``.

    Neighbour indices come from :func:`splat.ops.knn.knn_points` (KD-tree on CPU; ``backend="brute"``
    is the torch twin); distances are gathered in torch, so gradients reach both clouds.
    See the module docstring for the convention.
    """
    if x.ndim != 3 or y.ndim != 3:
        raise ValueError(f"expected x [B, N, D] and y [B, M, D], got {tuple(x.shape)} and {tuple(y.shape)}")
    batch = max(x.shape[0], y.shape[0])
    xl = _lengths(x, x_lengths, "x_lengths")
    yl = _lengths(y, y_lengths, "y_lengths")
    loss = x.new_zeros(batch) + y.new_zeros(batch)
    x_to_y = y_to_x = x_dists = y_dists = None
    if settings.direction in ("both", "x_to_y"):
        x_to_y, x_dists = _one_side(x, y, xl, yl, settings, backend, batch, settings.x_margin)
        loss = loss + x_to_y
    if settings.direction in ("both", "y_to_x"):
        y_to_x, y_dists = _one_side(y, x, yl, xl, settings, backend, batch)
        loss = loss + y_to_x
    return ChamferResult(loss=loss, x_to_y=x_to_y, y_to_x=y_to_x, x_dists=x_dists, y_dists=y_dists)


def mesh_cloud_chamfer(
    samples: Tensor,
    sample_faces: Tensor,
    sample_lengths: Tensor,
    verts: Tensor,
    faces: Tensor,
    cloud: Tensor,
    cloud_lengths: Tensor | None = None,
    settings: ChamferSettings = ChamferSettings(),
    *,
    candidates: int | None = 4,
    face_active: Tensor | None = None,
    sample_mask: Tensor | None = None,
    cloud_margin: Tensor | None = None,
    backend: Backend = "auto",
) -> ChamferResult:
    """Chamfer between meshes (given by surface samples) and point clouds, with exact distances to faces.

    ``samples [B, S, 3]`` lie on the meshes ``verts [B, V, 3]`` / ``faces [F, 3]``, ``sample_faces [B, S]``
    is each sample's face (as :func:`splat.ops.sample_surface` returns). The mesh -> cloud term is
    point-to-point from the samples. The cloud -> mesh term finds each cloud point's ``candidates`` nearest
    samples and takes the exact distance to the nearest of their triangles, so it hardly grows with the
    sampling spacing (point-to-point Chamfer does, and so favours meshes of smaller area). It is exact
    whenever the closest face holds one of the candidate samples. ``candidates=None`` makes it exact
    always: each cloud point's nearest *active* triangle (``face_active [B, F]``, None: all) is found
    among all of them (:func:`splat.ops.mesh_distance.point_mesh_sq_distance`), so thin faces that got
    no samples still count. ``sample_mask [B, S]`` (bool, optional) limits the mesh -> cloud term to
    those samples (e.g. the ones the scan's cameras should have seen); an element with no such sample
    gets 0 for that term. ``cloud_margin [1 or B, M]`` (optional, in the unit chosen by ``squared``)
    replaces ``settings.x_margin`` by one margin per cloud point: a sample's distance is measured beyond
    the margin of its nearest cloud point (the local point spacing of a scan whose density varies).
    Conventions, settings and result as :func:`chamfer_distance` with x = samples and y = cloud.
    """
    batch = max(samples.shape[0], cloud.shape[0])
    sl = _lengths(samples, sample_lengths, "sample_lengths")
    cl = _lengths(cloud, cloud_lengths, "cloud_lengths")
    loss = samples.new_zeros(batch)
    x_to_y = y_to_x = x_dists = y_dists = None
    if settings.direction in ("both", "x_to_y"):
        margin = settings.x_margin if cloud_margin is None else cloud_margin
        x_to_y, x_dists = _one_side(samples, cloud, sl, cl, settings, backend, batch, margin, a_mask=sample_mask)
        loss = loss + x_to_y
    if settings.direction in ("both", "y_to_x"):
        if candidates is None:

            d2, nearest = point_mesh_sq_distance(cloud, verts, faces, face_active, cl,
                                                 backend="auto" if backend in ("auto", "kdtree") else "brute")
            d2 = torch.where(nearest >= 0, d2, torch.full_like(d2, math.inf))
        else:

            k = min(candidates, samples.shape[1])
            idx = knn_indices(cloud, samples, cl, sl, K=k, backend=backend)  # [B, M, k]
            b = torch.arange(batch, device=idx.device)[:, None, None]
            face = sample_faces.expand(batch, -1)[b, idx.clamp(min=0)]  # [B, M, k]
            tri = faces.to(idx.device)[face]  # [B, M, k, 3]
            corners = verts.expand(batch, -1, -1)[b[..., None], tri]  # [B, M, k, 3, 3]
            d2 = triangle_sq_distance(cloud.expand(batch, -1, -1)[:, :, None, :], corners)  # [B, M, k]
            d2 = torch.where(idx >= 0, d2, torch.full_like(d2, math.inf)).min(-1).values
        d2 = torch.where(torch.isfinite(d2), d2, torch.zeros_like(d2))
        if settings.squared:
            d = d2
        else:
            pos = d2 > 0
            d = torch.where(pos, torch.sqrt(torch.where(pos, d2, torch.ones_like(d2))), torch.zeros_like(d2))
        cl_b, sl_b = cl.expand(batch), sl.expand(batch)
        valid = _valid_mask(cl_b, cloud.shape[1]) & (sl_b > 0)[:, None]
        y_to_x = _reduce(d, valid, cl_b, settings)
        y_to_x = torch.where(sl_b > 0, y_to_x, torch.full_like(y_to_x, math.inf))
        y_dists = torch.where(valid, d, torch.zeros_like(d))
        loss = loss + y_to_x
    return ChamferResult(loss=loss, x_to_y=x_to_y, y_to_x=y_to_x, x_dists=x_dists, y_dists=y_dists)
