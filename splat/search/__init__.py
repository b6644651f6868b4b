"""Structure search: a genetic algorithm over a ShapeProgram's ParamSpace with Lamarckian refinement.

Python::

    from splat.search import search, SearchSettings
    result = search(load_program("chair"), scan_points, SearchSettings(seed=0))
    result.params, result.translation, result.yaw, result.fitness, result.history

Command line: ``splat search --program chair --scene DIR | --points FILE.ply --out best.json``.
"""

from splat.search.fitness import population_fitness, prepare_scan
from splat.search.ga import PlacementSettings, SearchResult, SearchSettings, search
from splat.search.genome import GenomeSpace, Placement, PlacementBox, Population
from splat.search.refine import RefineSettings, refine_population
from splat.search.synthetic import synthetic_scan
from splat.search.views import ScanViews, expected_visible

__all__ = [
    "GenomeSpace",
    "Placement",
    "PlacementBox",
    "PlacementSettings",
    "Population",
    "RefineSettings",
    "ScanViews",
    "SearchResult",
    "SearchSettings",
    "population_fitness",
    "expected_visible",
    "prepare_scan",
    "refine_population",
    "search",
    "synthetic_scan",
]
