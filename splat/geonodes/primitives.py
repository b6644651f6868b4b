"""Canonical meshes of the mesh primitives, and the shape maps that size them.

Convention: a canonical mesh is the primitive at unit size in its local frame, in float64, with
Blender's vertex layout (checked against bpy in tests/test_geonodes_primitives.py):

- cube: the unit cube [-0.5, 0.5]^3 sampled on a (vx, vy, vz) lattice, surface vertices only, z-major
  then y then x; a count of 1 flattens that axis to 0 (Blender then makes a grid, line or point).
  ``local = diag(size) @ canonical``.
- cylinder: radius 1, z in [-0.5, 0.5], rings from top to bottom (top fill rings, side rings, bottom
  fill rings; TRIANGLE_FAN adds a centre vertex first and last). ``local = diag(r, r, depth) @ c``.
- cone: Blender's cone stands on z = 0 and reaches z = depth. Canonical vertices are
  ``(f cos t, f sin t, h)`` with h in [0, 1]; exact local vertices are
  ``(c_xy * (r_bottom + (r_top - r_bottom) h), depth * h)``, which is not a linear map of ``c`` when the
  radii differ, so cones are ``affine=False`` and their ``shape_map`` is the approximation
  ``diag(r_mean, r_mean, depth)`` with ``r_mean = (r_top + r_bottom) / 2``. A radius of exactly 0
  collapses that end to one vertex (a separate topology, as in Blender).
- uv_sphere: radius 1, north pole, (rings - 1) rings, south pole. ``local = r @ c``.
- grid: [-0.5, 0.5]^2 at z = 0, x-major. ``local = diag(size_x, size_y, 1) @ c``.
- point: one vertex at the origin, no faces (a Mesh Line vertex); identity shape map.

Faces are triangulated polygons (fans); ``face_poly`` maps each triangle to its Blender polygon.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Mapping, NamedTuple

import torch
from torch import Tensor

KINDS = ("cube", "cylinder", "cone", "uv_sphere", "grid", "point")


@dataclass(frozen=True)
class PrimitiveKey:
    """Identity of a canonical primitive: parts with equal keys are copies of one another.

    Attributes:
        tree: the node tree holding the primitive node.
        node: the tree-local node name.
        kind: one of ``KINDS``.
        topology: the discrete layout: cube (vx, vy, vz); cylinder (vertices, side_segments,
            fill_segments, fill_type); cone (vertices, side_segments, fill_segments, fill_type,
            top_is_point, bottom_is_point); uv_sphere (segments, rings); grid (vx, vy); point ().
    """

    tree: str
    node: str
    kind: str
    topology: tuple = ()


class CanonicalMesh(NamedTuple):
    verts: Tensor  # [V, 3] float64
    faces: Tensor  # [F, 3] long, triangles
    face_poly: Tensor  # [F] long, Blender polygon index of each triangle
    n_polys: int  # number of Blender polygons


def _mesh(verts: list, polys: list) -> CanonicalMesh:
    tris, owner = [], []
    for i, poly in enumerate(polys):
        for k in range(1, len(poly) - 1):
            tris.append((poly[0], poly[k], poly[k + 1]))
            owner.append(i)
    v = torch.tensor(verts, dtype=torch.float64).reshape(-1, 3)
    f = torch.tensor(tris, dtype=torch.long).reshape(-1, 3)
    return CanonicalMesh(v, f, torch.tensor(owner, dtype=torch.long), len(polys))


def _axis(n: int) -> list[float]:
    return [0.0] if n == 1 else [i / (n - 1) - 0.5 for i in range(n)]


def _cube(vx: int, vy: int, vz: int) -> CanonicalMesh:
    n = (vx, vy, vz)
    index: dict[tuple[int, int, int], int] = {}
    verts = []
    for k in range(vz):
        for j in range(vy):
            for i in range(vx):
                ijk = (i, j, k)
                if all(n[a] > 1 for a in range(3)) and not any(ijk[a] in (0, n[a] - 1) for a in range(3)):
                    continue  # interior lattice point
                index[ijk] = len(verts)
                verts.append((_axis(vx)[i], _axis(vy)[j], _axis(vz)[k]))
    polys = []
    for a in range(3):
        b, c = [x for x in range(3) if x != a]
        if n[b] < 2 or n[c] < 2:
            continue
        sides = (0,) if n[a] == 1 else (0, n[a] - 1)
        for s in sides:
            for u in range(n[b] - 1):
                for w in range(n[c] - 1):
                    quad = []
                    for du, dw in ((0, 0), (1, 0), (1, 1), (0, 1)):
                        ijk = [0, 0, 0]
                        ijk[a], ijk[b], ijk[c] = s, u + du, w + dw
                        quad.append(index[tuple(ijk)])
                    if (s == 0) == (a != 1):  # outward winding
                        quad.reverse()
                    polys.append(quad)
    return _mesh(verts, polys)


def _rings(vertices: int, side: int, fill: int, fill_type: str, top_point: bool, bottom_point: bool,
           z0: float) -> CanonicalMesh:
    """Cylinder/cone layout: rings of (f cos t, f sin t, h + z0), h from 1 (top) to 0 (bottom)."""
    ang = [2.0 * math.pi * j / vertices for j in range(vertices)]
    verts: list = []
    polys: list = []

    def ring(f: float, h: float) -> list[int]:
        start = len(verts)
        verts.extend((f * math.cos(t), f * math.sin(t), h + z0) for t in ang)
        return list(range(start, start + vertices))

    def point(h: float) -> int:
        verts.append((0.0, 0.0, h + z0))
        return len(verts) - 1

    def band(r0: list[int], r1: list[int]) -> None:
        for j in range(vertices):
            k = (j + 1) % vertices
            polys.append([r0[j], r1[j], r1[k], r0[k]])

    def fan(c: int, r: list[int], flip: bool) -> None:
        for j in range(vertices):
            k = (j + 1) % vertices
            polys.append([r[k], r[j], c] if flip else [r[j], r[k], c])

    if top_point and bottom_point:  # Blender makes a line of side + 1 vertices
        for s in range(side + 1):
            point(1.0 - s / side)
        return _mesh(verts, [])
    filled = fill_type != "NONE"
    # top cap
    top_rings: list[list[int]] = []
    if top_point:
        top = point(1.0)
    else:
        centre = point(1.0) if fill_type == "TRIANGLE_FAN" else None
        if filled:
            for k in range(1, fill):
                top_rings.append(ring(k / fill, 1.0))
        side_top = ring(1.0, 1.0)
        top_rings.append(side_top)
        if filled:
            if centre is not None:
                fan(centre, top_rings[0], flip=False)
            else:
                polys.append(list(top_rings[0]))
            for r0, r1 in zip(top_rings[:-1], top_rings[1:]):
                band(r0, r1)
    # sides
    prev = None if top_point else top_rings[-1]
    first_side = 1
    last_side = side - 1 if bottom_point else side
    side_rings = []
    for s in range(first_side, last_side + 1):
        side_rings.append(ring(1.0, 1.0 - s / side))
    if top_point:
        fan(top, side_rings[0], flip=True)
        prev = side_rings[0]
        rest = side_rings[1:]
    else:
        rest = side_rings
    for r in rest:
        band(prev, r)
        prev = r
    if bottom_point:
        bottom = point(0.0)
        fan(bottom, prev, flip=False)
        return _mesh(verts, polys)
    # bottom cap
    if filled:
        bottom_rings = [prev] + [ring(k / fill, 0.0) for k in range(fill - 1, 0, -1)]
        for r0, r1 in zip(bottom_rings[:-1], bottom_rings[1:]):
            band(r0, r1)
        if fill_type == "TRIANGLE_FAN":
            fan(point(0.0), bottom_rings[-1], flip=True)
        else:
            polys.append(list(reversed(bottom_rings[-1])))
    return _mesh(verts, polys)


def _uv_sphere(segments: int, rings: int) -> CanonicalMesh:
    verts = [(0.0, 0.0, 1.0)]
    for k in range(1, rings):
        phi = math.pi * k / rings
        for j in range(segments):
            t = 2.0 * math.pi * (j + 1) / segments
            verts.append((math.sin(phi) * math.cos(t), math.sin(phi) * math.sin(t), math.cos(phi)))
    verts.append((0.0, 0.0, -1.0))
    south = len(verts) - 1

    def at(k: int, j: int) -> int:
        return 1 + (k - 1) * segments + (j % segments)

    polys = [[0, at(1, j), at(1, j + 1)] for j in range(segments)]
    for k in range(1, rings - 1):
        for j in range(segments):
            polys.append([at(k, j), at(k + 1, j), at(k + 1, j + 1), at(k, j + 1)])
    polys += [[at(rings - 1, j + 1), at(rings - 1, j), south] for j in range(segments)]
    return _mesh(verts, polys)


def _grid(vx: int, vy: int) -> CanonicalMesh:
    verts = [(x, y, 0.0) for x in _axis(vx) for y in _axis(vy)]
    polys = []
    for i in range(vx - 1):
        for j in range(vy - 1):
            a = i * vy + j
            polys.append([a, a + vy, a + vy + 1, a + 1])
    return _mesh(verts, polys)


@functools.lru_cache(maxsize=4096)
def _canonical(kind: str, topology: tuple) -> CanonicalMesh:
    if kind == "cube":
        return _cube(*topology)
    if kind == "cylinder":
        v, side, fill, fill_type = topology
        return _rings(v, side, fill, fill_type, False, False, z0=-0.5)
    if kind == "cone":
        v, side, fill, fill_type, top_point, bottom_point = topology
        return _rings(v, side, fill, fill_type, top_point, bottom_point, z0=0.0)
    if kind == "uv_sphere":
        return _uv_sphere(*topology)
    if kind == "grid":
        return _grid(*topology)
    if kind == "point":
        return _mesh([(0.0, 0.0, 0.0)], [])
    raise ValueError(f"unknown primitive kind {kind!r}")


def canonical_mesh(key: PrimitiveKey) -> CanonicalMesh:
    """The canonical unit mesh of a primitive (cached; do not modify the tensors)."""
    return _canonical(key.kind, tuple(key.topology))


_VERTS_CACHE: dict[tuple, Tensor] = {}


def canonical_verts(key: PrimitiveKey, dtype: torch.dtype, device) -> Tensor:  # [V, 3]
    """``canonical_mesh(key).verts`` in ``dtype`` on ``device`` (cached; do not modify)."""
    k = (key.kind, tuple(key.topology), dtype, str(device))
    v = _VERTS_CACHE.get(k)
    if v is None:
        v = canonical_mesh(key).verts.to(dtype=dtype, device=device)
        if len(_VERTS_CACHE) < 4096:
            _VERTS_CACHE[k] = v
    return v


def _diag(x: Tensor, y: Tensor, z: Tensor) -> Tensor:
    return torch.diag_embed(torch.stack([x, y, z], -1))


def shape_map(key: PrimitiveKey, shape: Mapping[str, Tensor], like: Tensor) -> Tensor:  # [B, 3, 3]
    """The shape map S with ``local = S @ canonical`` (approximate for cones, see module doc)."""
    k = key.kind
    if k == "cube":
        s = shape["size"]
        return torch.diag_embed(s)
    if k == "cylinder":
        r, d = shape["radius"], shape["depth"]
        return _diag(r, r, d)
    if k == "cone":
        rm = 0.5 * (shape["radius_top"] + shape["radius_bottom"])
        return _diag(rm, rm, shape["depth"])
    if k == "uv_sphere":
        r = shape["radius"]
        return _diag(r, r, r)
    if k == "grid":
        sx = shape["size_x"]
        return _diag(sx, shape["size_y"], torch.ones_like(sx))
    if k == "point":
        B = like.shape[0]
        return torch.eye(3, dtype=like.dtype, device=like.device).expand(B, 3, 3)
    raise ValueError(f"unknown primitive kind {k!r}")


def local_vertices(key: PrimitiveKey, shape: Mapping[str, Tensor], like: Tensor) -> Tensor:  # [B, V, 3]
    """Exact local vertices of a primitive for each batch element."""
    c = canonical_verts(key, like.dtype, like.device)
    if key.kind == "cone":
        h = c[:, 2]
        rt, rb, d = shape["radius_top"], shape["radius_bottom"], shape["depth"]
        r = rb[:, None] + (rt - rb)[:, None] * h[None, :]  # [B, V]
        xy = c[None, :, :2] * r[..., None]
        return torch.cat([xy, (d[:, None] * h[None, :])[..., None]], -1)
    if key.kind == "point":
        return c.expand(like.shape[0], 1, 3)
    s = shape_map(key, shape, like)
    # diagonal maps: multiply instead of a batched matmul
    return c[None] * torch.diagonal(s, dim1=1, dim2=2)[:, None, :]
