"""Stage (a): find the program's discrete structure, continuous parameters and placement from the scan.

Calls :mod:`splat.search` with the config's ``search`` section (genetic search over the ParamSpace with
Lamarckian gradient refinement, Chamfer to the train-fused depth scan); the run fills in its seed, its
progress setting and, unless the section states one, the floor of the full fused scan. With
``structure.search = False`` the program's defaults are used, placed by matching bounding boxes (centre in
x/y, base on the scan's lowest point, no rotation/scale).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from splat.config import TrainConfig
from splat.program import ShapeProgram
from splat.train.data import TrainData


class SearchOutcome(NamedTuple):
    """The search's winner."""

    assignment: dict[str, Any]  # full parameter assignment, name -> python float/int/bool
    placement: Tensor  # [4, 4] float64 world <- program frame
    info: dict[str, Any]  # scalars worth logging (best fitness, generations, seconds)


@torch.no_grad()
def bbox_placement(program: ShapeProgram, assignment: dict[str, Any], scan: Tensor) -> Tensor:
    """[4, 4] translation putting the program's bounding box centre (x, y) and base (z) on the scan's."""
    geo = program.evaluate(assignment, dtype=torch.float64)
    rm = geo.realize()
    verts = rm.verts[0][rm.vert_active[0]]
    lo_p, hi_p = verts.amin(0), verts.amax(0)
    s = scan.double()
    lo_s, hi_s = s.amin(0), s.amax(0)
    m = torch.eye(4, dtype=torch.float64)
    m[:2, 3] = 0.5 * (lo_s[:2] + hi_s[:2]) - 0.5 * (lo_p[:2] + hi_p[:2])
    m[2, 3] = lo_s[2] - lo_p[2]
    return m


def search_stage(program: ShapeProgram, data: TrainData, cfg: TrainConfig, generator: torch.Generator) -> SearchOutcome:
    """Run the structure search (or the defaults when disabled) against ``data.scan``."""
    if not cfg.structure.search:
        assignment = dict(program.space.defaults())
        return SearchOutcome(assignment, bbox_placement(program, assignment, data.scan), {})
    return _run_search(program, data, cfg, generator)


def _search_inputs(data: TrainData, cfg: TrainConfig):
    """The run's search settings (seed, progress, floor filled in) and its scan views (None without depth)."""
    import dataclasses

    s = cfg.search
    floor = data.floor if s.placement.floor is None else s.placement.floor
    settings = dataclasses.replace(s, seed=cfg.seed, progress=cfg.log.progress,
                                   placement=dataclasses.replace(s.placement, floor=floor))
    views = None
    if data.depths is not None:  # surfaces the train cameras could not see are not asked for
        from splat.search.views import ScanViews

        views = ScanViews(data.viewmats, data.Ks, data.depths, data.masks)
    return settings, views


def _run_search(program: ShapeProgram, data: TrainData, cfg: TrainConfig, generator: torch.Generator) -> SearchOutcome:
    import time

    from splat.search import search

    t0 = time.perf_counter()
    settings, views = _search_inputs(data, cfg)
    res = search(program, data.scan, settings, views=views)
    return _outcome(program, res, data, cfg, t0)


def _outcome(program: ShapeProgram, res: Any, data: TrainData, cfg: TrainConfig, t0: float) -> SearchOutcome:
    """The search result ``res`` as the stage's outcome, after the silhouette check of its structure."""
    import math
    import time

    from splat.maths import placement_matrix

    placement = placement_matrix(torch.tensor(res.translation, dtype=torch.float64),
                                 torch.tensor(float(res.yaw), dtype=torch.float64),
                                 torch.tensor(math.log(float(res.scale)), dtype=torch.float64))
    info = {"fitness": float(res.fitness), "generations": len(res.history), "evaluations": int(res.evaluations),
            "seconds": time.perf_counter() - t0}
    assignment = dict(res.params)
    if cfg.structure.silhouette_check and data.masks is not None:
        from splat.train.structure import refine_structure

        t1 = time.perf_counter()
        assignment, check = refine_structure(program, assignment, placement.detach(), data, seed=cfg.seed)
        info.update({f"check_{k}": v for k, v in check.items()})
        info["check_seconds"] = time.perf_counter() - t1
    names = []
    if cfg.structure.facade_check:
        from splat.library import facade_params

        names = list(facade_params(program.name))
    if cfg.structure.edge_check or names:
        settings, views = _search_inputs(data, cfg)  # both checks refine against the scan with these
    if cfg.structure.edge_check:
        from splat.train.edges import edge_check

        assignment, placement, edges = edge_check(program, assignment, placement.detach(), data, settings, views,
                                                  tolerance=cfg.structure.edge_tolerance, seed=cfg.seed)
        info.update({f"edges_{k}": v for k, v in edges.items()})
    if names:
        from splat.train.facade import facade_check

        assignment, facade = facade_check(program, assignment, placement.detach(), data, settings, views,
                                          names=names, tolerance=cfg.structure.edge_tolerance, seed=cfg.seed)
        info.update({f"facade_{k}": v for k, v in facade.items() if k != "params"})
    return SearchOutcome(assignment, placement.detach(), info)


def choose_stage(data: TrainData, cfg: TrainConfig, report: Path | None = None) -> tuple[ShapeProgram, SearchOutcome]:
    """``--program auto``: the structure search of every library program (of ``cfg.category``) on the scan
    (:func:`splat.search.choose.choose_program`, ``cfg.choice``), the winner's outcome as
    :func:`search_stage`'s. ``report``: where the ranking is written (``splat.choice/1``)."""
    import time

    from splat.io import write_json_atomic
    from splat.search.choose import choose_program, library_programs

    t0 = time.perf_counter()
    programs = library_programs(cfg.category or None, field="category")
    settings, views = _search_inputs(data, cfg)
    choice = choose_program(programs, data.scan, settings, cfg.choice, views=views,
                            log=print if cfg.log.progress else None)
    if cfg.log.progress:
        print(choice.summary())
    if report is not None:
        write_json_atomic(report, choice.as_dict())
    outcome = _outcome(choice.program, choice.result, data, cfg, t0)
    outcome.info.update({"choice_margin": choice.margin, "choice_seconds": choice.seconds,
                         "choice_first_round_seconds": choice.first_round_seconds})
    return choice.program, outcome
