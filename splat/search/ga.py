"""Genetic structure search over a ShapeProgram's ParamSpace, with Lamarckian gradient refinement.

Convention:
    Genomes, placement and fitness are described in :mod:`splat.search.genome` and
    :mod:`splat.search.fitness` (fitness = Chamfer distance to the scan, lower is better, +inf without
    geometry). One generation: score the genomes not yet in the cache (one batched program evaluation
    and one packed Chamfer call), refine the continuous genes of the best few with Adam and write the
    refined genes back (Lamarckian), keep the elites, and fill the rest by selection (tournament or
    truncation), uniform crossover and per-gene mutation. Stop after ``generations`` or when the best
    fitness has not improved for ``patience`` generations. Then polish the structure (every one-change
    neighbour of the winner and the best other structures, refined and compared on a deterministic
    score) and give the best few structures a long final refinement; the best wins. Everything is
    seeded from ``SearchSettings.seed`` (own ``torch.Generator``s; no global seeding), so a search is
    deterministic for a seed on a given machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from splat.errors import SplatError
from splat.ops.chamfer import ChamferSettings
from splat.program import ShapeProgram
from splat.ops.sampling import face_areas
from splat.search.fitness import (local_spacing, place, population_fitness, population_surface, prepare_scan,
                                  subsample)
from splat.search.genome import GenomeSpace, PlacementBox, Population, cat, take
from splat.search.refine import RefineSettings, refine_population
from splat.search.views import ScanViews


@dataclass(frozen=True)
class PlacementSettings:
    """Which placement genes are searched and over what range (see :class:`PlacementBox`)."""

    margin: float = 0.25
    """Half-width of the x, y translation range as a fraction of the scan's box extent (at least 5 cm)."""
    snap_to_floor: bool = True
    """z places each genome's lowest point (on the floor) rather than its origin (see PlacementBox)."""
    z_margin: float = 0.0
    """Half-width (metres) of the searched z range around the scan's estimated floor (0: not searched,
    see PlacementBox.from_scan for why)."""
    yaw_range: float = math.pi
    """Yaw is searched in [-yaw_range, yaw_range] radians about +Z (0 searches no rotation)."""
    log_scale_range: float = 0.0
    """Uniform scale exp(g), g in [-r, r]; 0 leaves the scale at 1 (the scan is metric)."""
    floor: float | None = None
    """The floor's z when known, e.g. :func:`splat.search.genome.estimate_floor` of the full-resolution
    scan before it was subsampled (a subsample keeps few of the lowest points); None estimates it from
    the scan given to the search (the trainer then passes the floor of the full fused scan)."""

    def validate(self) -> None:
        """Raise :class:`SplatError` naming the field (``yaw_range``) for an out-of-range value."""
        for name in ("margin", "z_margin", "yaw_range", "log_scale_range"):
            v = getattr(self, name)
            if not v >= 0.0:
                raise SplatError(f"must be >= 0, got {v}", field=name)


@dataclass(frozen=True)
class SearchSettings:
    """Hyperparameters of :func:`search` (the trainer's ``search`` section)."""

    seed: int = 0
    """Seed of every random choice of the search (the trainer uses its run-level ``seed``)."""
    population: int = 32
    """Genomes per GA generation (>= 2)."""
    generations: int = 20
    """GA generations (the search may stop earlier on stagnation, see ``patience``)."""
    elites: int = 2
    """Best genomes copied unchanged into the next generation."""
    selection: Literal["tournament", "truncation"] = "tournament"
    """How parents are drawn: the best of ``tournament_size`` random genomes, or uniformly from the best
    ``truncation_fraction``."""
    tournament_size: int = 3
    """Genomes per tournament (tournament selection)."""
    truncation_fraction: float = 0.5
    """Truncation selection draws parents uniformly from this best fraction."""
    crossover_rate: float = 0.9
    """Probability that a child is a uniform crossover of two parents (else a copy of the first)."""
    mutation_rate: float = 0.15
    """Probability that each gene mutates."""
    mutation_sigma: float = 0.12
    """Gaussian step of a mutating continuous gene (in normalised units)."""
    seed_defaults: bool = True
    """Put the default genome into the initial population."""
    patience: int = 8
    """Stop when the best fitness has not improved (relatively, by 1e-4) for this many generations."""
    samples: int = 512
    """Surface points per genome when scoring."""
    target_points: int = 4096
    """Scan points used while searching (random subset)."""
    refine_top: int = 4
    """Genomes refined (Lamarckian) per generation: the best genome of each of the ``refine_top`` best
    distinct structures (not simply the best genomes, which often share one structure), so a structure
    is judged with its continuous genes fitted."""
    refine: RefineSettings = field(default_factory=lambda: RefineSettings(steps=6, lr=0.03, samples=512))
    """Lamarckian refinement of the ``refine_top`` structure leaders in every generation."""
    final_refine: RefineSettings = field(
        default_factory=lambda: RefineSettings(steps=150, lr=0.01, final_lr_fraction=0.01, samples=4096))
    """Final refinement of the continuous genes of the ``final_structures`` finalists."""
    final_target_points: int = 8192
    """Scan points used by the final refinement of the winner."""
    turned_generations: int = 10
    """Generations of a second GA run in the other half-turn (yaw + pi), started from the turned winner
    and random genomes at that yaw (0: none). An object fitted turned around can need several discrete
    changes at once to get back (a cabinet without back but with doors, turned, resembles one with a
    back and open shelves); the better of the two runs goes on."""
    polish_rounds: int = 3
    """Rounds of structure polishing after the GA: candidates are every single discrete change of the
    winner (each active discrete gene set to each other value, keeping the winner's continuous genes)
    and the best genome scored for each of the ``polish_structures`` best other structures; all are
    refined with ``polish`` and compared (see ``compare_samples``); the best becomes the winner. Stops
    early when the winner stays. 0 disables it."""
    polish_structures: int = 4
    """Best other structures (besides the winner's one-change neighbours) polished per round."""
    polish: RefineSettings = field(default_factory=lambda: RefineSettings(steps=40, lr=0.01, final_lr_fraction=0.05,
                                                                          samples=1024))
    """Refinement of every candidate of a polishing round."""
    compare_samples: int = 16384
    """Structures are compared (polishing, finalists) by ``chamfer`` with exact scan -> surface distances
    and about this many *stratified* surface points for the winner (the same density for every
    candidate, :func:`splat.ops.sample_surface_stratified`): candidates that share a face share its
    points, so small parts such as drawer handles decide the comparison instead of sampling noise."""
    final_structures: int = 3
    """The best structures of the last polishing round that all get the final refinement; the best after
    it wins (a structure that differs only in a small part is judged once its sizes are fitted)."""
    margin_scale: float | None = 1.0
    """The surface -> scan term ignores, for each surface point, distances below this times the local
    point spacing of its nearest scan point (:func:`splat.search.fitness.local_spacing`). A surface
    point between scan points then costs nothing, so that term only sees geometry the scan does not
    show, without the floor and noise that otherwise hide mm-scale differences; being local, it also
    leaves alone surfaces a real scan covers sparsely (seen at grazing angles). None uses the chamfer
    settings' own ``x_margin``."""
    chamfer: ChamferSettings = field(default_factory=lambda: ChamferSettings(squared=False))
    """Objective (fitness) of the GA, its refinement and the structure comparisons: Chamfer distance from
    the genome's surface samples (x) to the scan (y)."""
    final_chamfer: ChamferSettings | None = None
    """Objective of the final refinement (None: ``chamfer``). Both directions: scan -> surface alone
    cannot see a part that is too large where the scan shows no surface beyond it (a table top
    overhanging its scanned edge by more than half its thickness)."""
    placement: PlacementSettings = field(default_factory=PlacementSettings)
    """Which placement genes are searched and over what range."""
    progress: bool = True
    """Show a tqdm progress bar (the trainer uses its ``log.progress``)."""

    def validate(self) -> None:
        """Raise :class:`SplatError` naming the field (``population``, ``final_refine.steps``) for an
        out-of-range value. ``chamfer``/``final_chamfer`` validate themselves on construction."""
        checks = (
            (self.population >= 2, "population", f"must be >= 2, got {self.population}"),
            (self.generations >= 1, "generations", f"must be >= 1, got {self.generations}"),
            (0 <= self.elites < self.population, "elites",
             f"must lie in [0, population={self.population}), got {self.elites}"),
            (self.selection in ("tournament", "truncation"), "selection",
             f"must be 'tournament' or 'truncation', got {self.selection!r}"),
            (self.tournament_size >= 1, "tournament_size", f"must be >= 1, got {self.tournament_size}"),
            (0.0 < self.truncation_fraction <= 1.0, "truncation_fraction",
             f"must be in (0, 1], got {self.truncation_fraction}"),
            (0.0 <= self.crossover_rate <= 1.0, "crossover_rate", f"must be in [0, 1], got {self.crossover_rate}"),
            (0.0 <= self.mutation_rate <= 1.0, "mutation_rate", f"must be in [0, 1], got {self.mutation_rate}"),
            (self.mutation_sigma >= 0.0, "mutation_sigma", f"must be >= 0, got {self.mutation_sigma}"),
            (self.samples >= 1, "samples", f"must be >= 1, got {self.samples}"),
            (self.target_points >= 1, "target_points", f"must be >= 1, got {self.target_points}"),
            (self.final_target_points >= 1, "final_target_points", f"must be >= 1, got {self.final_target_points}"),
            (self.compare_samples >= 1, "compare_samples", f"must be >= 1, got {self.compare_samples}"),
            (self.final_structures >= 1, "final_structures", f"must be >= 1, got {self.final_structures}"),
            (self.margin_scale is None or self.margin_scale >= 0, "margin_scale",
             f"must be >= 0 (or None), got {self.margin_scale}"),
        )
        for ok, name, message in checks:
            if not ok:
                raise SplatError(message, field=name)
        for name in ("patience", "refine_top", "turned_generations", "polish_rounds", "polish_structures"):
            if getattr(self, name) < 0:
                raise SplatError(f"must be >= 0, got {getattr(self, name)}", field=name)
        for name in ("refine", "final_refine", "polish"):
            r = getattr(self, name)
            for sub, ok, need in (("steps", r.steps >= 0, ">= 0"), ("lr", r.lr >= 0.0, ">= 0"),
                                  ("final_lr_fraction", r.final_lr_fraction >= 0.0, ">= 0"),
                                  ("samples", r.samples >= 1, ">= 1"),
                                  ("candidates", r.candidates is None or r.candidates >= 1, ">= 1 (or None)")):
                if not ok:
                    raise SplatError(f"must be {need}, got {getattr(r, sub)}", field=f"{name}.{sub}")
        try:
            self.placement.validate()
        except SplatError as err:
            raise SplatError(err.message, field=f"placement.{err.field}") from None


@dataclass(frozen=True)
class SearchResult:
    """The best genome found, decoded.

    ``params`` holds every parameter of the space (inactive ones at their defaults); ``active`` says which
    are active. ``placement``: ``p_scan = translation + scale * Rz(yaw) @ p_program``.
    """

    program: str
    params: dict[str, Any]
    active: dict[str, bool]
    translation: tuple[float, float, float]
    yaw: float  # radians about +Z
    scale: float
    fitness: float  # the winner's comparison score (SearchSettings.compare_samples) on the final scan points
    history: tuple[float, ...]  # [generations run] best fitness after each generation
    evaluations: int  # distinct genomes scored
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "splat.search/1",
            "program": self.program,
            "params": self.params,
            "active": self.active,
            "placement": {"translation": list(self.translation), "yaw": self.yaw, "scale": self.scale},
            "fitness": self.fitness,
            "history": list(self.history),
            "evaluations": self.evaluations,
            "seed": self.seed,
        }


def _select(fitness: Tensor, n: int, settings: SearchSettings, generator: torch.Generator) -> Tensor:
    """Indices ``[n]`` of parents (fitness lower is better; +inf never wins against a finite one)."""
    b = fitness.shape[0]
    if settings.selection == "truncation":
        k = max(2, int(math.ceil(settings.truncation_fraction * b)))
        order = torch.argsort(fitness, stable=True)[:k]
        return order[torch.randint(0, k, (n,), generator=generator)]
    cand = torch.randint(0, b, (n, settings.tournament_size), generator=generator)
    best = torch.argmin(fitness[cand], dim=1)
    return cand[torch.arange(n), best]


class _Scorer:
    """Fitness with a cache keyed by canonical genome: no genome is scored twice."""

    def __init__(self, program, genomes, target, settings: SearchSettings, device, views=None, margin=None):
        self.program, self.genomes, self.target, self.settings, self.device = program, genomes, target, settings, device
        self.views, self.margin = views, margin
        self.cache: dict[tuple, float] = {}
        # Best genome scored so far for each structure (discrete genes): (fitness, continuous genes).
        self.best_by_structure: dict[tuple, tuple[float, Tensor]] = {}

    def _note(self, pop: Population, fitness: list[float]) -> None:
        for disc, cont, f in zip(pop.disc.tolist(), pop.cont, fitness):
            key = tuple(disc)
            if math.isfinite(f) and (key not in self.best_by_structure or f < self.best_by_structure[key][0]):
                self.best_by_structure[key] = (f, cont.clone())

    def best_structures(self, n: int, exclude: tuple | None = None) -> Population:
        """The best scored genome of each of the ``n`` best structures (other than ``exclude``)."""
        ranked = sorted((f, key) for key, (f, _) in self.best_by_structure.items() if key != exclude)[:n]
        if not ranked:
            return Population(torch.zeros(0, self.genomes.n_disc, dtype=torch.int64),
                              torch.zeros(0, self.genomes.n_cont, dtype=torch.float64))
        return Population(torch.tensor([key for _, key in ranked], dtype=torch.int64).view(len(ranked), -1),
                          torch.stack([self.best_by_structure[key][1] for _, key in ranked]))

    def __call__(self, pop: Population, generator: torch.Generator) -> Tensor:
        keys = self.genomes.keys(pop)
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        # Duplicates inside this batch are scored once.
        first: dict[tuple, int] = {}
        todo = [i for i in todo if first.setdefault(keys[i], i) == i]
        if todo:
            with torch.no_grad():
                fit = population_fitness(self.program, self.genomes, take(pop, todo), self.target,
                                         self.settings.samples, generator, self.settings.chamfer, views=self.views,
                                         target_margin=self.margin, device=self.device)
            for i, f in zip(todo, fit.tolist()):
                self.cache[keys[i]] = f
            self._note(take(pop, todo), fit.tolist())
        return torch.tensor([self.cache[k] for k in keys], dtype=torch.float64)

    def store(self, pop: Population, fitness: Tensor) -> None:
        for k, f in zip(self.genomes.keys(pop), fitness.tolist()):
            self.cache[k] = f
        self._note(pop, fitness.tolist())


def _margins(target: Tensor, settings: SearchSettings) -> Tensor | None:
    """Per scan point margins of the surface -> scan term (see ``SearchSettings.margin_scale``)."""
    if settings.margin_scale is None:
        return None
    m = settings.margin_scale * local_spacing(target)
    return m * m if settings.chamfer.squared else m


def _first_of_each_structure(pop: Population, order: list[int], k: int) -> list[int]:
    """The first index, in ``order``, of each of the first ``k`` distinct structures (discrete genes)."""
    out, seen = [], set()
    for i in order:
        key = tuple(pop.disc[i].tolist())
        if key not in seen:
            seen.add(key)
            out.append(i)
            if len(out) == k:
                break
    return out


def _structure_leaders(pop: Population, fitness: Tensor, k: int) -> Tensor:
    """Indices of the best (finite) genome of each of the ``k`` best distinct structures of ``pop``."""
    order = [i for i in torch.argsort(fitness, stable=True).tolist() if math.isfinite(float(fitness[i]))]
    return torch.tensor(_first_of_each_structure(pop, order, k), dtype=torch.int64)


def search(
    program: ShapeProgram,
    points,
    settings: SearchSettings = SearchSettings(),
    *,
    device: torch.device | str = "cpu",
    scan_file: str | None = None,
    views: ScanViews | None = None,
) -> SearchResult:
    """Find the discrete structure, continuous parameters and placement of ``program`` that fit a scan.

    Args:
        program: the shape program to fit.
        points: the scan, ``[P, 3]`` (tensor or array) in metres; non-finite rows are dropped.
        settings: search hyperparameters (including the seed).
        device: where programs are evaluated (the KD-tree Chamfer runs on the CPU).
        scan_file: the scan's file, named in errors.
        views: the depth views the scan was fused from (:class:`splat.search.views.ScanViews`), when
            known: surfaces no view could have seen (a table top's underside) are then not asked to
            have scan points near them. Without views every surface is.

    Raises:
        SplatError: the scan is empty, all NaN, or has too few points; a parameter range is empty; the
            space has nothing to search; a setting is out of range (:meth:`SearchSettings.validate`).
    """
    settings.validate()
    scan = prepare_scan(points, file=scan_file)
    box = PlacementBox.from_scan(scan, margin=settings.placement.margin, z_margin=settings.placement.z_margin,
                                 snap_to_floor=settings.placement.snap_to_floor,
                                 yaw_range=settings.placement.yaw_range,
                                 log_scale_range=settings.placement.log_scale_range, floor=settings.placement.floor)
    genomes = GenomeSpace(program.space, box, file=program.source)
    gen = torch.Generator().manual_seed(settings.seed)
    target = subsample(scan, settings.target_points, gen).to(device)
    margin = _margins(target, settings)
    scorer = _Scorer(program, genomes, target, settings, device, views, margin)

    n = settings.population
    parts = [genomes.defaults(1)] if settings.seed_defaults else []
    parts.append(genomes.random(n - len(parts), gen))
    pop = cat(parts)

    def run_ga(pop: Population, generations: int, label: str) -> tuple[Population, float, list[float]]:
        history: list[float] = []
        best_pop, best_fit = take(pop, [0]), math.inf
        stale = 0
        bar = None
        if settings.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=generations, desc=f"search {program.name}{label}", unit="gen", leave=False)
        try:
            for g in range(generations):
                fitness = scorer(pop, gen)
                # Lamarckian refinement of the best genome of the best few structures, batched, written back.
                top = _structure_leaders(pop, fitness, settings.refine_top)
                if top.numel() > 0 and settings.refine.steps > 0:
                    refined = refine_population(program, genomes, take(pop, top), target, settings.refine,
                                                settings.chamfer, gen, views=views, target_margin=margin,
                                                device=device)
                    with torch.no_grad():
                        rfit = population_fitness(program, genomes, refined, target, settings.samples, gen,
                                                  settings.chamfer, views=views, target_margin=margin,
                                                  device=device).double()
                    better = rfit < fitness[top]
                    pop = Population(pop.disc.clone(), pop.cont.clone())
                    pop.cont[top[better]] = refined.cont[better]
                    fitness = fitness.clone()
                    fitness[top[better]] = rfit[better]
                    scorer.store(take(pop, top[better]), rfit[better])
                order = torch.argsort(fitness, stable=True)
                if float(fitness[order[0]]) < best_fit * (1 - 1e-4):
                    stale = 0
                else:
                    stale += 1
                if float(fitness[order[0]]) < best_fit:
                    best_fit = float(fitness[order[0]])
                    best_pop = take(pop, order[:1])
                history.append(best_fit)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(best=f"{best_fit:.4g}")
                if stale >= settings.patience or g == generations - 1:
                    break
                pop = _next_generation(pop, fitness, order, genomes, scorer, settings, gen)
        finally:
            if bar is not None:
                bar.close()
        return best_pop, best_fit, history

    best_pop, best_fit, history = run_ga(pop, settings.generations, "")
    turned = _turned(genomes, best_pop)
    if settings.turned_generations > 0 and turned.disc.shape[0]:
        # A second, shorter GA in the other half-turn, seeded with the turned winner (see _turned).
        pop2 = genomes.random(n - 1, gen)
        k = genomes.n_program_cont + 3
        jitter = 0.01 * torch.randn(n - 1, generator=gen, dtype=torch.float64)
        pop2.cont[:, k] = (turned.cont[0, k] + jitter).clamp(0, 1)
        pop2 = cat([turned, genomes.canonical(pop2)])
        best2, fit2, history2 = run_ga(pop2, settings.turned_generations, " (turned)")
        history += [min(best_fit, h) for h in history2]
        if fit2 < best_fit:
            best_pop, best_fit = best2, fit2

    # Structure polishing around the GA's winner; its best few structures are the finalists.
    final_target = subsample(scan, settings.final_target_points, gen).to(device)
    finalists = best_pop
    for _ in range(settings.polish_rounds):
        ranked = _polish(program, genomes, best_pop, target, settings, scorer, gen, device, views, margin)
        changed = ranked.disc[0].tolist() != best_pop.disc[0].tolist()
        best_pop, finalists = take(ranked, [0]), _first_structures(ranked, settings.final_structures)
        if not changed:
            break
    # Final, longer refinement of the finalists (batched) against more scan points; the best wins.
    final_margin = _margins(final_target, settings)
    refined = refine_population(program, genomes, finalists, final_target, settings.final_refine,
                                settings.final_chamfer or settings.chamfer, gen, views=views,
                                target_margin=final_margin, device=device)
    everyone = cat([refined, finalists])
    score = _compare(program, genomes, everyone, final_target, settings.chamfer, settings.compare_samples, device,
                     views, final_margin)
    i = int(torch.argmin(score))
    final, fitness = take(everyone, [i]), float(score[i])
    return _result(program, genomes, final, fitness, history, len(scorer.cache), settings.seed)


def _neighbours(genomes: GenomeSpace, best: Population) -> Population:
    """The incumbent (row 0) and every genome one discrete change away from it, canonical and distinct."""
    da, _ = genomes.active_masks(best)
    rows = [best]
    for j in range(genomes.n_disc):
        if not bool(da[0, j]):
            continue
        for v in range(int(genomes.disc_low[j]), int(genomes.disc_high[j]) + 1):
            if v != int(best.disc[0, j]):
                disc = best.disc.clone()
                disc[0, j] = v
                rows.append(Population(disc, best.cont.clone()))
    pop = genomes.canonical(cat(rows))
    keys = genomes.keys(pop)
    keep = [i for i, k in enumerate(keys) if keys.index(k) == i]
    return take(pop, keep)


def _compare(program, genomes: GenomeSpace, pop: Population, target: Tensor, chamfer: ChamferSettings,
             samples: int, device, views=None, margin=None) -> Tensor:
    """Deterministic comparison scores ``[B]`` (lower is better): ``chamfer`` with exact scan -> surface
    distances and stratified surface points at the density that gives genome 0 ``samples`` points."""
    with torch.no_grad():
        surf = population_surface(program, genomes, take(pop, [0]), 1, torch.Generator(), device=device)
        area = float((face_areas(surf.verts, surf.faces) * surf.face_active).sum())
        if not area > 0:
            return torch.full((pop.disc.shape[0],), math.inf, dtype=torch.float64)
        return population_fitness(program, genomes, pop, target, 1, torch.Generator(), chamfer,
                                  density=samples / area, views=views, target_margin=margin, device=device).double()


def _turned(genomes: GenomeSpace, pop: Population) -> Population:
    """``pop`` turned half a turn about +Z (yaw + pi, where the yaw range allows it).

    A GA that settles on an object turned around can rarely walk back: the other side may need several
    discrete changes at once (a cabinet without back but with doors, turned, looks much like one with a
    back and open shelves), so polishing also tries the turned winner and turned best structures.
    """
    r = genomes.placement.yaw_range
    if r <= 0 or pop.disc.shape[0] == 0:
        return take(pop, [])
    k = genomes.n_program_cont + 3
    yaw = (2 * pop.cont[:, k] - 1) * r + math.pi
    yaw = torch.remainder(yaw + math.pi, 2 * math.pi) - math.pi
    ok = yaw.abs() <= r
    cont = pop.cont.clone()
    cont[:, k] = (yaw / r + 1) / 2
    return take(Population(pop.disc, cont), torch.nonzero(ok)[:, 0])


def _first_structures(pop: Population, k: int) -> Population:
    """The first genome of each of the first ``k`` distinct structures of ``pop`` (in order)."""
    return take(pop, _first_of_each_structure(pop, list(range(pop.disc.shape[0])), k))


def _polish(program, genomes: GenomeSpace, best: Population, target: Tensor, settings: SearchSettings,
            scorer: _Scorer, gen: torch.Generator, device, views=None, margin=None) -> Population:
    """One round of structure polishing (see ``SearchSettings.polish_rounds``): the refined candidates,
    best first (the refined incumbent first among equals)."""
    others = scorer.best_structures(settings.polish_structures, exclude=tuple(best.disc[0].tolist()))
    cand = cat([_neighbours(genomes, best), others, _turned(genomes, cat([best, others]))])
    keys = genomes.keys(cand)
    cand = take(cand, [i for i, k in enumerate(keys) if keys.index(k) == i])
    refined = refine_population(program, genomes, cand, target, settings.polish, settings.chamfer, gen,
                                views=views, target_margin=margin, device=device)
    score = _compare(program, genomes, refined, target, settings.chamfer, settings.compare_samples, device, views,
                     margin)
    return take(refined, torch.argsort(score, stable=True))


def _next_generation(pop, fitness, order, genomes: GenomeSpace, scorer: _Scorer, settings: SearchSettings,
                     gen: torch.Generator) -> Population:
    n = settings.population
    elites = take(pop, order[: settings.elites])
    seen = set(genomes.keys(elites))
    children: list[Population] = []
    need = n - settings.elites
    for attempt in range(8):
        m = need - sum(c.disc.shape[0] for c in children)
        if m <= 0:
            break
        pa = take(pop, _select(fitness, m, settings, gen))
        pb = take(pop, _select(fitness, m, settings, gen))
        cross = torch.rand(m, generator=gen) < settings.crossover_rate
        kids = genomes.crossover(pa, pb, gen)
        kids = Population(torch.where(cross[:, None], kids.disc, pa.disc), torch.where(cross[:, None], kids.cont, pa.cont))
        # Later attempts mutate harder so duplicates of cached genomes are escaped.
        kids = genomes.mutate(kids, gen, rate=settings.mutation_rate * (1 + attempt), sigma=settings.mutation_sigma)
        keep = []
        for i, key in enumerate(genomes.keys(kids)):
            if key not in seen and (key not in scorer.cache or attempt == 7):
                seen.add(key)
                keep.append(i)
        if keep:
            children.append(take(kids, keep))
    got = sum(c.disc.shape[0] for c in children)
    if got < need:  # fill with fresh random genomes (rare: tiny spaces)
        children.append(genomes.random(need - got, gen))
    return cat([elites] + children)


def _result(program, genomes: GenomeSpace, pop: Population, fitness: float, history, evaluations, seed) -> SearchResult:
    params = genomes.assignments(pop)[0]
    active = program.space.active(params)
    placement = genomes.placement_of(pop.cont, dtype=torch.float64)
    translation = placement.translation[0].clone()
    if genomes.placement.snap:  # the z that snapping to the floor applied
        with torch.no_grad():
            mesh = program.evaluate(genomes.params(pop, dtype=torch.float64), dtype=torch.float64,
                                    validate=False).realize()
            z = place(mesh.verts, placement)[0, :, 2][mesh.vert_active[0]]
        if z.numel():
            translation[2] += float(placement.translation[0, 2]) - float(z.min())
    return SearchResult(
        program=program.name,
        params=params,
        active=active,
        translation=tuple(float(v) for v in translation),
        yaw=float(placement.yaw[0]),
        scale=float(placement.scale[0]),
        fitness=fitness,
        history=tuple(history),
        evaluations=evaluations,
        seed=seed,
    )
