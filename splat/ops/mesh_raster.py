"""A triangle mesh's depth and anti-aliased silhouette in one camera, differentiable in the vertices.

What it is for: the joint stage compares the *program's* surface (not its Gaussians) with each training
view's depth map and object mask. Gaussians blur past a primitive's edges, so their silhouette is wider
than the primitive and photometric gradients thin the parts; the mesh's silhouette ends where its
faces end, so the comparison has its optimum where the true edges are.

How (the split used by :mod:`splat.ops.mesh_distance`: discrete choices without gradient, values in
torch):

* :func:`zbuffer` -- which triangle each pixel centre sees (perspective-correct nearest depth), found
  without gradient by a C++ kernel (``mesh_raster.cpp``) that scans each triangle's bounding box of pixel
  centres. At exactly equal depth the lowest face index wins.
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
  The kernel finds the pairs, the hulls and each pair's leaving edge; ``t`` is then computed in torch
  from that edge's two vertices for all pairs at once.

Backends (``backend=`` of each function): ``"auto"`` uses the kernel for float32 / float64 CPU tensors
and the torch reference otherwise, or when the kernel does not build (one warning, see
:mod:`splat._cpp`); ``"cpu"`` insists on the kernel; ``"torch"`` is the reference: the z-buffer with
every (triangle, pixel) candidate enumerated at once and the nearest kept by ``scatter_reduce``, the
silhouette with a loop over parts and scipy's ``ConvexHull``. The kernel forms every quantity a choice
depends on exactly as the reference does, so both give the same face map and the same alpha, and the
same gradient up to summation order. (Coincident vertices of one part: the kernel's hull takes the
lowest index, qhull's mostly but not always; the gradient then lands on a different copy of the same
point.)

Convention: pixel centres at ``+0.5`` (as the Gaussian rasterizer, gsplat's), OpenCV camera axes
(``viewmat`` world -> camera, z forward), images ``[H, W]``. One camera and one mesh per call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from splat._cpp import load_extension

RasterBackend = Literal["auto", "cpu", "torch"]


class MeshView(NamedTuple):
    """One camera's view of a mesh (see :func:`render_mesh`)."""

    depth: Tensor  # [H, W] z-depth (metres) of covered pixels, 0 elsewhere; differentiable
    alpha: Tensor  # [H, W] anti-aliased coverage in [0, 1]; differentiable at the outline
    face: Tensor  # [H, W] long, the triangle each pixel centre sees, -1 for none (no gradient)
    part: Tensor  # [H, W] long, that triangle's part, -1 for none (no gradient)


def _load_kernel():
    """Build (first use) or load (cached) the C++ kernel; None with one warning if that fails."""
    return load_extension("splat_mesh_raster_cpu", Path(__file__).with_name("mesh_raster.cpp"),
                          "the C++ mesh raster kernel", "the torch reference")


def kernel_available() -> bool:
    """True when the C++ mesh raster kernel builds (or is cached) and loads."""
    return _load_kernel() is not None


def _kernel(backend: RasterBackend, x: Tensor):
    """The kernel module when ``backend`` (with ``x``'s device and dtype) asks for it, else None."""
    if backend not in ("auto", "cpu", "torch"):
        raise ValueError(f"unknown backend {backend!r}")
    if backend == "torch":
        return None
    usable = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    ext = _load_kernel() if usable else None
    if ext is None and backend == "cpu":
        raise RuntimeError("the C++ mesh raster kernel is not available for these tensors"
                           + ("" if usable else f" ({x.device.type}, {x.dtype})") + " (see the warning above)")
    return ext


def project(verts_cam: Tensor, K: Tensor) -> Tensor:
    """Pixel coordinates ``[V, 2]`` of camera-space points ``[V, 3]`` (z > 0) through ``K [3, 3]``."""
    z = verts_cam[:, 2:3].clamp_min(1e-9)
    xy = verts_cam[:, :2] / z
    return torch.stack([K[0, 0] * xy[:, 0] + K[0, 1] * xy[:, 1] + K[0, 2], K[1, 1] * xy[:, 1] + K[1, 2]], -1)


@torch.no_grad()
def zbuffer(verts_cam: Tensor, faces: Tensor, K: Tensor, width: int, height: int,
            face_active: Tensor | None = None, near: float = 1e-3, max_candidates: int = 8_000_000,
            backend: RasterBackend = "auto") -> Tensor:
    """``[H, W]`` long: the nearest triangle whose projection contains each pixel centre, -1 for none.

    Triangles with a corner nearer than ``near`` (or behind the camera) and inactive ones are skipped.
    "Nearest" is the smallest perspective-correct depth at the pixel centre; at exactly equal depth the
    lowest face index wins, so the map is deterministic. ``max_candidates`` bounds the memory of the
    torch reference (see :func:`_zbuffer_torch`).
    """
    if faces.shape[0] == 0:
        return torch.full((height, width), -1, dtype=torch.long)
    z = verts_cam[:, 2]
    ok = (z[faces] > near).all(1)
    if face_active is not None:
        ok &= face_active
    uv = project(verts_cam, K)
    ext = _kernel(backend, verts_cam)
    if ext is not None:
        return ext.zbuffer(uv.contiguous(), z.contiguous(), faces.long().contiguous(), ok.contiguous(), width, height)
    return _zbuffer_torch(uv, z, faces, ok, width, height, max_candidates)


def _zbuffer_torch(uv: Tensor, z: Tensor, faces: Tensor, ok: Tensor, width: int, height: int,
                   max_candidates: int) -> Tensor:
    """The torch reference of :func:`zbuffer`, from projected ``uv [V, 2]``, depths ``z [V]``, usable ``ok [F]``.

    Candidates (triangle, pixel) are enumerated over each triangle's bounding box of pixel centres (no
    per-triangle Python loop), in chunks of about ``max_candidates``; the nearest depth per pixel is kept
    with ``scatter_reduce`` "amin", and among the hits at that depth the lowest face index.
    """
    dt = uv.dtype
    uv = uv[faces]  # [F, 3, 2]
    zf = z[faces]  # [F, 3]
    # pixel (col, row) has its centre at (col + 0.5, row + 0.5)
    c0 = torch.ceil(uv[..., 0].amin(1) - 0.5).clamp(0, width).long()
    c1 = torch.floor(uv[..., 0].amax(1) - 0.5).clamp(-1, width - 1).long()
    r0 = torch.ceil(uv[..., 1].amin(1) - 0.5).clamp(0, height).long()
    r1 = torch.floor(uv[..., 1].amax(1) - 0.5).clamp(-1, height - 1).long()
    nx, ny = (c1 - c0 + 1).clamp_min(0), (r1 - r0 + 1).clamp_min(0)
    count = torch.where(ok, nx * ny, torch.zeros_like(nx))
    fids = torch.nonzero(count > 0).squeeze(1)
    if fids.numel() == 0:
        return torch.full((height, width), -1, dtype=torch.long)
    out_depth = torch.full((height * width,), float("inf"), dtype=dt)
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
        zc = zf[fid]
        inv_z = (w0 / zc[:, 0] + w1 / zc[:, 1] + w2 / zc[:, 2]) / torch.where(inside, area, torch.ones_like(area))
        keep = inside & (inv_z > 0)
        pid = (row * width + col)[keep]
        depth = 1.0 / inv_z[keep]
        out_depth.scatter_reduce_(0, pid, depth, "amin")
        hits.append((pid, depth, fid[keep]))
    n_faces = faces.shape[0]
    best_face = torch.full((height * width,), n_faces, dtype=torch.long)  # n_faces: no hit
    for pid, depth, fid in hits:
        win = depth <= out_depth[pid]
        best_face.scatter_reduce_(0, pid[win], fid[win], "amin")
    return torch.where(best_face < n_faces, best_face, -1).view(height, width)


def pixel_depth(verts_cam: Tensor, faces: Tensor, K: Tensor, face: Tensor) -> Tensor:
    """``[H, W]`` z-depth where ``face >= 0``: the pixel centre's ray meets that triangle's plane (0 elsewhere).

    Differentiable in ``verts_cam``; ``face`` comes from :func:`zbuffer`. Each triangle's plane (normal
    ``n`` and offset ``n . a``) is formed once and gathered per pixel: the same values as forming it per
    pixel, with a backward that sums over the pixels of a face before it reaches the corners.
    """
    H, W = face.shape
    flat = face.reshape(-1)
    pix = torch.nonzero(flat >= 0).squeeze(1)
    if pix.numel() == 0:
        return verts_cam.new_zeros(H, W) + verts_cam.sum() * 0.0
    tri = verts_cam[faces]  # [F, 3, 3]
    normal = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)  # [F, 3]
    offset = (normal * tri[:, 0]).sum(-1)  # [F]
    f = flat[pix]
    n = normal[f]
    dt = verts_cam.dtype
    y = ((pix // W).to(dt) + 0.5 - K[1, 2]) / K[1, 1]
    x = ((pix % W).to(dt) + 0.5 - K[0, 2] - K[0, 1] * y) / K[0, 0]
    d = torch.stack([x, y, torch.ones_like(x)], -1)
    den = (n * d).sum(-1)
    den = torch.where(den.abs() > 1e-12, den, torch.full_like(den, 1e-12))
    z = offset[f] / den
    return verts_cam.new_zeros(H * W).index_put((pix,), z).view(H, W)


def _hull(points: np.ndarray) -> np.ndarray | None:
    """Indices of the 2D convex hull of ``points [N, 2]``, counter-clockwise (x right, y up), or None."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        return ConvexHull(points).vertices  # counter-clockwise for 2D input
    except (QhullError, ValueError):
        return None


def silhouette(uv: Tensor, vert_part: Tensor, part: Tensor, backend: RasterBackend = "auto") -> Tensor:
    """``[H, W]`` anti-aliased coverage of the mesh whose projected vertices are ``uv [V, 2]``.

    ``part [H, W]`` (from :func:`zbuffer`: the part each pixel centre sees, -1 for none) gives the hard
    coverage; each covered/uncovered neighbour pair moves coverage across the covering part's outline
    (see the module doc). Differentiable in ``uv``.
    """
    ext = _kernel(backend, uv)
    if ext is None:
        return _silhouette_torch(uv, vert_part, part)
    H, W = part.shape
    alpha = (part >= 0).to(uv.dtype) + uv.sum() * 0.0
    pair, edge = ext.silhouette_edges(part.long().contiguous(), uv.detach().contiguous(), vert_part.long().contiguous())
    if pair.shape[0] == 0:
        return alpha
    inside, outside = pair[:, 0], pair[:, 1]
    dt = uv.dtype
    pa = torch.stack([(inside % W).to(dt) + 0.5, (inside // W).to(dt) + 0.5], -1)  # [P, 2]
    pb = torch.stack([(outside % W).to(dt) + 0.5, (outside // W).to(dt) + 0.5], -1)
    e = uv[edge]  # [P, 2 (edge, the tied one or the same again), 2 (its ends), 2 (x, y)]
    e0 = e[:, :, 0]
    d = e[:, :, 1] - e0

    def g(x):  # [P, 2] d x (x - e0), >= 0 inside; the same operations as the reference
        r = x[:, None, :] - e0
        return d[..., 0] * r[..., 1] - d[..., 1] * r[..., 0]

    ga, gb = g(pa), g(pb)
    s = ga / (ga - gb)
    # a tie's two edges share the gradient as amin's does; one edge twice gives exactly s and its gradient
    t = (s[:, 0] * 0.5 + s[:, 1] * 0.5).clamp(0.0, 1.0)
    # one index_add over the inside pixels, then the outside ones: the reference's two, in its order
    alpha = alpha.view(-1).index_add(0, pair.T.reshape(-1), torch.cat([-torch.relu(0.5 - t), torch.relu(t - 0.5)]))
    return alpha.clamp(0.0, 1.0).view(H, W)


def _silhouette_torch(uv: Tensor, vert_part: Tensor, part: Tensor) -> Tensor:
    """The reference :func:`silhouette`: a loop over the parts that own outline pairs, each hull from scipy.

    The crossing of every pair with every hull edge of its part is formed, and ``t`` is their ``amin``;
    parts whose hull is degenerate (qhull fails: fewer than three points, all collinear) and pairs whose
    segment does not leave the hull keep ``t`` NaN and are dropped.
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
                width: int, height: int, face_active: Tensor | None = None,
                backend: RasterBackend = "auto") -> MeshView:
    """Depth and anti-aliased silhouette of a mesh (``verts [V, 3]`` world, ``faces [F, 3]``) in one camera.

    ``vert_part [V]`` / ``face_part [F]`` say which convex part each vertex / triangle belongs to (as
    :class:`splat.geonodes.RealizedMesh` does); ``viewmat [4, 4]`` world -> camera, ``K [3, 3]``;
    ``backend`` chooses the kernel or the torch reference (see the module doc).
    """
    R, tr = viewmat[:3, :3].to(verts.dtype), viewmat[:3, 3].to(verts.dtype)
    cam = verts @ R.T + tr
    K = K.to(verts.dtype)
    face = zbuffer(cam.detach(), faces, K, width, height, face_active, backend=backend)
    part = torch.cat([face_part.new_full((1,), -1), face_part]).index_select(0, face.view(-1) + 1).view_as(face)
    depth = pixel_depth(cam, faces, K, face)
    alpha = silhouette(project(cam, K), vert_part, part, backend=backend)
    return MeshView(depth, alpha, face, part)


@torch.no_grad()
def points_seen(points: Tensor, viewmats: Tensor, Ks: Tensor, free_depth: Tensor, tolerance: float,
                backend: RasterBackend = "auto") -> Tensor:
    """``[P]`` bool: which of ``points [P, 3]`` (world) some view saw or saw through.

    A view ``i`` (``viewmats [V, 4, 4]`` world -> camera, ``Ks [V, 3, 3]``) saw point ``p`` when ``p`` is in
    front of it (z > 1e-6), projects inside its frame, and ``z <= free_depth[i, row, col] + tolerance`` at
    the pixel it falls in (``free_depth [V, H, W]``: the depth up to which that pixel's ray is known to be
    empty; see :class:`splat.search.views.ScanViews`). Computed in float32; the C++ kernel on the CPU,
    stopping at the first view that saw a point, else the torch twin on ``[V, P]`` tensors.
    """
    p = points.detach().reshape(-1, 3).to(torch.float32).contiguous()
    vm = viewmats.to(p.device, torch.float32).contiguous()
    ks = Ks.to(p.device, torch.float32).contiguous()
    free = free_depth.to(p.device, torch.float32).contiguous()
    ext = _kernel(backend, p)
    if ext is not None:
        return ext.points_seen(p, vm, ks, free, float(tolerance), max(1, torch.get_num_threads()))
    return _points_seen_torch(p, vm, ks, free, tolerance)


def _points_seen_torch(p: Tensor, vm: Tensor, ks: Tensor, free: Tensor, tolerance: float,
                       chunk: int = 4_000_000) -> Tensor:
    n_views, height, width = free.shape
    free_flat = free.reshape(-1)
    seen = torch.zeros(p.shape[0], dtype=torch.bool, device=p.device)
    step = max(1, chunk // max(n_views, 1))
    rot_t = vm[:, :3, :3].transpose(1, 2)  # [V, 3, 3]
    base = (torch.arange(n_views, device=p.device) * (height * width))[:, None]  # [V, 1]
    fx, skew, cx = ks[:, 0, 0, None], ks[:, 0, 1, None], ks[:, 0, 2, None]  # [V, 1] each
    fy, cy = ks[:, 1, 1, None], ks[:, 1, 2, None]
    for s in range(0, p.shape[0], step):
        cam = torch.matmul(p[s : s + step], rot_t) + vm[:, None, :3, 3]  # [V, P, 3]
        x, y, z = cam.unbind(-1)
        zs = torch.where(z > 1e-6, z, torch.ones_like(z))
        u = (fx * x + skew * y) / zs + cx
        v = fy * y / zs + cy
        inside = (z > 1e-6) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        col = u.clamp(0, width - 1).to(torch.int64)
        row = v.clamp(0, height - 1).to(torch.int64)
        observed = free_flat[base + row * width + col]
        seen[s : s + step] = (inside & (z <= observed + tolerance)).any(0)
    return seen
