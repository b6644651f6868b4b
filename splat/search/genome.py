"""Genomes of the structure search: discrete genes + continuous genes normalised to [0, 1].

Convention:
    A population of B genomes is a pair of tensors (:class:`Population`): ``disc [B, Nd]`` int64 holds the
    int and bool parameters (bools as 0/1) in ParamSpace order; ``cont [B, Nc]`` float64 in [0, 1] holds
    the float parameters (``low + u * (high - low)``) in ParamSpace order followed by the placement genes
    (translation x, y, z, yaw about +Z, and log uniform scale when enabled; see :class:`PlacementBox`).
    Parameters whose range is a single value are fixed and carry no gene. Genomes are kept *canonical*:
    a gene that is inactive for its genome (its activation conditions do not hold) holds the parameter's
    default, so genomes that differ only in inactive genes are equal, share one cache entry and are
    scored once.

    Placement maps program coordinates to scan coordinates: ``p_scan = t + s * Rz(yaw) @ p_program``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from splat.errors import SplatError
from splat.params import Param, ParamSpace, constant_batch

PLACEMENT_GENES = ("Translation X", "Translation Y", "Translation Z", "Yaw", "Log Scale")


class Population(NamedTuple):
    """A batch of genomes."""

    disc: Tensor  # [B, Nd] int64: int params as values, bool params as 0/1
    cont: Tensor  # [B, Nc] float64 in [0, 1]: float params then placement genes


@dataclass(frozen=True)
class PlacementBox:
    """Ranges of the placement genes, in scan coordinates (metres, radians).

    ``translation_low/high`` bound t (3 values each); yaw lies in ``[-yaw_range, yaw_range]``; the uniform
    scale is ``exp(g)`` with g in ``[-log_scale_range, log_scale_range]`` and is a gene only when
    ``log_scale_range > 0``.
    """

    translation_low: tuple[float, float, float]
    translation_high: tuple[float, float, float]
    yaw_range: float
    log_scale_range: float = 0.0
    snap: bool = False
    """Snap to the floor: the z translation gene is the height of the floor, and each genome's geometry
    is moved vertically so its lowest active vertex rests on it (programs stand on z = 0)."""

    @property
    def n_genes(self) -> int:
        return 5 if self.log_scale_range > 0 else 4

    @staticmethod
    def from_scan(points: Tensor, *, margin: float = 0.25, snap_to_floor: bool = True, z_margin: float = 0.0,
                  yaw_range: float = math.pi, log_scale_range: float = 0.0,
                  floor: float | None = None) -> "PlacementBox":
        """Centre the translation range on the scan: x, y at its box centre, z at its floor.

        x, y: half-width ``margin`` times the box extent (at least 5 cm), so the program's origin may sit
        off the box centre. z is searched in floor +- ``z_margin`` with the floor given, or from
        :func:`estimate_floor`. With ``snap_to_floor`` that z is where each
        genome's lowest point rests, instead of its origin. A free height (of the origin, or of the floor
        with ``z_margin > 0``) lets the search trade vertical placement against the program's heights
        along a nearly flat valley (only the small feet of an object tell them apart), hence the default
        ``z_margin = 0``: the floor is taken from the scan.
        """
        lo = points.min(0).values.double()
        hi = points.max(0).values.double()
        floor = estimate_floor(points) if floor is None else torch.tensor(float(floor), dtype=torch.float64)
        centre = torch.stack([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, floor])
        half = torch.clamp(margin * (hi - lo), min=0.05)
        half[2] = z_margin
        return PlacementBox(
            translation_low=tuple(float(v) for v in centre - half),
            translation_high=tuple(float(v) for v in centre + half),
            yaw_range=float(yaw_range),
            log_scale_range=float(log_scale_range),
            snap=snap_to_floor,
        )


def estimate_floor(points: Tensor) -> Tensor:
    """The z of the lowest scan point that is not an isolated outlier (float64 scalar).

    A point counts when its two nearest other points lie within twice the scan's median point spacing.
    The floor has to come from the very lowest points: an object's feet carry few of them (a cabinet's
    legs hold ~0.2% of its area; a camera above never sees a leg's bottom face), so even a 0.02%
    quantile sat millimetres to centimetres above the floor, and every height fitted after it was short
    by as much.
    """
    from splat.ops.knn import knn_points

    pts = points.detach().to("cpu", torch.float64)
    if pts.shape[0] < 3:
        return pts[:, 2].min()
    spacing = knn_points(pts[None], pts[None], K=2).dists[0, :, 1].clamp(min=0).sqrt().median()
    order = torch.argsort(pts[:, 2])
    low = pts[order[: max(64, pts.shape[0] // 100)]]
    d = knn_points(low[None], pts[None], K=3).dists[0, :, 2].clamp(min=0).sqrt()  # self, then two others
    ok = d <= 2.0 * spacing
    return low[int(torch.nonzero(ok)[0]), 2] if bool(ok.any()) else low[0, 2]


class Placement(NamedTuple):
    """Decoded placement of a batch: ``p_scan = translation + scale * Rz(yaw) @ p_program``."""

    translation: Tensor  # [B, 3]
    yaw: Tensor  # [B] radians about +Z
    scale: Tensor  # [B] uniform scale (1 when scale is not searched)


def _check_param(p: Param, file) -> None:
    if p.type == "bool":
        return
    lo, hi = p.low, p.high
    if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float))) or not (
        math.isfinite(lo) and math.isfinite(hi)
    ):
        raise SplatError(f"range [{lo}, {hi}] is not finite", file=file, field=p.name)
    if lo > hi:
        raise SplatError(f"range [{lo}, {hi}] is empty", file=file, field=p.name)


class GenomeSpace:
    """Encodes and decodes genomes of one ParamSpace plus placement (see the module docstring).

    Raises:
        SplatError: a parameter's range is empty or not finite, or the space has no gene to search.
    """

    def __init__(self, space: ParamSpace, placement: PlacementBox, *, file=None):
        for p in space:
            _check_param(p, file)
        self.space = space
        self.placement = placement
        # a parameter the scan cannot fit (``scan_blind``: where a handle sits on its front) is held at its
        # default like one whose range is a single value; the photos set it later (splat.train.facade)
        searched = [p for p in space if not p.scan_blind]
        self.discrete: tuple[Param, ...] = tuple(p for p in searched if p.type != "float" and p.low != p.high)
        self.continuous: tuple[Param, ...] = tuple(p for p in searched if p.type == "float" and p.high > p.low)
        self.fixed: dict[str, Any] = {p.name: p.low for p in searched if p.type != "bool" and p.low == p.high}
        self.fixed.update({p.name: p.default for p in space if p.scan_blind})
        if not self.discrete and not self.continuous:
            raise SplatError("the parameter space has no parameter with a non-empty range to search", file=file,
                             field="params")
        self.n_disc = len(self.discrete)
        self.n_program_cont = len(self.continuous)
        self.n_cont = self.n_program_cont + placement.n_genes
        self.disc_low = torch.tensor([int(p.low) for p in self.discrete], dtype=torch.int64)
        self.disc_high = torch.tensor([int(p.high) for p in self.discrete], dtype=torch.int64)
        self.disc_default = torch.tensor([int(p.default) for p in self.discrete], dtype=torch.int64)
        self.cont_default = torch.tensor(
            [(float(p.default) - p.low) / (p.high - p.low) for p in self.continuous] + [0.5] * placement.n_genes,
            dtype=torch.float64,
        )
        self.gene_names = tuple(p.name for p in self.discrete) + tuple(p.name for p in self.continuous) + \
            PLACEMENT_GENES[: placement.n_genes]

    # ---- decoding --------------------------------------------------------------------------------------

    def params(self, pop: Population, cont: Tensor | None = None, *, dtype=torch.float32,
               device="cpu") -> dict[str, Tensor]:
        """Program parameter batch (name -> [B]) of ``pop``; ``cont`` overrides ``pop.cont`` (for autograd)."""
        cont = pop.cont if cont is None else cont
        out: dict[str, Tensor] = {}
        b = pop.disc.shape[0]
        for j, p in enumerate(self.discrete):
            v = pop.disc[:, j].to(device)
            out[p.name] = v.bool() if p.type == "bool" else v
        for j, p in enumerate(self.continuous):
            out[p.name] = (p.low + cont[:, j].clamp(0, 1) * (p.high - p.low)).to(dtype=dtype, device=device)
        for name, v in self.fixed.items():
            out[name] = constant_batch(self.space[name], v, b, dtype=dtype, device=device)
        return out

    def placement_of(self, cont: Tensor, *, dtype=torch.float32, device="cpu") -> Placement:
        """Decode the placement genes of ``cont [B, Nc]`` (differentiable)."""
        g = cont[:, self.n_program_cont :].clamp(0, 1).to(dtype=dtype, device=device)
        lo = torch.tensor(self.placement.translation_low, dtype=dtype, device=device)
        hi = torch.tensor(self.placement.translation_high, dtype=dtype, device=device)
        translation = lo + g[:, :3] * (hi - lo)
        yaw = (2 * g[:, 3] - 1) * self.placement.yaw_range
        if self.placement.n_genes == 5:
            scale = torch.exp((2 * g[:, 4] - 1) * self.placement.log_scale_range)
        else:
            scale = torch.ones_like(yaw)
        return Placement(translation, yaw, scale)

    def active_masks(self, pop: Population) -> tuple[Tensor, Tensor]:
        """Which genes are active: ``([B, Nd] bool, [B, Nc] bool)``; placement genes always are."""
        b = pop.disc.shape[0]
        batch = {p.name: (pop.disc[:, j].bool() if p.type == "bool" else pop.disc[:, j])
                 for j, p in enumerate(self.discrete)}
        act = self.space.active_batch(batch, b)
        da = torch.stack([act[p.name] for p in self.discrete], 1) if self.n_disc else torch.zeros(b, 0, dtype=torch.bool)
        ca = [act[p.name] for p in self.continuous] + [torch.ones(b, dtype=torch.bool)] * self.placement.n_genes
        return da, torch.stack(ca, 1)

    def canonical(self, pop: Population) -> Population:
        """Inactive genes set to their defaults (see the module docstring)."""
        da, ca = self.active_masks(pop)
        disc = torch.where(da, pop.disc, self.disc_default.expand_as(pop.disc))
        cont = torch.where(ca, pop.cont.clamp(0, 1), self.cont_default.expand_as(pop.cont))
        return Population(disc, cont)

    def keys(self, pop: Population) -> list[tuple]:
        """Hashable cache keys of canonical genomes (continuous genes rounded to 1e-6)."""
        d = pop.disc.tolist()
        c = torch.round(pop.cont * 1e6).to(torch.int64).tolist()
        return [tuple(a) + tuple(b) for a, b in zip(d, c)]

    def assignments(self, pop: Population) -> list[dict[str, Any]]:
        """Python parameter dicts (every parameter of the space) of each genome."""
        return self.space.unbatch(self.params(pop, dtype=torch.float64))

    # ---- variation -------------------------------------------------------------------------------------

    def random(self, n: int, generator: torch.Generator, *, yaw_random: bool = True) -> Population:
        """``n`` canonical random genomes: uniform genes; translation at the scan box centre."""
        span = (self.disc_high - self.disc_low + 1).double()
        disc = self.disc_low + (torch.rand((n, self.n_disc), generator=generator, dtype=torch.float64) * span
                                ).long().clamp(max=(span - 1).long())
        cont = torch.rand((n, self.n_cont), generator=generator, dtype=torch.float64)
        k = self.n_program_cont
        cont[:, k : k + 3] = 0.5
        if not yaw_random:
            cont[:, k + 3] = 0.5
        if self.placement.n_genes == 5:
            cont[:, k + 4] = 0.5
        return self.canonical(Population(disc, cont))

    def defaults(self, n: int = 1) -> Population:
        """The default genome (parameter defaults, placement at the box centre, yaw 0, scale 1)."""
        return self.canonical(Population(self.disc_default.expand(n, -1).clone(),
                                          self.cont_default.expand(n, -1).clone()))

    def crossover(self, a: Population, b: Population, generator: torch.Generator) -> Population:
        """Uniform crossover: each gene from ``a`` or ``b`` with probability 1/2."""
        md = torch.rand(a.disc.shape, generator=generator) < 0.5
        mc = torch.rand(a.cont.shape, generator=generator) < 0.5
        return Population(torch.where(md, a.disc, b.disc), torch.where(mc, a.cont, b.cont))

    def mutate(self, pop: Population, generator: torch.Generator, *, rate: float, sigma: float) -> Population:
        """Per-gene mutation: discrete genes resampled to another value, continuous ones a Gaussian step.

        Genes that become active (their conditions now hold, they were inactive before) are drawn
        uniformly rather than left at the default, so newly opened structure is explored.
        """
        da0, ca0 = self.active_masks(pop)
        span = self.disc_high - self.disc_low + 1
        md = torch.rand(pop.disc.shape, generator=generator) < rate
        # Another value, uniformly: shift by 1..span-1 modulo the span.
        shift = 1 + (torch.rand(pop.disc.shape, generator=generator, dtype=torch.float64) * (span - 1).double()).long()
        new = self.disc_low + (pop.disc - self.disc_low + shift) % span
        disc = torch.where(md, new, pop.disc)
        mc = torch.rand(pop.cont.shape, generator=generator) < rate
        step = torch.randn(pop.cont.shape, generator=generator, dtype=torch.float64) * sigma
        cont = torch.where(mc, (pop.cont + step).clamp(0, 1), pop.cont)
        da1, ca1 = self.active_masks(Population(disc, cont))
        fresh_d = da1 & ~da0
        if bool(fresh_d.any()):
            r = self.disc_low + (torch.rand(disc.shape, generator=generator, dtype=torch.float64) * span.double()
                                 ).long().clamp(max=(span - 1))
            disc = torch.where(fresh_d, r, disc)
            da1, ca1 = self.active_masks(Population(disc, cont))
        fresh_c = ca1 & ~ca0
        if bool(fresh_c.any()):
            cont = torch.where(fresh_c, torch.rand(cont.shape, generator=generator, dtype=torch.float64), cont)
        return self.canonical(Population(disc, cont))


def cat(pops: list[Population]) -> Population:
    return Population(torch.cat([p.disc for p in pops]), torch.cat([p.cont for p in pops]))


def take(pop: Population, idx: Tensor | list[int]) -> Population:
    idx = torch.as_tensor(idx, dtype=torch.int64)
    return Population(pop.disc[idx], pop.cont[idx])
