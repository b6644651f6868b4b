"""Gaussian rasterization: ``rasterize(...) -> RasterResult`` with "cpu", "torch" and "gsplat" backends.

See :func:`splat.render.functional.rasterize` and docs/architecture.md ("splat/render").
"""

from splat.render.functional import RasterResult, RasterSettings, rasterize

__all__ = ["RasterResult", "RasterSettings", "rasterize"]
