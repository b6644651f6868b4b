"""Choosing the shape program: the structure search of every library program on one scan, ranked.

Convention:
    Every candidate program gets a cheap first round (:func:`first_round_settings`: a short GA, one
    polishing round, a short final refinement, no turned GA); the ``finalists`` best by that round's
    fitness, and only those within ``finalist_ratio`` of the best, get the full search with the caller's
    settings; the winner is the finalist with the lowest full-search fitness. Fitness is the search's
    comparison score (:func:`splat.search.search`: Chamfer-L1 in metres between the scan and the
    program's surface, the same scan points and the same views for every program), so programs are
    compared on one scale; lower is better. The ranking's ``margin`` is the runner-up's fitness over the
    winner's minus one, both from the last round both took part in (the full search when two finalists
    ran, else the first round). Every search gets the same seed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from splat.errors import SplatError
from splat.program import ShapeProgram
from splat.search.ga import SearchResult, SearchSettings, search
from splat.search.views import ScanViews


@dataclass(frozen=True)
class ChoiceSettings:
    """How :func:`choose_program` spends its time."""

    population: int = 16
    """First round: genomes per generation."""
    generations: int = 5
    """First round: GA generations."""
    polish_rounds: int = 1
    """First round: structure polishing rounds."""
    final_steps: int = 30
    """First round: Adam steps of the final refinement."""
    polish_steps: int = 10
    """First round: Adam steps per candidate of a polishing round (the full search's ``polish.steps`` is
    40). Polishing was two thirds of a first-round search; ranking programs needs the better structure
    found, not its last millimetre."""
    finalists: int = 2
    """Programs that get the full search (the best of the first round)."""
    finalist_ratio: float = 1.25
    """Only programs whose first-round fitness is within this factor of the best one's are finalists."""

    def validate(self) -> None:
        """Raise :class:`SplatError` naming the field for an out-of-range value."""
        for name, ok, need in (("population", self.population >= 2, ">= 2"),
                               ("generations", self.generations >= 1, ">= 1"),
                               ("polish_rounds", self.polish_rounds >= 0, ">= 0"),
                               ("final_steps", self.final_steps >= 0, ">= 0"),
                               ("polish_steps", self.polish_steps >= 1, ">= 1"),
                               ("finalists", self.finalists >= 1, ">= 1"),
                               ("finalist_ratio", self.finalist_ratio >= 1.0, ">= 1")):
            if not ok:
                raise SplatError(f"must be {need}, got {getattr(self, name)}", field=name)


@dataclass(frozen=True)
class Candidate:
    """One program's row of the ranking."""

    name: str
    first_fitness: float  # first-round fitness (comparison score, metres); inf: no geometry fitted
    first_seconds: float
    fitness: float | None  # full-search fitness (finalists only)
    seconds: float | None  # full-search wall time (finalists only)
    structure: dict[str, Any]  # the active discrete parameters of its best genome (full search if run)

    def as_dict(self) -> dict[str, Any]:
        def num(v):
            return v if v is None or math.isfinite(v) else None

        return {"name": self.name, "first_fitness": num(self.first_fitness), "first_seconds": self.first_seconds,
                "fitness": num(self.fitness), "seconds": self.seconds, "structure": self.structure}


@dataclass(frozen=True)
class ProgramChoice:
    """The chosen program, its full-search result and the ranking of every candidate (best first)."""

    program: ShapeProgram
    result: SearchResult
    ranking: tuple[Candidate, ...]
    margin: float  # runner-up fitness / winner fitness - 1 (inf with a single candidate)
    seconds: float  # wall time of the whole choice (both rounds)
    first_round_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (``splat.choice/1``): the ranking, margin and timings; the winner's search result."""
        return {"format": "splat.choice/1", "program": self.program.name,
                "margin": self.margin if math.isfinite(self.margin) else None,
                "seconds": self.seconds, "first_round_seconds": self.first_round_seconds,
                "ranking": [c.as_dict() for c in self.ranking], "result": self.result.to_dict()}

    def summary(self) -> str:
        """A few lines: the ranking with both rounds' fitness."""
        lines = [f"program choice: {self.program.name} (margin {self.margin:.1%}, {self.seconds:.1f} s, "
                 f"first round {self.first_round_seconds:.1f} s)"]
        for i, c in enumerate(self.ranking):
            full = f"full {c.fitness * 1000:.3f} mm ({c.seconds:.1f} s)" if c.fitness is not None else ""
            lines.append(f"  {i + 1}. {c.name:<10} first {c.first_fitness * 1000:.3f} mm ({c.first_seconds:.1f} s)  {full}")
        return "\n".join(lines)


def first_round_settings(settings: SearchSettings, choice: ChoiceSettings) -> SearchSettings:
    """The cheap first-round version of ``settings`` (same seed, scoring and placement): ``choice``'s
    sizes, but never more than half the full search's population, a quarter of its generations and a
    fifth of its final steps (so the first round stays a fixed fraction of a shrunk search too), and at
    most ``choice.polish_steps`` refinement steps per polishing candidate."""
    population = max(2, min(choice.population, max(4, settings.population // 2)))
    generations = min(choice.generations, max(2, settings.generations // 4))
    final_steps = min(choice.final_steps, max(1, settings.final_refine.steps // 5))
    return dataclasses.replace(
        settings,
        population=population,
        generations=generations,
        elites=min(settings.elites, population - 1),
        patience=min(settings.patience, max(2, generations // 2)),
        turned_generations=0,
        polish_rounds=choice.polish_rounds,
        polish_structures=min(settings.polish_structures, 2),
        polish=dataclasses.replace(settings.polish, steps=min(settings.polish.steps, choice.polish_steps)),
        final_structures=1,
        final_refine=dataclasses.replace(settings.final_refine, steps=final_steps),
        progress=False,
    )


def _structure(result: SearchResult, program: ShapeProgram) -> dict[str, Any]:
    return {p.name: result.params[p.name] for p in program.space.params
            if p.type != "float" and result.active.get(p.name, True)}


def choose_program(
    programs: Sequence[ShapeProgram],
    points,
    settings: SearchSettings = SearchSettings(),
    choice: ChoiceSettings = ChoiceSettings(),
    *,
    views: ScanViews | None = None,
    scan_file: str | None = None,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] | None = None,
) -> ProgramChoice:
    """Run the structure search of each of ``programs`` on the scan ``points`` ``[P, 3]`` and pick one.

    Args:
        programs: the candidates (e.g. every library program of a category: :func:`library_programs`).
        points, views, scan_file, device: as for :func:`splat.search.search`.
        settings: the full search's settings (finalists); the first round derives from them.
        choice: the first round and the number of finalists.
        log: called with one line per finished search (progress), or None.

    Raises:
        SplatError: no candidates, a bad setting, a bad scan (as :func:`splat.search.search`).
    """
    choice.validate()
    settings.validate()
    if not programs:
        raise SplatError("no candidate programs to choose from", field="program")
    names = [p.name for p in programs]
    if len(set(names)) != len(names):
        raise SplatError(f"candidate programs share a name: {names}", field="program")
    t0 = time.perf_counter()
    quick = first_round_settings(settings, choice)
    first: dict[str, tuple[SearchResult, float]] = {}
    for program in programs:
        t = time.perf_counter()
        res = search(program, points, quick, views=views, scan_file=scan_file, device=device)
        first[program.name] = (res, time.perf_counter() - t)
        if log is not None:
            log(f"first round {program.name}: fitness {res.fitness * 1000:.3f} mm ({first[program.name][1]:.1f} s)")
    t_first = time.perf_counter() - t0
    order = sorted(names, key=lambda n: (first[n][0].fitness, names.index(n)))
    best_first = first[order[0]][0].fitness
    if not math.isfinite(best_first):
        raise SplatError("no candidate program fitted any geometry to the scan", field="program")
    finalists = [n for n in order[: choice.finalists] if first[n][0].fitness <= best_first * choice.finalist_ratio]
    by_name = {p.name: p for p in programs}
    full: dict[str, tuple[SearchResult, float]] = {}
    for n in finalists:
        t = time.perf_counter()
        res = search(by_name[n], points, settings, views=views, scan_file=scan_file, device=device)
        full[n] = (res, time.perf_counter() - t)
        if log is not None:
            log(f"full search {n}: fitness {res.fitness * 1000:.3f} mm ({full[n][1]:.1f} s)")
    ranked = sorted(finalists, key=lambda n: (full[n][0].fitness, finalists.index(n)))
    ranked += [n for n in order if n not in full]
    winner = ranked[0]
    if len(finalists) >= 2:
        margin = full[ranked[1]][0].fitness / max(full[winner][0].fitness, 1e-12) - 1.0
    elif len(order) >= 2:
        margin = first[order[1]][0].fitness / max(first[winner][0].fitness, 1e-12) - 1.0
    else:
        margin = math.inf
    rows = []
    for n in ranked:
        res_full = full.get(n)
        res = res_full[0] if res_full else first[n][0]
        rows.append(Candidate(n, first[n][0].fitness, first[n][1], res_full[0].fitness if res_full else None,
                              res_full[1] if res_full else None, _structure(res, by_name[n])))
    return ProgramChoice(by_name[winner], full[winner][0], tuple(rows), margin, time.perf_counter() - t0, t_first)


def library_programs(category: str | None = None, *, field: str = "--category") -> list[ShapeProgram]:
    """The library's programs (of ``category`` when given), loaded: the candidates of ``--program auto``."""
    from splat.library import library

    return [e.load() for e in library(category, field=field)]
