"""Gradient refinement of the continuous genes of a batch of genomes (Lamarckian step of the search).

Convention:
    The continuous genes (normalised float parameters and placement) of K genomes are optimised together
    with Adam on the sum of their fitnesses. The fitnesses are independent and Adam is elementwise, so
    this is exactly K independent optimisations run as one batched program evaluation per step. Genes
    inactive for a genome get no update; genes stay in [0, 1] (projected after each step). Discrete genes
    are not touched. Surface samples come from a seed drawn from the given generator, either the same
    draws at every step (default) or fresh ones (``RefineSettings.resample``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from splat.ops.chamfer import ChamferSettings
from splat.program import ShapeProgram
from splat.search.fitness import population_fitness
from splat.search.genome import GenomeSpace, Population


@dataclass(frozen=True)
class RefineSettings:
    """Adam on the continuous genes."""

    steps: int = 8
    """Adam steps."""
    lr: float = 0.03
    """Learning rate in normalised gene units (a gene spans [0, 1])."""
    final_lr_fraction: float = 1.0
    """The learning rate decays (cosine) to this fraction of ``lr`` by the last step."""
    samples: int = 1024
    """Surface points per genome and step."""
    candidates: int | None = None
    """None: exact scan -> surface distances (nearest active triangle); k: only the triangles of the k
    nearest surface samples are tried per scan point (see mesh_cloud_chamfer)."""
    resample: bool = False
    """Draw fresh surface samples at every step. False keeps the same draws (face choices and
    barycentric coordinates from one seed) for all steps, so the objective is deterministic and Adam
    settles instead of random-walking along flat valleys (e.g. height vs. vertical placement)."""


def refine_population(
    program: ShapeProgram,
    genomes: GenomeSpace,
    pop: Population,
    target: Tensor,
    settings: RefineSettings,
    chamfer: ChamferSettings,
    generator: torch.Generator,
    *,
    views=None,
    target_margin: Tensor | None = None,
    device: torch.device | str = "cpu",
) -> Population:
    """Return ``pop`` with its continuous genes refined by ``settings.steps`` Adam steps (batched).

    ``views`` (:class:`splat.search.views.ScanViews`) and ``target_margin``: see :func:`population_fitness`.
    """
    if settings.steps <= 0 or pop.disc.shape[0] == 0:
        return pop
    _, active = genomes.active_masks(pop)
    mask = active.to(torch.float64)
    cont = pop.cont.clone().requires_grad_(True)
    opt = torch.optim.Adam([cont], lr=settings.lr)
    draw_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    draws = torch.Generator().manual_seed(draw_seed)
    for step in range(settings.steps):
        if not settings.resample:
            draws.manual_seed(draw_seed)
        frac = step / max(settings.steps - 1, 1)
        scale = settings.final_lr_fraction + (1 - settings.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * frac))
        for group in opt.param_groups:
            group["lr"] = settings.lr * scale
        loss = population_fitness(program, genomes, pop, target, settings.samples, draws, chamfer,
                                  cont=cont, candidates=settings.candidates, views=views,
                                  target_margin=target_margin, device=device)
        finite = torch.isfinite(loss)
        if not bool(finite.any()):
            break
        opt.zero_grad(set_to_none=False)
        torch.where(finite, loss, torch.zeros_like(loss)).sum().backward()
        with torch.no_grad():
            cont.grad.mul_(mask)
            cont.grad.nan_to_num_(0.0, 0.0, 0.0)
        opt.step()
        with torch.no_grad():
            cont.clamp_(0.0, 1.0)
    return genomes.canonical(Population(pop.disc, cont.detach()))
