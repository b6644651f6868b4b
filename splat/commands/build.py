"""``splat build``: build (or load from the cache) every C++ kernel now, and say where each stands.

Without it each kernel is built on first use, with one line on stderr saying so. Run it once after
installing (CI, a cluster image) so no training run pays for the build.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import tyro

from splat.errors import SplatError


@dataclass(frozen=True)
class BuildConfig:
    """Build the C++ kernels (rasterizer, projection, mesh distance, mesh raster, SSIM) into torch's extension cache."""

    strict: bool = True
    """Exit with an error when a kernel cannot be built (otherwise: report and fall back)."""


def main(argv: list[str] | None = None) -> dict[str, bool]:
    from splat.ops.mesh_distance import kernel_available as mesh_ok
    from splat.ops.mesh_raster import kernel_available as mesh_raster_ok
    from splat.ops.ssim import kernel_available as ssim_ok
    from splat.render.cpu import kernel_available as raster_ok
    from splat.render.cpu import projection_available as projection_ok

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = tyro.cli(BuildConfig, args=argv, prog="splat build", description=__doc__.split("\n\n")[0])
    status = {}
    for name, check in (("rasterizer", raster_ok), ("projection", projection_ok), ("mesh distance", mesh_ok),
                        ("mesh raster", mesh_raster_ok), ("SSIM", ssim_ok)):
        t0 = time.perf_counter()
        status[name] = bool(check())
        print(f"{name}: {'ready' if status[name] else 'NOT built (torch fallback)'} "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
    failed = [n for n, ok in status.items() if not ok]
    if failed and cfg.strict:
        raise SplatError(f"could not build: {', '.join(failed)} (see the warning above; a C++17 compiler "
                         "and Python headers are needed)", field="build")
    return status
