"""A triangle mesh's depth and anti-aliased silhouette in one camera, differentiable in the vertices.

What it is for: the joint stage compares the *program's* surface (not its Gaussians) with each training
view's depth map and object mask. Gaussians blur past a primitive's edges, so their silhouette is wider
than the primitive and photometric gradients thin the parts; the mesh's silhouette ends where its
faces end, so the comparison has its optimum where the true edges are.

How (the split used by :mod:`splat.ops.mesh_distance`: discrete choices without gradient, values in
torch):

* :func:`zbuffer` -- which triangle each pixel centre sees (perspective-correct nearest depth), found
  without gradient: every triangle's pixel-centre bounding box is enumerated at once (no per-triangle
  Python loop) and the nearest hit per pixel kept with ``scatter_reduce``.
* :func:`pixel_depth` -- the z-depth of each covered pixel as the intersection of its ray with the plane
  of the triangle it sees: exact, and differentiable in that triangle's three corners.
* :func:`silhouette` -- coverage in [0, 1] with anti-aliased edges: every pair of neighbouring pixels
  (horizontal and vertical) of which one is covered and the other is not crosses the outline of the
  covering part; where the crossing lies (``t`` in pixels from the covered pixel's centre, computed from
  the part's projected convex hull, so differentiable in its vertices) moves coverage between the two
  pixels, as an edge at ``t`` covers ``min(1, t + 1/2)`` of the one and ``max(0, t - 1/2)`` of the
  other. Each part must be convex (every primitive of :mod:`splat.geonodes` is): then its projection is
  the convex hull of its projected vertices and the crossing is the first hull edge the segment leaves
  through. Pairs whose pixels both see the mesh (an occlusion edge between parts) carry no silhouette.

Convention: pixel centres at ``+0.5`` (as the Gaussian rasterizer, gsplat's), OpenCV camera axes
(``viewmat`` world -> camera, z forward), images ``[H, W]``. One camera and one mesh per call.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


class MeshView(NamedTuple):
    """One camera's view of a mesh (see :func:`render_mesh`)."""

    depth: Tensor  # [H, W] z-depth (metres) of covered pixels, 0 elsewhere; differentiable
    alpha: Tensor  # [H, W] anti-aliased coverage in [0, 1]; differentiable at the outline
    face: Tensor  # [H, W] long, the triangle each pixel centre sees, -1 for none (no gradient)
    part: Tensor  # [H, W] long, that triangle's part, -1 for none (no gradient)


def project(verts_cam: Tensor, K: Tensor) -> Tensor:
    """Pixel coordinates ``[V, 2]`` of camera-space points ``[V, 3]`` (z > 0) through ``K [3, 3]``."""
    z = verts_cam[:, 2:3].clamp_min(1e-9)
    xy = verts_cam[:, :2] / z
    return torch.stack([K[0, 0] * xy[:, 0] + K[0, 1] * xy[:, 1] + K[0, 2], K[1, 1] * xy[:, 1] + K[1, 2]], -1)


@torch.no_grad()
def zbuffer(verts_cam: Tensor, faces: Tensor, K: Tensor, width: int, height: int,
            face_active: Tensor | None = None, near: float = 1e-3, max_candidates: int = 8_000_000) -> Tensor:
    """``[H, W]`` long: the nearest triangle whose projection contains each pixel centre, -1 for none.

    Triangles with a corner nearer than ``near`` (or behind the camera) and inactive ones are skipped.
    Candidates (triangle, pixel) are enumerated over each triangle's bounding box of pixel centres, in
    chunks of about ``max_candidates``.
    """
    dt = verts_cam.dtype
    F = faces.shape[0]
    out_depth = torch.full((height * width,), float("inf"), dtype=dt)
    if F == 0:
        return torch.full((height, width), -1, dtype=torch.long)
    tri = verts_cam[faces]  # [F, 3, 3]
    ok = (tri[..., 2] > near).all(1)
    if face_active is not None:
        ok &= face_active
    uv = project(verts_cam, K)[faces]  # [F, 3, 2]
    # pixel (col, row) has its centre at (col + 0.5, row + 0.5)
    c0 = torch.ceil(uv[..., 0].amin(1) - 0.5).clamp(0, width).long()
    c1 = torch.floor(uv[..., 0].amax(1) - 0.5).clamp(-1, width - 1).long()
    r0 = torch.ceil(uv[..., 1].amin(1) - 0.5).clamp(0, height).long()
    r1 = torch.floor(uv[..., 1].amax(1) - 0.5).clamp(-1, height - 1).long()
    nx, ny = (c1 - c0 + 1).clamp_min(0), (r1 - r0 + 1).clamp_min(0)
    count = torch.where(ok, nx * ny, torch.zeros_like(nx))
    fids = torch.nonzero(count > 0).squeeze(1)
    best_face = torch.full((height * width,), -1, dtype=torch.long)
    if fids.numel() == 0:
        return best_face.view(height, width)
    # chunks of whole triangles, each about max_candidates candidates
    cum = torch.cumsum(count[fids], 0)
    bounds = torch.searchsorted(cum, torch.arange(max_candidates, int(cum[-1]) + max_candidates, max_candidates))
    start = 0
    hits: list[tuple[Tensor, Tensor, Tensor]] = []
    for stop in bounds.tolist() + [fids.numel()]:
        stop = max(stop, start + 1) if start < fids.numel() else start
        if stop <= start:
            continue
        f = fids[start:stop]
        start = stop
        n = count[f]
        fid = torch.repeat_interleave(f, n)
        first = torch.cumsum(n, 0) - n
        local = torch.arange(int(n.sum())) - torch.repeat_interleave(first, n)
        col = c0[fid] + local % nx[fid]
        row = r0[fid] + local // nx[fid]
        px, py = col.to(dt) + 0.5, row.to(dt) + 0.5
        a, b, c = uv[fid, 0], uv[fid, 1], uv[fid, 2]

        def edge(p, q):  # 2D cross (q - p) x (pixel - p)
            return (q[:, 0] - p[:, 0]) * (py - p[:, 1]) - (q[:, 1] - p[:, 1]) * (px - p[:, 0])

        w0, w1, w2 = edge(b, c), edge(c, a), edge(a, b)
        area = w0 + w1 + w2
        inside = (area.abs() > 1e-12) & (((w0 >= 0) & (w1 >= 0) & (w2 >= 0)) | ((w0 <= 0) & (w1 <= 0) & (w2 <= 0)))
        z = tri[fid, :, 2]
        inv_z = (w0 / z[:, 0] + w1 / z[:, 1] + w2 / z[:, 2]) / torch.where(inside, area, torch.ones_like(area))
        keep = inside & (inv_z > 0)
        pid = (row * width + col)[keep]
        depth = 1.0 / inv_z[keep]
        out_depth.scatter_reduce_(0, pid, depth, "amin")
        hits.append((pid, depth, fid[keep]))
    for pid, depth, fid in hits:
        win = depth <= out_depth[pid]
        best_face[pid[win]] = fid[win]
    return best_face.view(height, width)


def pixel_depth(verts_cam: Tensor, faces: Tensor, K: Tensor, face: Tensor) -> Tensor:
    """``[H, W]`` z-depth where ``face >= 0``: the pixel centre's ray meets that triangle's plane (0 elsewhere).

    Differentiable in ``verts_cam``; ``face`` comes from :func:`zbuffer`.
    """
    H, W = face.shape
    covered = face >= 0
    out = verts_cam.new_zeros(H, W)
    if not bool(covered.any()):
        return out + verts_cam.sum() * 0.0
    rows, cols = torch.nonzero(covered, as_tuple=True)
    tri = verts_cam[faces[face[rows, cols]]]  # [P, 3, 3]
    n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    dt = verts_cam.dtype
    y = (rows.to(dt) + 0.5 - K[1, 2]) / K[1, 1]
    x = (cols.to(dt) + 0.5 - K[0, 2] - K[0, 1] * y) / K[0, 0]
    d = torch.stack([x, y, torch.ones_like(x)], -1)
    den = (n * d).sum(-1)
    den = torch.where(den.abs() > 1e-12, den, torch.full_like(den, 1e-12))
    z = (n * tri[:, 0]).sum(-1) / den
    return out.index_put((rows, cols), z)


def _hull(points: np.ndarray) -> np.ndarray | None:
    """Indices of the 2D convex hull of ``points [N, 2]``, counter-clockwise (x right, y up), or None."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        return ConvexHull(points).vertices  # counter-clockwise for 2D input
    except (QhullError, ValueError):
        return None


def silhouette(uv: Tensor, vert_part: Tensor, part: Tensor) -> Tensor:
    """``[H, W]`` anti-aliased coverage of the mesh whose projected vertices are ``uv [V, 2]``.

    ``part [H, W]`` (from :func:`zbuffer`: the part each pixel centre sees, -1 for none) gives the hard
    coverage; each covered/uncovered neighbour pair moves coverage across the covering part's outline
    (see the module doc). Differentiable in ``uv``.
    """
    H, W = part.shape
    covered = part >= 0
    alpha = covered.to(uv.dtype) + uv.sum() * 0.0
    pairs = []  # (inside flat index, outside flat index, step dx, dy from inside to outside)
    flat = torch.arange(H * W).view(H, W)
    for (dy, dx) in ((0, 1), (1, 0)):
        a = covered[: H - dy, : W - dx]
        b = covered[dy:, dx:]
        ia, ib = flat[: H - dy, : W - dx], flat[dy:, dx:]
        m = a & ~b
        pairs.append((ia[m], ib[m], dx, dy))
        m = b & ~a
        pairs.append((ib[m], ia[m], -dx, -dy))
    inside = torch.cat([p[0] for p in pairs])
    if inside.numel() == 0:
        return alpha
    outside = torch.cat([p[1] for p in pairs])
    step = torch.cat([torch.tensor([[p[2], p[3]]], dtype=uv.dtype).expand(p[0].numel(), 2) for p in pairs])
    owner = part.view(-1)[inside]
    a_xy = torch.stack([(inside % W).to(uv.dtype) + 0.5, (inside // W).to(uv.dtype) + 0.5], -1)
    t_all = uv.new_full((inside.numel(),), float("nan"))
    uv_np = uv.detach().cpu().double().numpy()
    for p in torch.unique(owner).tolist():
        sel = torch.nonzero(owner == p).squeeze(1)
        vids = torch.nonzero(vert_part == p).squeeze(1)
        hull = _hull(uv_np[vids.numpy()])
        if hull is None:
            continue
        h = uv[vids[torch.as_tensor(hull, dtype=torch.long)]]  # [m, 2], counter-clockwise in (x, y)
        e0, e1 = h, torch.roll(h, -1, 0)
        d = e1 - e0  # [m, 2]; positive signed area, so the inside is left of each edge: g >= 0
        pa = a_xy[sel]  # [s, 2]
        pb = pa + step[sel]

        def g(x):  # [s, m] d x (x - e0), >= 0 inside
            r = x[:, None, :] - e0[None]
            return d[None, :, 0] * r[..., 1] - d[None, :, 1] * r[..., 0]

        ga, gb = g(pa), g(pb)
        leaving = gb < 0
        denom = torch.where(leaving, ga - gb, torch.ones_like(ga))
        s = torch.where(leaving, ga / denom, torch.full_like(ga, float("inf")))
        t_all = t_all.index_put((sel,), s.amin(1))
    good = torch.isfinite(t_all)
    t = t_all[good].clamp(0.0, 1.0)
    alpha = alpha.view(-1)
    alpha = alpha.index_add(0, inside[good], -torch.relu(0.5 - t))
    alpha = alpha.index_add(0, outside[good], torch.relu(t - 0.5))
    return alpha.clamp(0.0, 1.0).view(H, W)


def render_mesh(verts: Tensor, faces: Tensor, vert_part: Tensor, face_part: Tensor, viewmat: Tensor, K: Tensor,
                width: int, height: int, face_active: Tensor | None = None) -> MeshView:
    """Depth and anti-aliased silhouette of a mesh (``verts [V, 3]`` world, ``faces [F, 3]``) in one camera.

    ``vert_part [V]`` / ``face_part [F]`` say which convex part each vertex / triangle belongs to (as
    :class:`splat.geonodes.RealizedMesh` does); ``viewmat [4, 4]`` world -> camera, ``K [3, 3]``.
    """
    R, tr = viewmat[:3, :3].to(verts.dtype), viewmat[:3, 3].to(verts.dtype)
    cam = verts @ R.T + tr
    K = K.to(verts.dtype)
    face = zbuffer(cam.detach(), faces, K, width, height, face_active)
    part = torch.where(face >= 0, face_part[face.clamp_min(0)], torch.full_like(face, -1))
    depth = pixel_depth(cam, faces, K, face)
    alpha = silhouette(project(cam, K), vert_part, part)
    return MeshView(depth, alpha, face, part)
