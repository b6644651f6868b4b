"""Procedural Gaussians bound to a shape program's canonical primitives.

Public API:

- :class:`ProceduralGaussians` (model.py): canonical Gaussians per primitive key, ``pushforward(geometry,
  b) -> WorldGaussians`` (exact affine pushforward, differentiable in the program's parameters).
- :func:`init_gaussians`, :class:`InitSettings`, :class:`TrainViews` (init.py): area-weighted placement on
  the visible surface, flat along the face normal, colours projected from the training views;
  :func:`init_point_gaussians`: 3DGS's initialisation from a point cloud, owned by one primitive;
  :func:`add_detail_gaussians`: detail Gaussians where the scan shows surface the program lacks.
- :class:`Densifier`, :class:`DensifySettings`, :func:`resize_params` (densify.py): clone/split/prune in
  canonical space; the one helper that resizes parameters with their optimizer state.
"""

from splat.gaussians.densify import Densifier, DensifySettings, resize_params
from splat.gaussians.init import (
    InitSettings,
    TrainViews,
    add_detail_gaussians,
    canonical_surface_samples,
    init_gaussians,
    init_point_gaussians,
    surface_keys,
)
from splat.gaussians.model import PARAM_NAMES, ProceduralGaussians, WorldGaussians, key_id

__all__ = [
    "PARAM_NAMES",
    "Densifier",
    "DensifySettings",
    "InitSettings",
    "ProceduralGaussians",
    "TrainViews",
    "WorldGaussians",
    "add_detail_gaussians",
    "canonical_surface_samples",
    "init_gaussians",
    "init_point_gaussians",
    "key_id",
    "resize_params",
    "surface_keys",
]
