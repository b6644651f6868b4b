"""Unrealized, batched geometry: a packed set of parts, each a canonical primitive with a transform.

Convention: every tensor has a leading population dimension ``B``. A part's world vertices are
``transform @ [local; 1]`` with ``local = shape_map @ canonical`` for affine kinds (every kind but the
cone, whose exact local vertices come from :meth:`Part.local_verts`). Transforms are ``[B, 4, 4]``
column-vector matrices (world = M @ p), Blender's world (right-handed, +Z up, metres). Parts inactive for
a batch element are kept with ``active[b] = False`` (heterogeneous batching).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, NamedTuple

import torch
from torch import Tensor


from splat.geonodes.primitives import (CanonicalMesh, PrimitiveKey, canonical_mesh, canonical_verts,
                                       local_vertices, shape_map)


@dataclass(frozen=True, eq=False)
class Part:
    """One primitive of a Geometry.

    Attributes:
        key: which canonical primitive this is (tree, node, kind, topology); equal keys = copies.
        shape: the primitive's shape parameters, e.g. cube ``size`` [B, 3]; cylinder ``radius`` and
            ``depth`` [B]; cone ``radius_top``, ``radius_bottom``, ``depth`` [B]; uv sphere ``radius``
            [B]; grid ``size_x``, ``size_y`` [B]; point: none.
        transform: accumulated local -> world transform, [B, 4, 4].
        active: whether each batch element has this part, [B] bool.
    """

    key: PrimitiveKey
    shape: Mapping[str, Tensor]
    transform: Tensor  # [B, 4, 4]
    active: Tensor  # [B] bool

    @property
    def kind(self) -> str:
        return self.key.kind

    @property
    def affine(self) -> bool:
        """True when ``local = shape_map @ canonical.verts`` is exact (every kind but the cone)."""
        return self.key.kind != "cone"

    @property
    def canonical(self) -> CanonicalMesh:
        return canonical_mesh(self.key)

    @property
    def shape_map(self) -> Tensor:  # [B, 3, 3]
        """The shape map S (see :func:`splat.geonodes.primitives.shape_map`)."""
        return shape_map(self.key, self.shape, self.transform)

    def local_verts(self) -> Tensor:  # [B, V, 3]
        """Exact vertices in the part's local frame (before ``transform``)."""
        return local_vertices(self.key, self.shape, self.transform)

    def world_verts(self) -> Tensor:  # [B, V, 3]
        return _apply(self.transform, self.local_verts())

    def with_transform(self, m: Tensor) -> "Part":
        """This part moved by ``m`` [B, 4, 4] (applied after the current transform)."""
        return replace(self, transform=m @ self.transform)

    def with_active(self, mask: Tensor) -> "Part":
        return replace(self, active=self.active & mask)


class RealizedMesh(NamedTuple):
    """All parts of a Geometry as one triangle mesh per batch element (shared connectivity).

    Inactive vertices keep finite but meaningless positions: mask them with ``vert_active``.
    """

    verts: Tensor  # [B, V, 3] float, differentiable
    faces: Tensor  # [F, 3] long, triangles (indices into V), shared by all batch elements
    face_part: Tensor  # [F] long, index into Geometry.parts
    vert_part: Tensor  # [V] long, index into Geometry.parts
    vert_active: Tensor  # [B, V] bool
    face_active: Tensor  # [B, F] bool
    n_polys: Tensor  # [B] long, Blender polygon count of the active geometry


@dataclass(frozen=True, eq=False)
class Geometry:
    """A batch of B geometries as a packed tuple of parts (unrealized instances).

    Join concatenates parts; Transform and Instance on Points left-multiply part transforms;
    Realize Instances leaves parts as they are, so each part keeps its canonical primitive.
    """

    batch_size: int
    parts: tuple[Part, ...] = field(default_factory=tuple)

    @staticmethod
    def empty(batch_size: int) -> "Geometry":
        return Geometry(batch_size, ())

    def join(self, *others: "Geometry") -> "Geometry":
        parts = list(self.parts)
        for o in others:
            parts.extend(o.parts)
        return Geometry(self.batch_size, tuple(parts))

    def transformed(self, m: Tensor) -> "Geometry":
        """Every part moved by ``m`` [B, 4, 4]."""
        return Geometry(self.batch_size, tuple(p.with_transform(m) for p in self.parts))

    def detached(self) -> "Geometry":
        """The same parts with their shapes and transforms cut from the autograd graph (a consumer that
        should follow the geometry without moving it)."""
        parts = tuple(replace(p, shape={k: v.detach() for k, v in p.shape.items()}, transform=p.transform.detach())
                      for p in self.parts)
        return Geometry(self.batch_size, parts)

    def masked(self, mask: Tensor) -> "Geometry":
        """Parts kept only where ``mask`` [B] bool; parts left inactive everywhere are dropped."""
        parts = tuple(p.with_active(mask) for p in self.parts)
        return Geometry(self.batch_size, tuple(p for p in parts if bool(p.active.any())))

    def realize(self) -> RealizedMesh:
        """One triangle mesh per batch element; see :class:`RealizedMesh`."""
        B = self.batch_size
        verts, faces, face_part, vert_part, vact, fact, npoly = [], [], [], [], [], [], []
        offset = 0
        world = _world_verts_grouped(self.parts)
        for i, p in enumerate(self.parts):
            can = p.canonical
            v = world[i]
            nv = v.shape[1]
            verts.append(v)
            faces.append(can.faces + offset)
            face_part.append(torch.full((can.faces.shape[0],), i, dtype=torch.long))
            vert_part.append(torch.full((nv,), i, dtype=torch.long))
            vact.append(p.active[:, None].expand(B, nv))
            fact.append(p.active[:, None].expand(B, can.faces.shape[0]))
            npoly.append(p.active.long() * can.n_polys)
            offset += nv
        if not verts:
            dev = torch.device("cpu")
            return RealizedMesh(
                torch.zeros(B, 0, 3), torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                torch.zeros(0, dtype=torch.long), torch.zeros(B, 0, dtype=torch.bool),
                torch.zeros(B, 0, dtype=torch.bool), torch.zeros(B, dtype=torch.long, device=dev))
        dev = verts[0].device
        return RealizedMesh(
            verts=torch.cat(verts, 1),
            faces=torch.cat(faces, 0).to(dev),
            face_part=torch.cat(face_part).to(dev),
            vert_part=torch.cat(vert_part).to(dev),
            vert_active=torch.cat(vact, 1),
            face_active=torch.cat(fact, 1),
            n_polys=torch.stack(npoly, 0).sum(0),
        )


def _apply(m: Tensor, local: Tensor) -> Tensor:  # [B,4,4], [B,V,3] -> [B,V,3]
    """Affine transform of points; elementwise (tiny batched matmuls are slow on CPU)."""
    r = m[:, None, :3, :3]  # [B, 1, 3, 3]
    out = m[:, None, :3, 3] + local[..., 0, None] * r[..., 0]
    out = out + local[..., 1, None] * r[..., 1]
    return out + local[..., 2, None] * r[..., 2]


def _world_verts_grouped(parts: tuple[Part, ...]) -> list[Tensor]:
    """World vertices of every part; affine parts sharing a canonical mesh are done in one op."""
    out: list[Tensor | None] = [None] * len(parts)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(parts):
        if p.affine and p.kind != "point":
            groups.setdefault((p.kind, p.key.topology), []).append(i)
        else:
            out[i] = p.world_verts()
    for idx in groups.values():
        first = parts[idx[0]]
        c = canonical_verts(first.key, first.transform.dtype, first.transform.device)  # [V, 3]
        # A = R S for each part: [P, B, 3, 3]
        m = torch.stack([parts[i].transform for i in idx])  # [P, B, 4, 4]
        s = torch.stack([parts[i].shape_map for i in idx])  # [P, B, 3, 3]
        a = m[..., :3, :3] @ s if first.kind not in _DIAGONAL else m[..., :3, :3] * torch.diagonal(s, dim1=-2, dim2=-1)[..., None, :]
        # w = sum_j c_j * a[:, :, :, j] + t, as three broadcast multiply-adds: [P, B, V, 3]
        w = m[:, :, None, :3, 3] + c[:, 0, None] * a[:, :, None, :, 0]
        w = w + c[:, 1, None] * a[:, :, None, :, 1]
        w = w + c[:, 2, None] * a[:, :, None, :, 2]
        for j, i in enumerate(idx):
            out[i] = w[j]
    return out  # type: ignore[return-value]


_DIAGONAL = ("cube", "cylinder", "uv_sphere", "grid")


def identity_transforms(batch_size: int, dtype: torch.dtype, device) -> Tensor:  # [B, 4, 4]
    return torch.eye(4, dtype=dtype, device=device).expand(batch_size, 4, 4).clone()
