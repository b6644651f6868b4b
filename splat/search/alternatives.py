"""Alternatives to a search winner that the depth scan cannot tell apart.

A closed box scanned by a depth camera looks the same turned a quarter or half turn: its drawers or doors
stand out of the front by a centimetre or two, which is about the sensor's noise. The structure search
(:func:`splat.search.search`) then returns one of several equally good fits. This module lists the
others so that another signal (the photos: :mod:`splat.train.edges`) can choose: the winner turned a
quarter, half and three quarters of a turn about +Z around its centre; for a quarter turn the footprint
parameters (``Width`` along program x, ``Depth`` along program y, the library's convention) are swapped,
so the turned box covers the same floor area; and each of those with one discrete change
(:func:`neighbours`). Every candidate's continuous parameters and placement are
refined against the scan (as the search's polishing does) and scored with the search's deterministic
comparison score (lower is better).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from splat.program import ShapeProgram
from splat.search.fitness import prepare_scan, subsample
from splat.search.ga import SearchSettings, _compare, _margins
from splat.search.genome import GenomeSpace, PlacementBox, Population, cat
from splat.search.refine import refine_population
from splat.search.views import ScanViews

FOOTPRINT = ("Width", "Depth")
"""Parameters swapped by a quarter turn: a program's extent along its x and y axes."""


@dataclass(frozen=True)
class Candidate:
    """One fit: parameters, placement ``p_scan = translation + Rz(yaw) @ p_program``, and its score."""

    assignment: dict[str, Any]
    translation: tuple[float, float, float]
    yaw: float
    score: float = math.inf  # the search's comparison score after refinement (lower is better)
    label: str = ""


def _wrap(yaw: float) -> float:
    return (yaw + math.pi) % (2 * math.pi) - math.pi


def turns(program: ShapeProgram, winner: Candidate) -> list[Candidate]:
    """The winner and its quarter, half and three-quarter turns about +Z (see the module docstring)."""
    space = program.space
    swap = all(n in space.names and space[n].type == "float" for n in FOOTPRINT)
    out = [Candidate(dict(winner.assignment), winner.translation, winner.yaw, label="winner")]
    for k in (1, 2, 3):
        a = dict(winner.assignment)
        if k % 2 == 1:
            if not swap:
                continue
            w, d = (space[n] for n in FOOTPRINT)
            a[w.name] = min(max(float(winner.assignment[d.name]), w.low), w.high)
            a[d.name] = min(max(float(winner.assignment[w.name]), d.low), d.high)
        out.append(Candidate(a, winner.translation, _wrap(winner.yaw + k * math.pi / 2), label=f"turned {90 * k}"))
    return out


def neighbours(program: ShapeProgram, base: Candidate) -> list[Candidate]:
    """``base`` with one active discrete parameter set to each of its other values."""
    space = program.space
    active = space.active(base.assignment)
    out = []
    for p in space:
        if p.type == "float" or not active.get(p.name, False) or p.low == p.high:
            continue
        for v in p.values():
            if v != base.assignment[p.name]:
                a = dict(base.assignment)
                a[p.name] = v
                out.append(Candidate(a, base.translation, base.yaw, label=f"{base.label}, {p.name} {v}"))
    return out


class Refiner:
    """Refines and scores candidates against one scan with the search's settings."""

    def __init__(self, program: ShapeProgram, scan, settings: SearchSettings, views: ScanViews | None = None,
                 seed: int = 0):
        self.program, self.settings, self.views = program, settings, views
        scan = prepare_scan(scan)
        s = settings.placement
        self.box = PlacementBox.from_scan(scan, margin=s.margin, z_margin=s.z_margin, snap_to_floor=s.snap_to_floor,
                                          yaw_range=math.pi, log_scale_range=0.0, floor=s.floor)
        self.genomes = GenomeSpace(program.space, self.box, file=program.source)
        self.gen = torch.Generator().manual_seed(seed)
        self.target = subsample(scan, settings.final_target_points, self.gen)
        self.margin = _margins(self.target, settings)

    def encode(self, c: Candidate) -> Population:
        g = self.genomes
        disc = torch.tensor([[int(c.assignment[p.name]) for p in g.discrete]], dtype=torch.int64)
        cont = [(float(c.assignment[p.name]) - p.low) / (p.high - p.low) for p in g.continuous]
        lo = torch.tensor(self.box.translation_low, dtype=torch.float64)
        hi = torch.tensor(self.box.translation_high, dtype=torch.float64)
        span = hi - lo
        t = torch.where(span > 0, (torch.tensor(c.translation, dtype=torch.float64) - lo) / span.clamp_min(1e-12),
                        torch.full_like(span, 0.5))
        cont += t.clamp(0, 1).tolist() + [(_wrap(c.yaw) / math.pi + 1) / 2]
        return g.canonical(Population(disc, torch.tensor([cont], dtype=torch.float64)))

    def __call__(self, cands: list[Candidate]) -> list[Candidate]:
        """``cands`` refined (continuous parameters and placement, batched) and scored; where a refined
        genome scores worse than its start (sampling noise), the start is kept."""
        if not cands:
            return []
        pop = cat([self.encode(c) for c in cands])
        s = self.settings
        refined = refine_population(self.program, self.genomes, pop, self.target, s.polish, s.chamfer, self.gen,
                                    views=self.views, target_margin=self.margin)
        both = cat([refined, pop])
        score = _compare(self.program, self.genomes, both, self.target, s.chamfer, s.compare_samples, "cpu",
                         self.views, self.margin)
        n = len(cands)
        # a refinement can end a little worse than its start (sampling noise): keep the better of the two
        better = score[:n] <= score[n:]
        keep = torch.where(better, torch.arange(n), torch.arange(n) + n)
        score = score[keep]
        best = Population(both.disc[keep], both.cont[keep])
        placement = self.genomes.placement_of(best.cont, dtype=torch.float64)
        out = []
        for i, (c, a) in enumerate(zip(cands, self.genomes.assignments(best))):
            out.append(Candidate(a, tuple(float(x) for x in placement.translation[i]), float(placement.yaw[i]),
                                 float(score[i]), c.label))
        return out


def placement_of(c: Candidate) -> Tensor:
    """``[4, 4]`` float64 program -> world matrix of a candidate (unit scale)."""
    from splat.maths import placement_matrix

    return placement_matrix(torch.tensor(c.translation, dtype=torch.float64), torch.tensor(c.yaw, dtype=torch.float64),
                            torch.tensor(0.0, dtype=torch.float64))


__all__ = ["FOOTPRINT", "Candidate", "Refiner", "neighbours", "placement_of", "turns"]
