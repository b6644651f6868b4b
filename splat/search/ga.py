"""Genetic structure search over a ShapeProgram's ParamSpace, with Lamarckian gradient refinement.

Convention:
    Genomes, placement and fitness are described in :mod:`splat.search.genome` and
    :mod:`splat.search.fitness` (fitness = Chamfer distance to the scan, lower is better, +inf without
    geometry). One generation: score the genomes not yet in the cache (one batched program evaluation
    and one packed Chamfer call), refine the continuous genes of the best few with Adam and write the
    refined genes back (Lamarckian), keep the elites, and fill the rest by selection (tournament or
    truncation), uniform crossover and per-gene mutation. Stop after ``generations`` or when the best
    fitness has not improved for ``patience`` generations; then refine the winner longer. Everything is
    seeded from ``SearchSettings.seed`` (own ``torch.Generator``s; no global seeding), so a search is
    deterministic for a seed on a given machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from splat.ops.chamfer import ChamferSettings
from splat.program import ShapeProgram
from splat.search.fitness import place, population_fitness, prepare_scan, subsample
from splat.search.genome import GenomeSpace, PlacementBox, Population, cat, take
from splat.search.refine import RefineSettings, refine_population


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


@dataclass(frozen=True)
class SearchSettings:
    """Hyperparameters of :func:`search`."""

    seed: int = 0
    population: int = 32
    generations: int = 20
    elites: int = 2
    """Best genomes copied unchanged into the next generation."""
    selection: Literal["tournament", "truncation"] = "tournament"
    tournament_size: int = 3
    truncation_fraction: float = 0.5
    """Truncation selection draws parents uniformly from this best fraction."""
    crossover_rate: float = 0.9
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
    """Genomes refined (Lamarckian) per generation."""
    refine: RefineSettings = field(default_factory=lambda: RefineSettings(steps=6, lr=0.03, samples=512))
    final_refine: RefineSettings = field(
        default_factory=lambda: RefineSettings(steps=60, lr=0.02, final_lr_fraction=0.05, samples=2048,
                                               candidates=4)
    )
    final_target_points: int = 8192
    polish_rounds: int = 2
    """Rounds of structure polishing after the GA: every single discrete change of the winner (each
    active discrete gene set to each other value) is refined with ``polish`` and scored against the
    incumbent with the same draws; the best replaces the winner. 0 disables it."""
    polish: RefineSettings = field(default_factory=lambda: RefineSettings(steps=25, lr=0.05, final_lr_fraction=0.1,
                                                                          samples=1024))
    polish_eval_samples: int = 8192
    """Surface points per candidate when polishing compares structures (small parts such as drawer
    handles change the fitness by little, so the comparison needs low sampling noise)."""
    """Scan points used by the final refinement of the winner."""
    chamfer: ChamferSettings = field(default_factory=lambda: ChamferSettings(squared=False))
    final_chamfer: ChamferSettings | None = field(
        default_factory=lambda: ChamferSettings(squared=False, direction="y_to_x"))
    """Objective of the final refinement (None: ``chamfer``). Default: scan -> surface only, with exact
    triangle distances: once the structure is fixed it is smooth and unbiased, whereas the surface ->
    scan term is rough at the scale of the scan's point spacing and hides mm-size changes of small parts."""
    placement: PlacementSettings = field(default_factory=PlacementSettings)
    progress: bool = True
    """Show a tqdm progress bar."""


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
    fitness: float  # Chamfer (SearchSettings.chamfer) of the winner after the final refinement, final points
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


def _check_settings(s: SearchSettings) -> None:
    if s.population < 2 or s.generations < 1:
        raise ValueError("population must be >= 2 and generations >= 1")
    if not 0 <= s.elites < s.population:
        raise ValueError("elites must lie in [0, population)")
    if s.selection not in ("tournament", "truncation"):
        raise ValueError(f"unknown selection {s.selection!r}")


class _Scorer:
    """Fitness with a cache keyed by canonical genome: no genome is scored twice."""

    def __init__(self, program, genomes, target, settings: SearchSettings, device):
        self.program, self.genomes, self.target, self.settings, self.device = program, genomes, target, settings, device
        self.cache: dict[tuple, float] = {}

    def __call__(self, pop: Population, generator: torch.Generator) -> Tensor:
        keys = self.genomes.keys(pop)
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        # Duplicates inside this batch are scored once.
        first: dict[tuple, int] = {}
        todo = [i for i in todo if first.setdefault(keys[i], i) == i]
        if todo:
            with torch.no_grad():
                fit = population_fitness(self.program, self.genomes, take(pop, todo), self.target,
                                         self.settings.samples, generator, self.settings.chamfer, device=self.device)
            for i, f in zip(todo, fit.tolist()):
                self.cache[keys[i]] = f
        return torch.tensor([self.cache[k] for k in keys], dtype=torch.float64)

    def store(self, pop: Population, fitness: Tensor) -> None:
        for k, f in zip(self.genomes.keys(pop), fitness.tolist()):
            self.cache[k] = f


def search(
    program: ShapeProgram,
    points,
    settings: SearchSettings = SearchSettings(),
    *,
    device: torch.device | str = "cpu",
    scan_file: str | None = None,
) -> SearchResult:
    """Find the discrete structure, continuous parameters and placement of ``program`` that fit a scan.

    Args:
        program: the shape program to fit.
        points: the scan, ``[P, 3]`` (tensor or array) in metres; non-finite rows are dropped.
        settings: search hyperparameters (including the seed).
        device: where programs are evaluated (the KD-tree Chamfer runs on the CPU).
        scan_file: the scan's file, named in errors.

    Raises:
        SplatError: the scan is empty, all NaN, or has too few points; a parameter range is empty; the
            space has nothing to search.
    """
    _check_settings(settings)
    scan = prepare_scan(points, file=scan_file)
    box = PlacementBox.from_scan(scan, margin=settings.placement.margin, z_margin=settings.placement.z_margin,
                                 snap_to_floor=settings.placement.snap_to_floor,
                                 yaw_range=settings.placement.yaw_range,
                                 log_scale_range=settings.placement.log_scale_range)
    genomes = GenomeSpace(program.space, box, file=program.source)
    gen = torch.Generator().manual_seed(settings.seed)
    target = subsample(scan, settings.target_points, gen).to(device)
    scorer = _Scorer(program, genomes, target, settings, device)

    n = settings.population
    parts = [genomes.defaults(1)] if settings.seed_defaults else []
    parts.append(genomes.random(n - len(parts), gen))
    pop = cat(parts)

    history: list[float] = []
    best_pop, best_fit = take(pop, [0]), math.inf
    stale = 0
    bar = None
    if settings.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.generations, desc=f"search {program.name}", unit="gen", leave=False)
    try:
        for g in range(settings.generations):
            fitness = scorer(pop, gen)
            # Lamarckian refinement of the best few (finite) genomes, batched, written back.
            k = min(settings.refine_top, int(torch.isfinite(fitness).sum()))
            if k > 0 and settings.refine.steps > 0:
                top = torch.argsort(fitness, stable=True)[:k]
                refined = refine_population(program, genomes, take(pop, top), target, settings.refine,
                                            settings.chamfer, gen, device=device)
                with torch.no_grad():
                    rfit = population_fitness(program, genomes, refined, target, settings.samples, gen,
                                              settings.chamfer, device=device).double()
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
            if stale >= settings.patience or g == settings.generations - 1:
                break
            pop = _next_generation(pop, fitness, order, genomes, scorer, settings, gen)
    finally:
        if bar is not None:
            bar.close()

    # Final, longer refinement of the winner against more scan points.
    final_target = subsample(scan, settings.final_target_points, gen).to(device)
    for _ in range(settings.polish_rounds):
        best_pop, changed = _polish(program, genomes, best_pop, target, settings, gen, device)
        if not changed:
            break
    final_chamfer = settings.final_chamfer or settings.chamfer
    final = refine_population(program, genomes, best_pop, final_target, settings.final_refine, final_chamfer,
                              gen, device=device)
    with torch.no_grad():
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        f_new, f_old = (float(population_fitness(program, genomes, p, final_target, settings.final_refine.samples,
                                                 torch.Generator().manual_seed(seed), final_chamfer,
                                                 candidates=4, device=device)[0]) for p in (final, best_pop))
        if not f_new <= f_old:
            final = best_pop
        fitness = float(population_fitness(program, genomes, final, final_target, settings.final_refine.samples,
                                           torch.Generator().manual_seed(seed), settings.chamfer, candidates=4,
                                           device=device)[0])
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


def _polish(program, genomes: GenomeSpace, best: Population, target: Tensor, settings: SearchSettings,
            gen: torch.Generator, device) -> tuple[Population, bool]:
    """One round of structure polishing (see ``SearchSettings.polish_rounds``); returns (best, changed)."""
    cand = _neighbours(genomes, best)
    if cand.disc.shape[0] == 1:
        return best, False
    refined = refine_population(program, genomes, cand, target, settings.polish, settings.chamfer, gen,
                                device=device)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    with torch.no_grad():
        fit = population_fitness(program, genomes, refined, target, settings.polish_eval_samples,
                                 torch.Generator().manual_seed(seed), settings.chamfer, candidates=4, device=device)
    i = int(torch.argmin(fit))
    return take(refined, [i]), i != 0


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
