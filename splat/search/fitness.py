"""Fitness of genomes: one batched program evaluation + one packed Chamfer call per population.

Convention:
    With ``PlacementBox.snap`` each genome is lifted so its lowest active vertex rests on the floor (the
    decoded z translation).
    The fitness of a genome is the Chamfer distance (:class:`splat.ops.ChamferSettings`) between its
    realized program surface, placed into scan coordinates (``p_scan = t + s * Rz(yaw) @ p``), and the
    target scan points (:func:`splat.ops.chamfer.mesh_cloud_chamfer`: ``samples`` area-weighted points
    on the surface -> scan point-to-point; scan -> exact distance to the nearest active triangle). Lower is better. A genome whose
    program has no active geometry (no area), or whose geometry is not finite, has fitness +inf.
    Everything is float32 on the CPU unless a device is given; the sampling draws come from an explicit
    ``torch.Generator``.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import torch
from torch import Tensor

from splat.errors import SplatError
from splat.maths import rotate_z
from splat.ops.chamfer import ChamferSettings, mesh_cloud_chamfer
from splat.ops.sampling import sample_surface, sample_surface_stratified
from splat.program import ShapeProgram
from splat.search.genome import GenomeSpace, Placement, Population
from splat.search.views import ScanViews, expected_visible

MIN_SCAN_POINTS = 32


def prepare_scan(points, *, min_points: int = MIN_SCAN_POINTS, file: str | os.PathLike | None = None) -> Tensor:
    """Validate a scan and return its finite points ``[P, 3]`` float32 (rows with NaN/inf dropped).

    Raises:
        SplatError: not an ``[P, 3]`` array, or fewer than ``min_points`` finite points (empty, all-NaN,
            or only a handful of points: too few to fit a program).
    """
    pts = torch.as_tensor(points)
    if pts.ndim != 2 or pts.shape[-1] != 3:
        raise SplatError(f"expected scan points of shape [P, 3], got {list(pts.shape)}", file=file, field="points")
    if not pts.is_floating_point():
        pts = pts.double()
    pts = pts[torch.isfinite(pts).all(1)].to(torch.float32)
    if pts.shape[0] < min_points:
        raise SplatError(
            f"the scan has {pts.shape[0]} finite points; at least {min_points} are needed to fit a program",
            file=file, field="points",
        )
    if float((pts.max(0).values - pts.min(0).values).max()) <= 0:
        raise SplatError("the scan's points all coincide", file=file, field="points")
    return pts


def local_spacing(points: Tensor, neighbours: int = 8) -> Tensor:
    """``[P]`` local point spacing of a scan: the median, over each point and its ``neighbours - 1``
    nearest others, of their distances to their own nearest other point. Equal to the global median
    spacing where the density is even; larger where a scan is sparse (surfaces seen at grazing angles)."""
    from splat.ops.knn import knn_points

    pts = points.detach().to("cpu", torch.float64)[None]
    nn = knn_points(pts, pts, K=2).dists[0, :, 1].clamp(min=0).sqrt()
    k = min(neighbours, pts.shape[1])
    idx = knn_points(pts, pts, K=k).idx[0]
    return nn[idx.clamp(min=0)].median(dim=1).values.to(points.dtype)


def subsample(points: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """At most ``n`` points of ``points [P, 3]``, drawn without replacement (all of them when P <= n)."""
    if points.shape[0] <= n:
        return points
    idx = torch.randperm(points.shape[0], generator=generator)[:n]
    return points[idx.to(points.device)]


def place(points: Tensor, placement: Placement) -> Tensor:
    """Program coordinates ``[B, N, 3]`` -> scan coordinates."""
    return placement.translation[:, None, :] + placement.scale[:, None, None] * rotate_z(points, placement.yaw)


def snap_to_floor(verts: Tensor, active: Tensor, floor: Tensor) -> Tensor:
    """Move each element of ``verts [B, V, 3]`` vertically so its lowest active vertex is at ``floor [B]``.

    Differentiable through the min (to the lowest vertex) and the floor.
    """
    low = torch.where(active, verts[..., 2], torch.full_like(verts[..., 2], math.inf)).min(1).values
    low = torch.where(torch.isfinite(low), low, floor.detach())
    lift = torch.zeros_like(verts)
    lift[..., 2] = (floor - low)[:, None]
    return verts + lift


class Surface(NamedTuple):
    """Surface samples of a population, in scan coordinates."""

    points: Tensor  # [B, S, 3]
    faces_of_points: Tensor  # [B, S] int64 face of each point
    lengths: Tensor  # [B] int64: S, or 0 where the genome has no (finite) geometry
    verts: Tensor  # [B, V, 3] placed vertices of the realized meshes
    faces: Tensor  # [F, 3] int64 triangles shared by the batch
    face_active: Tensor  # [B, F] bool: the faces each genome has


def population_surface(
    program: ShapeProgram,
    genomes: GenomeSpace,
    pop: Population,
    samples: int,
    generator: torch.Generator,
    *,
    cont: Tensor | None = None,
    density: float | None = None,
    device: torch.device | str = "cpu",
) -> Surface:
    """Evaluate the whole population in one batched program call and sample its surfaces.

    ``cont [B, Nc]`` (optional) replaces ``pop.cont`` so gradients can flow to the continuous genes.
    ``density`` (points per square metre) replaces the ``samples`` random points of each genome by
    deterministic stratified ones (:func:`splat.ops.sample_surface_stratified`; ``generator`` unused):
    genomes that share a face share its points, so their scores differ only where their geometry does.
    """
    cont = pop.cont if cont is None else cont
    params = genomes.params(pop, cont, device=device)
    geometry = program.evaluate(params, device=device, validate=False)
    mesh = geometry.realize()
    b = pop.disc.shape[0]
    if mesh.faces.shape[0] == 0:
        z = torch.zeros(b, dtype=torch.int64, device=device)
        return Surface(torch.zeros(b, samples, 3, device=device), z[:, None].expand(b, samples), z,
                       torch.zeros(b, 3, 3, device=device), torch.tensor([[0, 1, 2]], device=device),
                       torch.zeros(b, 1, dtype=torch.bool, device=device))
    placement = genomes.placement_of(cont, device=device)
    verts = place(mesh.verts.to(device), placement)
    active = mesh.vert_active.to(device)
    if genomes.placement.snap:
        verts = snap_to_floor(verts, active, placement.translation[:, 2])
    finite = torch.isfinite(verts).all(-1) | ~active  # [B, V]
    ok = finite.all(1)
    verts = torch.where(torch.isfinite(verts), verts, torch.zeros_like(verts))
    face_active = mesh.face_active.to(device)
    if density is None:
        surf = sample_surface(verts, mesh.faces, samples, generator, face_active)
    else:
        surf = sample_surface_stratified(verts, mesh.faces, density, face_active)
    lengths = torch.where(ok, surf.lengths, torch.zeros_like(surf.lengths))
    return Surface(surf.points, surf.face_idx, lengths, verts, mesh.faces.to(device), face_active)


def population_fitness(
    program: ShapeProgram,
    genomes: GenomeSpace,
    pop: Population,
    target: Tensor,
    samples: int,
    generator: torch.Generator,
    chamfer: ChamferSettings,
    *,
    cont: Tensor | None = None,
    candidates: int | None = None,
    density: float | None = None,
    views: ScanViews | None = None,
    target_margin: Tensor | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Fitness ``[B]`` (lower is better; +inf without geometry) of a population against ``target [P, 3]``.

    Differentiable in ``cont`` when it is given with ``requires_grad``. ``candidates``: None (default)
    measures each scan point's exact distance to its nearest active triangle; an int k instead tries only
    the triangles of its k nearest surface samples (see :func:`splat.ops.chamfer.mesh_cloud_chamfer`).
    ``density``: deterministic stratified surface points instead of ``samples`` random ones (see
    :func:`population_surface`). ``views``: the depth views the scan came from; the surface -> scan
    term then counts only surface points they could have seen (:mod:`splat.search.views`).
    ``target_margin [P]``: per scan point margin of that term (:func:`local_spacing`), instead of the
    chamfer settings' ``x_margin``.
    """
    surf = population_surface(program, genomes, pop, samples, generator, cont=cont, density=density, device=device)
    mask = None if views is None else expected_visible(surf.points, views)
    loss = mesh_cloud_chamfer(surf.points, surf.faces_of_points, surf.lengths, surf.verts, surf.faces,
                              target[None].to(device), None, chamfer, candidates=candidates,
                              face_active=surf.face_active, sample_mask=mask,
                              cloud_margin=None if target_margin is None else target_margin[None].to(device)).loss
    return torch.where(torch.isfinite(loss), loss, torch.full_like(loss, math.inf))
