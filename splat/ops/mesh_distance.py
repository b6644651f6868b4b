"""Exact distance from points to triangle meshes, batched, differentiable in the points and the vertices.

The index of each point's nearest *active* triangle is found without gradient (a C++ kernel on CPU that
tests every triangle of the element, vectorised over triangles; or the chunked torch twin
``backend="brute"``), and so are the barycentric weights of the closest point on it (the kernel's
``closest_weights`` or :func:`closest_point_weights`); the squared distance ``|p - q|^2`` to that point is
then computed in torch (:func:`point_triangle_sq_distance`), so gradients reach the points and the
triangle's three corners (exactly: see there). This is the same split as :mod:`splat.ops.knn` (indices without gradient, distances in
torch) and is exact: unlike nearest *samples* on the surface it does not depend on how densely a thin
face (the 12 mm edge of a board) happens to be sampled.

Convention:
    A batch of meshes shares one face list, as in :mod:`splat.ops.sampling`: ``verts [B, V, 3]``,
    ``faces [F, 3]`` int64, ``face_active [B, F]`` bool (None: all faces). Points are a padded batch
    ``points [Bp, M, 3]`` with ``lengths [Bp]``; Bp is B, or 1 and broadcast against the meshes (one scan
    against a whole generation). Where an element has no active face, or a point is padding, the index
    is -1 and the distance 0. The kernel and the twin compute in float32 or float64 as given (CPU); on
    other devices the twin is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from splat._cpp import load_extension

MeshBackend = Literal["auto", "cpu", "brute"]

def _load_kernel():
    """Build (first use) or load (cached) the C++ kernel; None with one warning if that fails."""
    return load_extension("splat_mesh_distance_cpu", Path(__file__).with_name("mesh_distance.cpp"),
                          "the C++ mesh distance kernel", "the torch twin")


def kernel_available() -> bool:
    """True when the C++ nearest-triangle kernel builds (or is cached) and loads."""
    return _load_kernel() is not None


def _check(points: Tensor, verts: Tensor, faces: Tensor, face_active: Tensor | None, lengths: Tensor | None):
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be [B, M, 3], got {tuple(points.shape)}")
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts must be [B, V, 3], got {tuple(verts.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be [F, 3], got {tuple(faces.shape)}")
    batch = max(points.shape[0], verts.shape[0])
    for name, n in (("points", points.shape[0]), ("verts", verts.shape[0])):
        if n not in (1, batch):
            raise ValueError(f"{name} batch {n} does not broadcast against {batch}")
    if face_active is None:
        face_active = torch.ones(verts.shape[0], faces.shape[0], dtype=torch.bool, device=verts.device)
    if face_active.shape != (verts.shape[0], faces.shape[0]):
        raise ValueError(f"face_active must be [{verts.shape[0]}, {faces.shape[0]}], got {tuple(face_active.shape)}")
    if lengths is None:
        lengths = torch.full((points.shape[0],), points.shape[1], dtype=torch.int64, device=points.device)
    lengths = torch.as_tensor(lengths, device=points.device).to(torch.int64)
    if lengths.shape != (points.shape[0],):
        raise ValueError(f"lengths must have shape [{points.shape[0]}], got {tuple(lengths.shape)}")
    return batch, face_active.to(torch.bool), lengths


@torch.no_grad()
def closest_point_weights(p: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Barycentric weights ``[..., 3]`` (of a, b, c) of the point of each triangle closest to ``p``.

    The closest point is found by Voronoi region (vertex, edge or face) in closed form (Ericson, *Real-Time
    Collision Detection* 5.1.5), regions tried in the order a, b, ab, c, ac, bc, face; degenerate triangles
    fall back to their edges and corners. Broadcasts like its arguments. The C++ kernel's
    ``closest_weights`` makes the same tests and divisions.
    """
    eps = torch.finfo(p.dtype).tiny * 1e6

    def dot(u, v):
        return (u * v).sum(-1)

    def safe_div(n, d):
        return n / torch.where(d.abs() > eps, d, torch.full_like(d, eps))

    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = dot(ab, ap), dot(ac, ap)
    bp = p - b
    d3, d4 = dot(ab, bp), dot(ac, bp)
    cp = p - c
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    zero, one = torch.zeros_like(va), torch.ones_like(va)

    def w(wa, wb, wc):
        return torch.stack(torch.broadcast_tensors(wa, wb, wc), -1)

    denom = va + vb + vc
    v_in, w_in = safe_div(vb, denom), safe_div(vc, denom)
    out = w(1 - v_in - w_in, v_in, w_in)  # face
    t = safe_div(d4 - d3, (d4 - d3) + (d5 - d6))
    out = torch.where(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0))[..., None], w(zero, 1 - t, t), out)  # bc
    t = safe_div(d2, d2 - d6)
    out = torch.where(((vb <= 0) & (d2 >= 0) & (d6 <= 0))[..., None], w(1 - t, zero, t), out)  # ac
    out = torch.where(((d6 >= 0) & (d5 <= d6))[..., None], w(zero, zero, one), out)  # c
    t = safe_div(d1, d1 - d3)
    out = torch.where(((vc <= 0) & (d1 >= 0) & (d3 <= 0))[..., None], w(1 - t, t, zero), out)  # ab
    out = torch.where(((d3 >= 0) & (d4 <= d3))[..., None], w(zero, one, zero), out)  # b
    return torch.where(((d1 <= 0) & (d2 <= 0))[..., None], w(one, zero, zero), out)  # a


def point_triangle_sq_distance(p: Tensor, a: Tensor, b: Tensor, c: Tensor, *, weights: Tensor | None = None) -> Tensor:
    """Squared distance ``[...]`` from points ``p [..., 3]`` to triangles ``(a, b, c) [..., 3]``.

    The closest point ``q = wa a + wb b + wc c`` has its barycentric ``weights [..., 3]`` found without
    gradient (:func:`closest_point_weights` unless given); ``|p - q|^2`` is then differentiated with them
    held. That is the exact gradient in the point and the three corners: ``q`` minimises the distance over
    the triangle, so the weights' own change contributes nothing to first order (the envelope theorem),
    and it costs a few tensor ops instead of autograd through every region's formula.
    """
    if weights is None:
        weights = closest_point_weights(p.detach(), a.detach(), b.detach(), c.detach())
    weights = weights.to(p.dtype)
    q = weights[..., 0:1] * a + weights[..., 1:2] * b + weights[..., 2:3] * c
    return (p - q).square().sum(-1)


def triangle_sq_distance(p: Tensor, corners: Tensor, *, backend: MeshBackend = "auto") -> Tensor:
    """Squared distance ``[...]`` from ``p [..., 3]`` to one triangle each, ``corners [..., 3, 3]`` (same
    leading shape after broadcasting); the weights come from the C++ kernel on the CPU when it is built
    (the torch twin otherwise, and always with ``backend="brute"``). Differentiable in both, as
    :func:`point_triangle_sq_distance`."""
    a, b, c = corners[..., 0, :], corners[..., 1, :], corners[..., 2, :]
    on_cpu = p.device.type == "cpu" and corners.device.type == "cpu"
    ext = _load_kernel() if on_cpu and backend != "brute" else None
    weights = None
    if ext is not None:
        shape = torch.broadcast_shapes(p.shape[:-1], corners.shape[:-2])
        dtype = torch.promote_types(p.dtype, corners.dtype)
        pf = p.detach().to(dtype).expand(*shape, 3).reshape(-1, 3).contiguous()
        cf = corners.detach().to(dtype).expand(*shape, 3, 3).reshape(-1, 3, 3).contiguous()
        weights = ext.closest_weights(pf, cf, max(1, torch.get_num_threads())).view(*shape, 3)
    return point_triangle_sq_distance(p, a, b, c, weights=weights)


def _nearest_brute(points, verts, faces, face_active, lengths, batch, chunk: int = 1 << 21) -> Tensor:
    m, f = points.shape[1], faces.shape[0]
    out = torch.full((batch, m), -1, dtype=torch.int64, device=points.device)
    if f == 0 or m == 0:
        return out
    step = max(1, chunk // max(f, 1))
    for b in range(batch):
        p = points[b if points.shape[0] > 1 else 0]
        v = verts[b if verts.shape[0] > 1 else 0]
        act = face_active[b if face_active.shape[0] > 1 else 0]
        if not bool(act.any()):
            continue
        n = int(lengths[b if lengths.shape[0] > 1 else 0])
        tri = v[faces]  # [F, 3, 3]
        for s in range(0, n, step):
            q = p[s:min(n, s + step), None, :]
            d2 = point_triangle_sq_distance(q, tri[None, :, 0], tri[None, :, 1], tri[None, :, 2])  # [m, F]
            d2 = torch.where(act[None, :], d2, torch.full_like(d2, float("inf")))
            out[b, s:s + q.shape[0]] = d2.argmin(1)
    return out


@torch.no_grad()
def nearest_faces(
    points: Tensor,
    verts: Tensor,
    faces: Tensor,
    face_active: Tensor | None = None,
    lengths: Tensor | None = None,
    *,
    backend: MeshBackend = "auto",
) -> Tensor:
    """Index ``[B, M]`` (int64) of the nearest active triangle of each point; -1 where there is none.

    Ties (a point exactly as far from two triangles, e.g. on a shared edge) go to the lower index in
    both backends up to rounding.
    """
    batch, face_active, lengths = _check(points, verts, faces, face_active, lengths)
    use_kernel = backend == "cpu" or (backend == "auto" and points.device.type == "cpu")
    if backend not in ("auto", "cpu", "brute"):
        raise ValueError(f"unknown backend {backend!r}")
    if use_kernel and points.device.type == "cpu":
        ext = _load_kernel()
        if ext is not None:
            dtype = torch.promote_types(points.dtype, verts.dtype)
            return ext.nearest_faces(points.detach().to(dtype).contiguous(), verts.detach().to(dtype).contiguous(),
                                     faces.to(torch.int64).contiguous(), face_active.contiguous(),
                                     lengths.contiguous(), batch, max(1, torch.get_num_threads()))
        if backend == "cpu":
            raise RuntimeError("the C++ mesh distance kernel is not available (see the warning above)")
    return _nearest_brute(points.detach(), verts.detach(), faces, face_active, lengths, batch)


def point_mesh_sq_distance(
    points: Tensor,
    verts: Tensor,
    faces: Tensor,
    face_active: Tensor | None = None,
    lengths: Tensor | None = None,
    *,
    backend: MeshBackend = "auto",
) -> tuple[Tensor, Tensor]:
    """Squared distance ``[B, M]`` of each point to its element's mesh, and the nearest face ``[B, M]``.

    Differentiable in ``points`` and ``verts``. Where the face index is -1 (padding, or no active face)
    the distance is 0.
    """
    idx = nearest_faces(points, verts, faces, face_active, lengths, backend=backend)
    batch = idx.shape[0]
    tri = faces.to(idx.device)[idx.clamp(min=0)]  # [B, M, 3]
    b = torch.arange(batch, device=idx.device)[:, None, None]
    corners = verts.expand(batch, -1, -1)[b, tri]  # [B, M, 3, 3]
    d2 = triangle_sq_distance(points.expand(batch, -1, -1), corners, backend=backend)
    return torch.where(idx >= 0, d2, torch.zeros_like(d2)), idx
