"""K nearest neighbours between ragged batches of point clouds, differentiable in both clouds.

The neighbour *indices* are found without gradient (a KD-tree on CPU, PyTorch3D's ``knn_points`` on CUDA
when it is importable, or the brute-force chunked torch twin); the *distances* are then computed in torch
from the gathered points, so gradients flow to the query points and to the reference points alike.

Convention:
    Clouds are padded batches with lengths, as in PyTorch3D: ``x`` is ``[Bx, N, D]`` with ``x_lengths``
    ``[Bx]`` (points ``n >= x_lengths[b]`` are padding and ignored), ``y`` is ``[By, M, D]``. Either batch
    size may be 1 and is then broadcast against the other (one scan against a whole GA generation costs
    one KD-tree build). Distances are *squared* Euclidean. Where a query has no k-th neighbour (padding,
    or fewer than K reference points) the index is -1 and the distance 0. Any float dtype, any device;
    indices are int64 on the points' device. Packed clouds (``[sum N, D]`` + lengths) convert with
    :func:`packed_to_padded`.
"""

from __future__ import annotations

import importlib.util
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

Backend = Literal["auto", "kdtree", "brute", "pytorch3d"]

_HAS_PYTORCH3D = importlib.util.find_spec("pytorch3d") is not None


class KnnResult(NamedTuple):
    """Nearest neighbours of each query point, nearest first."""

    dists: Tensor  # [B, N, K] squared distances, differentiable in x and y; 0 where idx == -1
    idx: Tensor  # [B, N, K] int64 index into y[b] (y[0] when y is broadcast); -1 where there is none


def packed_to_padded(points: Tensor, lengths: Tensor) -> Tensor:
    """Packed cloud ``[sum(lengths), D]`` -> padded ``[B, max(lengths), D]`` (zeros at padding)."""
    lengths = lengths.to(device=points.device, dtype=torch.int64)
    batch = lengths.shape[0]
    width = int(lengths.max()) if batch else 0
    out = points.new_zeros((batch, width, points.shape[-1]))
    mask = torch.arange(width, device=points.device)[None, :] < lengths[:, None]
    out[mask] = points
    return out


def padded_to_packed(points: Tensor, lengths: Tensor) -> Tensor:
    """Padded cloud ``[B, N, D]`` + lengths ``[B]`` -> packed ``[sum(lengths), D]``."""
    mask = torch.arange(points.shape[1], device=points.device)[None, :] < lengths.to(points.device)[:, None]
    return points[mask]


def _lengths(points: Tensor, lengths: Tensor | None, name: str) -> Tensor:
    if lengths is None:
        return torch.full((points.shape[0],), points.shape[1], dtype=torch.int64, device=points.device)
    lengths = torch.as_tensor(lengths, device=points.device).to(torch.int64)
    if lengths.shape != (points.shape[0],):
        raise ValueError(f"{name} must have shape [{points.shape[0]}], got {tuple(lengths.shape)}")
    if bool((lengths < 0).any()) or bool((lengths > points.shape[1]).any()):
        raise ValueError(f"{name} must lie in [0, {points.shape[1]}]")
    return lengths


def _check(x: Tensor, y: Tensor) -> int:
    if x.ndim != 3 or y.ndim != 3 or x.shape[-1] != y.shape[-1]:
        raise ValueError(f"expected x [B, N, D] and y [B, M, D], got {tuple(x.shape)} and {tuple(y.shape)}")
    bx, by = x.shape[0], y.shape[0]
    if bx != by and 1 not in (bx, by):
        raise ValueError(f"batch sizes {bx} and {by} do not broadcast")
    return max(bx, by)


def _valid_mask(lengths: Tensor, width: int) -> Tensor:
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]  # [B, width]


def _workers(n_queries: int) -> int:
    """All cores (workers=-1) for large queries; one thread below ~16k queries, where starting
    threads costs more than it saves."""
    return -1 if n_queries >= 16384 else 1


def _kdtree_idx(x: Tensor, y: Tensor, xl: Tensor, yl: Tensor, k: int, batch: int) -> Tensor:
    """Neighbour indices [B, N, K] from scipy's cKDTree (no gradient; -1 where none)."""
    from scipy.spatial import cKDTree

    n, dim = x.shape[1], x.shape[2]
    xn = x.detach().to("cpu", torch.float64).numpy()
    yn = y.detach().to("cpu", torch.float64).numpy()
    xl_np = xl.cpu().numpy()
    yl_np = yl.cpu().numpy()
    out = np.full((batch, n, k), -1, dtype=np.int64)
    xmask = np.arange(n)[None, :] < xl_np[:, None]  # [Bx, N]
    ymask = np.arange(y.shape[1])[None, :] < yl_np[:, None]  # [By, M]

    if y.shape[0] == 1:
        # One reference cloud for every query batch: one tree, one threaded query.
        ref = yn[0, : yl_np[0]]
        if ref.shape[0] == 0:
            return torch.from_numpy(out).to(x.device)
        tree = cKDTree(ref, balanced_tree=False, compact_nodes=False)
        qmask = np.broadcast_to(xmask, (batch, n))
        queries = np.broadcast_to(xn, (batch, n, dim))[qmask]
        if queries.shape[0]:
            _, ii = tree.query(queries, k=k, workers=_workers(queries.shape[0]))
            ii = ii.reshape(queries.shape[0], k)
            ii = np.where(ii >= ref.shape[0], -1, ii)
            out[qmask] = ii
        return torch.from_numpy(out).to(x.device)

    # Several reference clouds: one tree over all of them, each point lifted by a batch coordinate
    # b * spacing, with spacing larger than any distance inside one batch. A query lifted to its own
    # batch then finds its own batch's points first; a hit in another batch means "no k-th neighbour".
    ref_pts = yn[ymask]  # [sum M, D]
    ref_batch = np.nonzero(ymask)[0]  # [sum M]
    if ref_pts.shape[0] == 0:
        return torch.from_numpy(out).to(x.device)
    qmask = np.broadcast_to(xmask, (batch, n))
    q_pts = np.broadcast_to(xn, (batch, n, dim))[qmask]
    q_batch = np.nonzero(qmask)[0]
    if q_pts.shape[0] == 0:
        return torch.from_numpy(out).to(x.device)
    lo = np.minimum(ref_pts.min(0), q_pts.min(0))
    hi = np.maximum(ref_pts.max(0), q_pts.max(0))
    spacing = 2.0 * float(np.linalg.norm(hi - lo)) + 1.0
    tree = cKDTree(
        np.concatenate([ref_pts, ref_batch[:, None] * spacing], axis=1), balanced_tree=False, compact_nodes=False
    )
    _, ii = tree.query(np.concatenate([q_pts, q_batch[:, None] * spacing], axis=1), k=k,
                       workers=_workers(q_pts.shape[0]))
    ii = ii.reshape(q_pts.shape[0], k)
    found = ii < ref_pts.shape[0]
    ii_safe = np.where(found, ii, 0)
    starts = np.concatenate([[0], np.cumsum(yl_np)])[:-1]
    same = found & (ref_batch[ii_safe] == q_batch[:, None])
    out[qmask] = np.where(same, ii_safe - starts[q_batch][:, None], -1)
    return torch.from_numpy(out).to(x.device)


def _brute_idx(x: Tensor, y: Tensor, xl: Tensor, yl: Tensor, k: int, batch: int, chunk: int) -> Tensor:
    """Neighbour indices [B, N, K] by exhaustive search in torch, ``chunk`` query rows at a time."""
    n = x.shape[1]
    out = torch.full((batch, n, k), -1, dtype=torch.int64, device=x.device)
    with torch.no_grad():
        for b in range(batch):
            xb = x[b if x.shape[0] > 1 else 0, : int(xl[b if x.shape[0] > 1 else 0])]
            yb = y[b if y.shape[0] > 1 else 0, : int(yl[b if y.shape[0] > 1 else 0])]
            kk = min(k, yb.shape[0])
            if kk == 0:
                continue
            for start in range(0, xb.shape[0], chunk):
                d = torch.cdist(xb[start : start + chunk], yb)
                out[b, start : start + d.shape[0], :kk] = torch.topk(d, kk, dim=1, largest=False, sorted=True).indices
    return out


def _pytorch3d_idx(x: Tensor, y: Tensor, xl: Tensor, yl: Tensor, k: int, batch: int) -> Tensor:
    from pytorch3d.ops import knn_points as p3d_knn_points  # optional dependency (CUDA)

    xe = x.detach().expand(batch, -1, -1).contiguous()
    ye = y.detach().expand(batch, -1, -1).contiguous()
    with torch.no_grad():
        idx = p3d_knn_points(
            xe, ye, lengths1=xl.expand(batch), lengths2=yl.expand(batch), K=k, return_nn=False
        ).idx
    # Normalise padding to our convention whatever PyTorch3D fills in there.
    kk = torch.arange(k, device=x.device)[None, None, :]
    invalid = (kk >= yl.expand(batch)[:, None, None]) | ~_valid_mask(xl.expand(batch), x.shape[1])[:, :, None]
    return torch.where(invalid, torch.full_like(idx, -1), idx.to(torch.int64))


def resolve_backend(x: Tensor, backend: Backend = "auto") -> Literal["kdtree", "brute", "pytorch3d"]:
    """The backend "auto" picks: PyTorch3D on CUDA when importable, the KD-tree on CPU, else brute force."""
    if backend != "auto":
        if backend == "pytorch3d" and not _HAS_PYTORCH3D:
            raise RuntimeError("backend 'pytorch3d' requested but pytorch3d is not importable")
        if backend not in ("kdtree", "brute", "pytorch3d"):
            raise ValueError(f"unknown knn backend {backend!r}")
        return backend
    if x.is_cuda:
        return "pytorch3d" if _HAS_PYTORCH3D else "brute"
    return "kdtree"


def knn_indices(
    x: Tensor,
    y: Tensor,
    x_lengths: Tensor | None = None,
    y_lengths: Tensor | None = None,
    K: int = 1,
    *,
    backend: Backend = "auto",
    chunk: int = 1024,
) -> Tensor:
    """Indices ``[B, N, K]`` of the K nearest points of ``y[b]`` to each point of ``x[b]`` (no gradient).

    Nearest first; -1 where there is no k-th neighbour. See the module docstring for the convention.
    """
    batch = _check(x, y)
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    xl = _lengths(x, x_lengths, "x_lengths")
    yl = _lengths(y, y_lengths, "y_lengths")
    which = resolve_backend(x, backend)
    if which == "kdtree":
        return _kdtree_idx(x, y, xl, yl, K, batch)
    if which == "pytorch3d":
        return _pytorch3d_idx(x, y, xl, yl, K, batch)
    return _brute_idx(x, y, xl, yl, K, batch, chunk)


def knn_gather(y: Tensor, idx: Tensor) -> Tensor:
    """Points of ``y`` at ``idx``: ``y [By, M, D]``, ``idx [B, N, K]`` -> ``[B, N, K, D]`` (zeros at -1)."""
    batch = idx.shape[0]
    if y.shape[0] == 1:
        g = y[0][idx.clamp(min=0)]
    else:
        b = torch.arange(batch, device=idx.device)[:, None, None]
        g = y[b, idx.clamp(min=0)]
    return torch.where((idx >= 0)[..., None], g, torch.zeros_like(g))


def knn_points(
    x: Tensor,
    y: Tensor,
    x_lengths: Tensor | None = None,
    y_lengths: Tensor | None = None,
    K: int = 1,
    *,
    backend: Backend = "auto",
    chunk: int = 1024,
) -> KnnResult:
    """K nearest neighbours of ``x[b]`` in ``y[b]`` with squared distances differentiable in both.

    Args:
        x: query points ``[Bx, N, D]``.
        y: reference points ``[By, M, D]`` (``Bx``, ``By`` equal or one of them 1).
        x_lengths, y_lengths: valid points per cloud ``[Bx]`` / ``[By]``; None means all.
        K: neighbours per query point.
        backend: "auto" (PyTorch3D on CUDA when importable, the KD-tree on CPU, brute force otherwise),
            "kdtree", "brute" (the chunked torch twin) or "pytorch3d".
        chunk: query rows per block in the brute-force backend.

    Returns:
        :class:`KnnResult` with ``dists [B, N, K]`` and ``idx [B, N, K]``, B = max(Bx, By).
    """
    idx = knn_indices(x, y, x_lengths, y_lengths, K, backend=backend, chunk=chunk)
    nn = knn_gather(y, idx)  # [B, N, K, D]
    diff = x.expand(idx.shape[0], -1, -1)[:, :, None, :] - nn
    d2 = diff.square().sum(-1)
    return KnnResult(dists=torch.where(idx >= 0, d2, torch.zeros_like(d2)), idx=idx)
