"""Area-weighted random points on triangle meshes, batched, differentiable in the vertex positions.

Convention:
    A batch of meshes shares one face list: ``verts [B, V, 3]``, ``faces [F, 3]`` (int64 vertex indices),
    and ``face_active [B, F]`` says which faces a batch element has (heterogeneous batches: a part that
    an individual does not have is inactive for it). Points are drawn with replacement, face chosen with
    probability proportional to its area among the element's active faces, then uniformly inside the
    face (barycentric ``sqrt`` trick). The face choice and barycentric coordinates are drawn without
    gradient from the given ``torch.Generator`` (on the generator's device); the points are
    ``w0 v0 + w1 v1 + w2 v2`` in torch, so gradients flow to the vertices. An element with no active area
    gets length 0 (its padded points are zeros).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class SurfaceSamples(NamedTuple):
    """Points on the surface of each mesh of a batch."""

    points: Tensor  # [B, S, 3] sampled points (zeros where the element has no area), differentiable in verts
    normals: Tensor  # [B, S, 3] unit face normals at the points (right-hand rule on the face's vertex order)
    face_idx: Tensor  # [B, S] int64 face of each point (0 where the element has no area)
    bary: Tensor  # [B, S, 3] barycentric weights of the face's three vertices
    lengths: Tensor  # [B] int64: S where the element has positive active area, else 0


def face_areas(verts: Tensor, faces: Tensor) -> Tensor:
    """Triangle areas ``[B, F]`` of ``verts [B, V, 3]`` with ``faces [F, 3]``."""
    tri = verts[:, faces]  # [B, F, 3, 3]
    return 0.5 * torch.linalg.vector_norm(torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1), dim=-1)


def _mesh_batch(verts: Tensor, faces: Tensor, face_active: Tensor | None) -> tuple[Tensor, Tensor]:
    """Check a batch of meshes sharing one face list; faces as int64 on the verts' device, and
    ``face_active [B, F]`` (all True when None)."""
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts must be [B, V, 3], got {tuple(verts.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be [F, 3], got {tuple(faces.shape)}")
    batch, device = verts.shape[0], verts.device
    faces = faces.to(device=device, dtype=torch.int64)
    if face_active is None:
        return faces, torch.ones((batch, faces.shape[0]), dtype=torch.bool, device=device)
    if face_active.shape != (batch, faces.shape[0]):
        raise ValueError(f"face_active must be [{batch}, {faces.shape[0]}], got {tuple(face_active.shape)}")
    return faces, face_active


def sample_surface(
    verts: Tensor,
    faces: Tensor,
    num_samples: int,
    generator: torch.Generator,
    face_active: Tensor | None = None,
) -> SurfaceSamples:
    """Draw ``num_samples`` area-weighted points on each mesh of the batch.

    Args:
        verts: vertex positions ``[B, V, 3]``.
        faces: triangles ``[F, 3]`` (int64), shared by the batch.
        num_samples: points per batch element, S.
        generator: seeded source of randomness (its device is where the draws happen).
        face_active: ``[B, F]`` bool, faces present in each element; None means all.

    Returns:
        :class:`SurfaceSamples`.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    faces, face_active = _mesh_batch(verts, faces, face_active)
    batch, device, n_faces = verts.shape[0], verts.device, faces.shape[0]
    gen_device = generator.device

    with torch.no_grad():
        if n_faces:
            areas = torch.where(face_active.to(device), face_areas(verts.detach(), faces), 0.0)  # [B, F]
            areas = torch.nan_to_num(areas, nan=0.0, posinf=0.0)
        else:
            areas = verts.new_zeros((batch, 0))
        has_area = areas.sum(1) > 0 if n_faces else torch.zeros(batch, dtype=torch.bool, device=device)
        weights = areas.to(gen_device, torch.float64)
        # Elements with no area draw from a dummy uniform row so one multinomial call serves the batch.
        if n_faces:
            weights = torch.where(has_area.to(gen_device)[:, None], weights, torch.ones_like(weights))
            face_idx = torch.multinomial(weights, num_samples, replacement=True, generator=generator)
        else:
            face_idx = torch.zeros((batch, num_samples), dtype=torch.int64, device=gen_device)
        r = torch.rand((batch, num_samples, 2), generator=generator, device=gen_device, dtype=torch.float64)
        s = r[..., 0].sqrt()
        bary = torch.stack([1.0 - s, s * (1.0 - r[..., 1]), s * r[..., 1]], dim=-1)
        face_idx = face_idx.to(device)
        bary = bary.to(device=device, dtype=verts.dtype)

    if n_faces == 0:
        zeros = verts.new_zeros((batch, num_samples, 3))
        return SurfaceSamples(zeros, zeros, face_idx, bary, torch.zeros(batch, dtype=torch.int64, device=device))
    tri_idx = faces[face_idx]  # [B, S, 3]
    b = torch.arange(batch, device=device)[:, None, None]
    corners = verts[b, tri_idx]  # [B, S, 3(corner), 3(xyz)]
    points = (bary[..., None] * corners).sum(-2)
    normal = torch.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0], dim=-1)
    normal = normal / torch.linalg.vector_norm(normal, dim=-1, keepdim=True).clamp(min=1e-12)
    keep = has_area[:, None, None]
    points = torch.where(keep, points, torch.zeros_like(points))
    normal = torch.where(keep, normal, torch.zeros_like(normal))
    face_idx = torch.where(has_area[:, None], face_idx, torch.zeros_like(face_idx))
    lengths = torch.where(has_area, num_samples, 0).to(torch.int64)
    return SurfaceSamples(points=points, normals=normal, face_idx=face_idx, bary=bary, lengths=lengths)


# R2 low-discrepancy sequence (Roberts): steps 1/g and 1/g^2 with g the plastic number.
_R2_G = 1.32471795724474602596


def _pattern(k: Tensor, dtype: torch.dtype) -> Tensor:
    """Barycentric weights ``[..., 3]`` of the ``k``-th point of the fixed in-triangle pattern."""
    kd = k.to(torch.float64)
    u = torch.frac(0.5 + kd / _R2_G)
    v = torch.frac(0.5 + kd / (_R2_G * _R2_G))
    s = u.sqrt()
    return torch.stack([1.0 - s, s * (1.0 - v), s * v], dim=-1).to(dtype)


def sample_surface_stratified(
    verts: Tensor,
    faces: Tensor,
    density: float,
    face_active: Tensor | None = None,
    *,
    max_points: int = 1 << 20,
) -> SurfaceSamples:
    """Deterministic area-proportional points: ``round(area * density)`` per active face.

    Each face gets the first n points of one fixed low-discrepancy pattern (R2 sequence mapped into the
    triangle), so the points depend only on the face's corners: two meshes that share a face share its
    points exactly. Scores of different structures (which share most of their faces) then differ only
    where their geometry differs, with none of the noise of independent random draws. Faces smaller than
    half a point's area get none. The counts (hence ``lengths [B]``, which vary per element; padding is
    zeros) are chosen without gradient; the points are differentiable in ``verts``.

    Args:
        verts: ``[B, V, 3]``. faces: ``[F, 3]`` int64, shared. density: points per unit area (> 0).
        face_active: ``[B, F]`` bool, or None for all faces.
        max_points: cap on the points of one element; the density is lowered uniformly to respect it.
    """
    if not density > 0:
        raise ValueError(f"density must be positive, got {density}")
    faces, face_active = _mesh_batch(verts, faces, face_active)
    batch, device, n_faces = verts.shape[0], verts.device, faces.shape[0]
    with torch.no_grad():
        areas = torch.where(face_active.to(device), face_areas(verts.detach(), faces), 0.0) if n_faces else \
            verts.new_zeros((batch, 0))
        areas = torch.nan_to_num(areas.double(), nan=0.0, posinf=0.0)
        total = float(areas.sum(1).max()) if batch and n_faces else 0.0
        if total * density > max_points:
            density = max_points / total
        counts = torch.round(areas * density).to(torch.int64)  # [B, F]
        lengths = counts.sum(1)
        width = max(int(lengths.max()) if batch else 0, 1)
        flat = counts.reshape(-1)
        owner = torch.repeat_interleave(torch.arange(flat.numel(), device=device), flat)  # (b, f) of each point
        start = torch.cumsum(flat, 0) - flat
        k = torch.arange(owner.numel(), device=device) - start[owner]  # index within its face
        b_of = owner // max(n_faces, 1)
        f_of = owner % max(n_faces, 1)
        b_start = torch.cumsum(lengths, 0) - lengths
        slot = torch.arange(owner.numel(), device=device) - b_start[b_of]
        bary = _pattern(k, verts.dtype)
    corners = verts[b_of[:, None], faces[f_of]]  # [P, 3, 3]
    pts = (bary[:, :, None] * corners).sum(1)
    normal = torch.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
    normal = normal / torch.linalg.vector_norm(normal, dim=-1, keepdim=True).clamp(min=1e-12)
    points = verts.new_zeros((batch, width, 3)).index_put((b_of, slot), pts)
    normals = verts.new_zeros((batch, width, 3)).index_put((b_of, slot), normal.detach())
    face_idx = torch.zeros((batch, width), dtype=torch.int64, device=device)
    face_idx[b_of, slot] = f_of
    bary_out = verts.new_zeros((batch, width, 3))
    bary_out[b_of, slot] = bary
    return SurfaceSamples(points=points, normals=normals, face_idx=face_idx, bary=bary_out, lengths=lengths)
