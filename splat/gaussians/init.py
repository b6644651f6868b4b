"""Initialise procedural Gaussians on the visible surface of a program's primitives.

Convention: see :mod:`splat.gaussians.model`. Points are drawn area-weighted in *world* units (each
canonical face weighted by the area of its image under the first active copy's ``A = M S``), so density
is uniform on the object; each Gaussian is flat along its face normal (rotation columns = tangent,
bitangent, normal in canonical space): the world covariance is built in the face's world frame (in-plane
standard deviation ``0.5 sqrt(area / n)``, ``flatness`` times that along the normal) and pulled back by
``A^-1`` to canonical space, so it is exactly that shape on the first copy.
With training views, a candidate point is *visible* when some copy of it projects inside a view, in
front of the camera, within ``depth_tolerance`` of the view's depth map (when given) and inside its mask
(when given); invisible candidates are dropped (unless a primitive has too few visible ones) and colours
are the mean of the pixels of every (copy, view) pair that sees the point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Sequence

import torch
from torch import Tensor

from splat.errors import SplatError
from splat.maths import SH_C0 as _SH_C0, covariances_to_scales_quats, rgb_to_sh_dc
from splat.gaussians.model import ProceduralGaussians, copy_numbers

if TYPE_CHECKING:
    from splat.geonodes import Geometry


class TrainViews(NamedTuple):
    """Training views used for visibility and colours (train frames only)."""

    images: Tensor  # [V, H, W, 3] float in [0, 1]
    viewmats: Tensor  # [V, 4, 4] world->camera, OpenCV axes
    Ks: Tensor  # [V, 3, 3] pixels
    depths: Tensor | None  # [V, H, W] z-depth metres, 0 = missing; None: no depth test
    masks: Tensor | None  # [V, H, W] bool object masks; None: no mask test


@dataclass(frozen=True)
class InitSettings:
    """How :func:`init_gaussians` places and colours the Gaussians (the trainer's ``gaussians`` section)."""

    num_init: int = 12000
    """Gaussians created at initialisation, over all canonical primitives (area-weighted in world units)."""
    sh_degree: int = 0
    """Spherical-harmonics degree of the colours, 0..3 (0: view-independent DC colour only)."""
    flatness: float = 0.15
    """Initial scale along the face normal, as a fraction of the in-plane scale (flat Gaussians), in (0, 1]."""
    init_opacity: float = 0.7
    """Initial opacity of every Gaussian, in (0, 1)."""
    color_mode: Literal["project", "constant"] = "project"
    """Initial colours: "project" averages the training views' pixels where a Gaussian is visible,
    "constant" uses ``constant_color``."""
    constant_color: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """Colour (linear [0, 1] RGB as stored in the images) for color_mode="constant" and for Gaussians no
    view sees."""
    per_copy_residuals: bool = True
    """Learn a DC colour residual per copy of a primitive (for copies that differ in appearance: the
    shelves of a bookcase lit differently, four legs with their own grain); each copy starts at the
    mean colour of the pixels that see it (with color_mode "project"), minus the shared colour. Measured
    (same cached searches, 1000 steps, with clone_per_copy, bench/RESULTS.md): held-out PSNR chair 31.66
    -> 31.96, table 32.64 -> 32.94, cabinet 27.87 -> 28.45 dB (residuals started at zero)."""
    oversample: int = 3
    """Candidates drawn per kept Gaussian when filtering by visibility."""
    depth_tolerance: float = 0.02
    """Largest |z - depth| (metres, plus 2% of z) for a point to count as seen by a view."""
    detail_init: int = 6000
    """Detail Gaussians seeded from scan points farther than ``detail_distance`` from the program's surface
    (surface the program lacks; :func:`add_detail_gaussians`), at most this many (0: none). Measured with
    ``loss.surface_band`` 1 cm (bench/RESULTS.md): the stool fitted by the table program 24.4 -> 25.1 dB
    held-out PSNR; the chair, which its program expresses, unchanged (31.4 dB)."""
    detail_distance: float = 0.01
    """Metres: a scan point farther than this from the program's surface seeds a detail Gaussian."""
    detail_per_copy: bool = True
    """A detail Gaussian is shown only by the copy of its primitive it was seeded beside (a knot on one
    leg stays on that leg; an edit still moves it with the leg). False: shared by every copy, like the
    program's own Gaussians (then a detail of one copy appears on all of them)."""

    def validate(self) -> None:
        """Raise :class:`SplatError` naming the field (``num_init``) for an out-of-range value."""
        checks = (
            (self.num_init >= 1, "num_init", f"must be >= 1, got {self.num_init}"),
            (0 <= self.sh_degree <= 3, "sh_degree", f"must be in [0, 3], got {self.sh_degree}"),
            (0.0 < self.flatness <= 1.0, "flatness", f"must be in (0, 1], got {self.flatness}"),
            (0.0 < self.init_opacity < 1.0, "init_opacity", f"must be in (0, 1), got {self.init_opacity}"),
            (self.color_mode in ("project", "constant"), "color_mode",
             f"must be 'project' or 'constant', got {self.color_mode!r}"),
            (len(self.constant_color) == 3 and all(0.0 <= c <= 1.0 for c in self.constant_color), "constant_color",
             f"must be 3 channels in [0, 1], got {self.constant_color}"),
            (self.oversample >= 1, "oversample", f"must be >= 1, got {self.oversample}"),
            (self.depth_tolerance >= 0.0, "depth_tolerance", f"must be >= 0, got {self.depth_tolerance}"),
            (self.detail_init >= 0, "detail_init", f"must be >= 0, got {self.detail_init}"),
            (self.detail_distance > 0.0, "detail_distance", f"must be > 0, got {self.detail_distance}"),
        )
        for ok, name, message in checks:
            if not ok:
                raise SplatError(message, field=name)


def _surface_keys(geometry: "Geometry", batch_index: int) -> tuple[list[Any], dict[Any, list[int]]]:
    keys: list[Any] = []
    copies: dict[Any, list[int]] = {}
    for i, part in enumerate(geometry.parts):
        if part.canonical.faces.numel() == 0:
            continue
        if part.key not in copies:
            copies[part.key] = []
            keys.append(part.key)
        copies[part.key].append(i)
    # keys with no active copy at this batch element get no Gaussians
    keys = [k for k in keys if any(bool(geometry.parts[i].active[batch_index]) for i in copies[k])]
    return keys, copies


def _affine(part: Any, b: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    M = part.transform[b].detach().to(dtype)
    return M[:3, :3] @ part.shape_map[b].detach().to(dtype), M[:3, 3]


def _visibility(points_w: Tensor, views: TrainViews, tol: float) -> tuple[Tensor, Tensor]:
    """Per point [P]: number of views seeing it and the summed colour [P, 3]."""
    V, H, W, _ = views.images.shape
    count = torch.zeros(points_w.shape[0], dtype=points_w.dtype)
    color = torch.zeros(points_w.shape[0], 3, dtype=points_w.dtype)
    homo = torch.cat([points_w, torch.ones_like(points_w[:, :1])], dim=1)
    for v in range(V):
        cam = homo @ views.viewmats[v].to(points_w.dtype).T
        z = cam[:, 2]
        K = views.Ks[v].to(points_w.dtype)
        zs = z.clamp_min(1e-9)
        u = K[0, 0] * cam[:, 0] / zs + K[0, 2]
        w = K[1, 1] * cam[:, 1] / zs + K[1, 2]
        col = torch.floor(u).long()
        row = torch.floor(w).long()
        ok = (z > 1e-6) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
        r, c = row.clamp(0, H - 1), col.clamp(0, W - 1)
        if views.depths is not None:
            d = views.depths[v][r, c].to(points_w.dtype)
            ok &= (d > 0) & ((z - d).abs() <= tol + 0.02 * z)
        if views.masks is not None:
            ok &= views.masks[v][r, c]
        count += ok.to(count.dtype)
        color += views.images[v][r, c].to(points_w.dtype) * ok[:, None].to(points_w.dtype)
    return count, color


def init_gaussians(
    geometry: "Geometry",
    settings: InitSettings,
    generator: torch.Generator,
    views: TrainViews | None = None,
    *,
    batch_index: int = 0,
    dtype: torch.dtype = torch.float32,
) -> ProceduralGaussians:
    """Create :class:`ProceduralGaussians` on the surface of ``geometry``'s primitives.

    Args:
        geometry: a :class:`splat.geonodes.Geometry` (its parts' transforms/shape maps are read without
            gradient at ``batch_index``).
        settings: :class:`InitSettings`.
        generator: seeded CPU generator for every draw.
        views: training views for visibility and colours; None places Gaussians on the whole surface
            with the constant colour.
    """
    keys, copies = _surface_keys(geometry, batch_index)
    if not keys:
        raise ValueError("the geometry has no active surface primitive to put Gaussians on")
    f64 = torch.float64
    meshes, areas = [], []
    for k in keys:
        ref = next(geometry.parts[i] for i in copies[k] if bool(geometry.parts[i].active[batch_index]))
        can = ref.canonical
        verts = torch.as_tensor(can.verts, dtype=f64)
        faces = torch.as_tensor(can.faces, dtype=torch.long)
        A, _ = _affine(ref, batch_index, f64)
        tri_c = verts[faces]  # [F, 3, 3]
        tri_w = tri_c @ A.T
        a_w = 0.5 * torch.linalg.vector_norm(
            torch.cross(tri_w[:, 1] - tri_w[:, 0], tri_w[:, 2] - tri_w[:, 0], dim=-1), dim=-1)
        meshes.append((tri_c, a_w, A))
        areas.append(float(a_w.sum()))
    total = sum(areas)
    if total <= 0:
        raise ValueError("the geometry's active primitives have zero surface area")
    counts = [max(4, round(settings.num_init * a / total)) for a in areas]

    all_means, all_rot, all_scales, all_color, all_copy_rgb, all_prim = [], [], [], [], [], []
    c_max = max(len(copies[k]) for k in keys)
    const = torch.tensor(settings.constant_color, dtype=f64)
    for ki, (k, (tri_c, a_w, A)) in enumerate(zip(keys, meshes)):
        n = counts[ki]
        m = n * (settings.oversample if views is not None else 1)
        if float(a_w.sum()) <= 0:
            continue
        face = torch.multinomial(a_w, m, replacement=True, generator=generator)
        r1 = torch.rand(m, generator=generator, dtype=f64).sqrt()
        r2 = torch.rand(m, generator=generator, dtype=f64)
        bary = torch.stack([1 - r1, r1 * (1 - r2), r1 * r2], dim=1)
        tri = tri_c[face]
        p_c = (bary[:, :, None] * tri).sum(1)
        e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        n_c = torch.cross(e1, e2, dim=-1)
        # world frame of the face: normal A^-T n_c, two orthonormal tangents
        A_inv = torch.linalg.inv(A + 1e-9 * torch.eye(3, dtype=f64))
        n_w = n_c @ A_inv
        n_w = n_w / torch.linalg.vector_norm(n_w, dim=-1, keepdim=True).clamp_min(1e-30)
        helper = torch.where((n_w[:, :1].abs() < 0.9), torch.tensor([[1.0, 0, 0]], dtype=f64),
                             torch.tensor([[0, 1.0, 0]], dtype=f64))
        u1 = torch.cross(n_w, helper, dim=-1)
        u1 = u1 / torch.linalg.vector_norm(u1, dim=-1, keepdim=True)
        u2 = torch.cross(n_w, u1, dim=-1)
        frame = torch.stack([u1, u2, n_w], dim=-1)  # [m, 3, 3] world columns

        color = const.expand(m, 3).clone()
        copy_rgb = torch.zeros(m, c_max, 3, dtype=f64)  # per-copy colour - shared colour (residuals)
        if views is not None:
            cnt = torch.zeros(m, dtype=f64)
            csum = torch.zeros(m, 3, dtype=f64)
            per_copy = []
            for j, i in enumerate(copies[k]):
                part = geometry.parts[i]
                if not bool(part.active[batch_index]):
                    continue
                Ai, ti = _affine(part, batch_index, f64)
                c_i, s_i = _visibility(p_c @ Ai.T + ti, views, settings.depth_tolerance)
                cnt += c_i
                csum += s_i
                per_copy.append((j, c_i, s_i))
            seen = cnt > 0
            if settings.color_mode == "project":
                color[seen] = csum[seen] / cnt[seen, None]
                for j, c_i, s_i in per_copy:  # a copy's own colour where its views see it
                    own = c_i > 0
                    copy_rgb[own, j] = s_i[own] / c_i[own, None] - color[own]
            order = torch.cat([torch.nonzero(seen).squeeze(1), torch.nonzero(~seen).squeeze(1)])
            if int(seen.sum()) >= n // 4:
                order = order[: min(n, int(seen.sum()))]
            else:  # a primitive no view sees well: keep it covered anyway
                order = order[:n]
        else:
            order = torch.arange(m)
        p_c, frame, color, copy_rgb = p_c[order], frame[order], color[order], copy_rgb[order]
        n_k = p_c.shape[0]
        sigma_w = 0.5 * (float(a_w.sum()) / max(n_k, 1)) ** 0.5
        var_w = torch.tensor([1.0, 1.0, settings.flatness**2], dtype=f64) * sigma_w**2
        cov_w = (frame * var_w) @ frame.transpose(-1, -2)  # desired world covariance
        cov_c = A_inv @ cov_w @ A_inv.T  # pulled back to canonical space
        log_scales, quats = covariances_to_scales_quats(cov_c)
        all_means.append(p_c)
        all_rot.append(quats)
        all_scales.append(log_scales)
        all_color.append(color)
        all_copy_rgb.append(copy_rgb)
        all_prim.append(torch.full((n_k,), ki, dtype=torch.long))

    means = torch.cat(all_means)
    n_total = means.shape[0]
    K = (settings.sh_degree + 1) ** 2
    logit = torch.logit(torch.tensor(settings.init_opacity, dtype=f64))
    params = {
        "means": means.to(dtype),
        "quats": torch.cat(all_rot).to(dtype),
        "log_scales": torch.cat(all_scales).to(dtype),
        "opacity_logits": torch.full((n_total,), float(logit), dtype=dtype),
        "sh0": rgb_to_sh_dc(torch.cat(all_color)).to(dtype)[:, None, :],
        "shN": torch.zeros(n_total, K - 1, 3, dtype=dtype),
    }
    if settings.per_copy_residuals:  # each copy starts at its own views' colour (SH DC is linear in rgb)
        params["residuals"] = (torch.cat(all_copy_rgb) / _SH_C0).to(dtype)
    return ProceduralGaussians(keys, params, torch.cat(all_prim), settings.sh_degree)


def surface_keys(geometry: "Geometry", batch_index: int = 0) -> list[Any]:
    """Keys of the primitives with a surface that are active at ``batch_index`` (in part order)."""
    return _surface_keys(geometry, batch_index)[0]


def canonical_surface_samples(keys: Sequence[Any], num: int,
                              generator: torch.Generator) -> list[tuple[Tensor, Tensor]]:
    """Per key, ``num`` area-weighted points [num, 3] on its canonical mesh (canonical area) and their
    unit face normals [num, 3] (float64)."""
    out = []
    for k in keys:
        from splat.geonodes import canonical_mesh

        can = canonical_mesh(k)
        verts = torch.as_tensor(can.verts, dtype=torch.float64)
        faces = torch.as_tensor(can.faces, dtype=torch.long)
        tri = verts[faces]
        a = 0.5 * torch.linalg.vector_norm(torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1), dim=-1)
        face = torch.multinomial(a, num, replacement=True, generator=generator)
        r1 = torch.rand(num, generator=generator, dtype=torch.float64).sqrt()
        r2 = torch.rand(num, generator=generator, dtype=torch.float64)
        bary = torch.stack([1 - r1, r1 * (1 - r2), r1 * r2], dim=1)
        nrm = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
        nrm = nrm / torch.linalg.vector_norm(nrm, dim=-1, keepdim=True).clamp_min(1e-30)
        out.append(((bary[:, :, None] * tri[face]).sum(1), nrm[face]))
    return out


def init_point_gaussians(
    points: Tensor,
    key: Any,
    settings: InitSettings,
    views: TrainViews | None = None,
    *,
    dtype: torch.dtype = torch.float32,
) -> ProceduralGaussians:
    """Gaussians initialised as 3DGS does from a point cloud, all owned by one primitive ``key``.

    For a part whose pushforward is the identity (``A = M S = I``, ``t = 0``: canonical = world), this is
    unconstrained 3DGS in :class:`ProceduralGaussians`' clothes (the baseline of :mod:`splat.train.baseline`):
    one Gaussian per point ``points [P, 3]`` (world metres), isotropic, its standard deviation the root
    mean squared distance to its 3 nearest neighbours (3DGS's ``distCUDA2``), identity rotation, opacity
    ``settings.init_opacity``, colour the mean of the ``views``' pixels that see the point (the visibility
    test of :func:`init_gaussians`: in front, within ``depth_tolerance`` of the depth map, inside the
    mask), else ``settings.constant_color``; higher SH degrees start at zero.
    """
    if points.ndim != 2 or points.shape[-1] != 3 or points.shape[0] < 2:
        raise ValueError(f"expected points [P >= 2, 3], got {list(points.shape)}")
    p = points.detach().to(torch.float64).cpu()
    n = p.shape[0]
    sigma = _neighbour_sigma(p, p, min(3, n - 1))
    params = _point_params(p, torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64).expand(n, 4),
                           sigma.log()[:, None].expand(n, 3), p, settings, settings.sh_degree, views, dtype)
    return ProceduralGaussians([key], params, torch.zeros(n, dtype=torch.long), settings.sh_degree)


def _neighbour_sigma(x: Tensor, cloud: Tensor, k: int) -> Tensor:
    """``[P]`` root mean squared distance of each point of ``x`` (points of ``cloud``) to its ``k`` nearest
    other points of ``cloud`` (3DGS's ``distCUDA2`` initial scale)."""
    from splat.ops import knn_points

    d2 = knn_points(x[None], cloud[None], K=k + 1).dists[0, :, 1:]  # the nearest is the point itself
    return d2.mean(-1).clamp_min(1e-14).sqrt()


def _point_params(means: Tensor, quats: Tensor, log_scales: Tensor, points_w: Tensor, settings: InitSettings,
                  sh_degree: int, views: TrainViews | None, dtype: torch.dtype) -> dict[str, Tensor]:
    """Per-Gaussian parameters of Gaussians seeded at world points ``points_w [P, 3]`` (float64): the given
    canonical means/quats/log-scales, opacity ``settings.init_opacity``, colour the mean of the ``views``'
    pixels that see the point (:func:`_visibility`), else ``settings.constant_color``; higher SH at zero."""
    n = points_w.shape[0]
    color = torch.tensor(settings.constant_color, dtype=torch.float64).expand(n, 3).clone()
    if views is not None and settings.color_mode == "project":
        cnt, csum = _visibility(points_w, views, settings.depth_tolerance)
        seen = cnt > 0
        color[seen] = csum[seen] / cnt[seen, None]
    logit = float(torch.logit(torch.tensor(settings.init_opacity, dtype=torch.float64)))
    return {
        "means": means.to(dtype),
        "quats": quats.to(dtype).clone(),
        "log_scales": log_scales.to(dtype).clone(),
        "opacity_logits": torch.full((n,), logit, dtype=dtype),
        "sh0": rgb_to_sh_dc(color).to(dtype)[:, None, :],
        "shN": torch.zeros(n, (sh_degree + 1) ** 2 - 1, 3, dtype=dtype),
    }


def add_detail_gaussians(
    model: ProceduralGaussians,
    geometry: "Geometry",
    points: Tensor,
    settings: InitSettings,
    generator: torch.Generator,
    views: TrainViews | None = None,
    *,
    batch_index: int = 0,
) -> tuple[ProceduralGaussians, int]:
    """``model`` plus *detail* Gaussians where the scan shows surface the program lacks; returns it and
    how many were added.

    A scan point (``points [P, 3]``, world metres: the fused train depth) farther than
    ``settings.detail_distance`` from the program's surface is surface the program does not express (a
    round seat fitted by a square top, a moulding, a cushion). Up to ``settings.detail_init`` of them
    (drawn with ``generator``) become Gaussians as 3DGS initialises them (isotropic, the standard
    deviation the root mean squared distance to the 3 nearest scan points, colour from the views),
    each owned by the primitive of the part whose surface is nearest: its world mean and covariance are
    pulled back by that part's ``A = M S`` into the primitive's canonical space, so an edit of the program
    moves it with its part. With ``settings.detail_per_copy`` only that copy of the primitive shows it
    (``ProceduralGaussians.copy``), else every copy does. The surface regulariser then keeps them only
    loosely (``loss.surface_band``).
    """
    from splat.ops.mesh_distance import point_mesh_sq_distance

    n_max = settings.detail_init
    if n_max <= 0 or points.shape[0] < 4:
        return model, 0
    f64 = torch.float64
    scan = points.detach().to(f64).cpu()
    rm = geometry.realize()
    verts = rm.verts[batch_index].detach().to(f64)[None]
    d2, face = point_mesh_sq_distance(scan[None], verts, rm.faces, rm.face_active[batch_index][None])
    d2, face = d2[0], face[0]
    key_index = {k: i for i, k in enumerate(model.keys)}
    part_of = rm.face_part[face.clamp_min(0)]
    part_owned = torch.tensor([p.key in key_index for p in geometry.parts], dtype=torch.bool)
    far = torch.nonzero((face >= 0) & part_owned[part_of] & (d2 > settings.detail_distance**2)).squeeze(1)
    if far.numel() == 0:
        return model, 0
    pick = far[torch.randperm(far.numel(), generator=generator)[:n_max]]
    x = scan[pick]
    sigma = _neighbour_sigma(x, scan, 3)
    parts = part_of[pick]
    means_c = torch.empty_like(x)
    covars_c = torch.empty(x.shape[0], 3, 3, dtype=f64)
    prim = torch.empty(x.shape[0], dtype=torch.long)
    copy = torch.full((x.shape[0],), -1, dtype=torch.long)
    copy_of_part = copy_numbers(geometry.parts)
    for p in torch.unique(parts).tolist():
        sel = torch.nonzero(parts == p).squeeze(1)
        part = geometry.parts[p]
        A, t = _affine(part, batch_index, f64)
        A_inv = torch.linalg.inv(A)
        means_c[sel] = (x[sel] - t) @ A_inv.T
        covars_c[sel] = (A_inv @ A_inv.T)[None] * sigma[sel, None, None] ** 2
        prim[sel] = key_index[part.key]
        if settings.detail_per_copy:
            copy[sel] = copy_of_part[p]
    log_scales, quats = covariances_to_scales_quats(covars_c)
    m = x.shape[0]
    new = _point_params(means_c, quats, log_scales, x, settings, model.sh_degree, views,
                        model.params["means"].dtype)
    params = {}
    for name, old in model.params.items():
        extra = new[name] if name in new else old.new_zeros((m, *old.shape[1:]))  # residuals start at 0
        params[name] = torch.cat([old.detach(), extra])
    grown = ProceduralGaussians(model.keys, params, torch.cat([model.prim, prim]), model.sh_degree,
                                torch.cat([model.copy, copy]))
    return grown, m
