"""splat: procedural Gaussian splatting.

Shape programs (Blender-style geometry-node graphs) fitted to depth scans, with 3D Gaussians bound to
their canonical primitives so that editing a semantic parameter moves the Gaussians with it.

See docs/architecture.md for the layout and docs/conventions.md for axes, units and orders.
"""

import os as _os

# torch's OpenMP threads spin while they wait for work; on a shared machine (the everyday 2-core one)
# the spinning threads take the cores from the work: the projection took 120-260 ms on 2 threads against
# 7 ms on 1 with other jobs running, and 20k Gaussians' forward+backward 350 ms against 25 ms with
# OMP_WAIT_POLICY=PASSIVE (bench/RESULTS.md). libgomp reads it when torch loads it, so it is set before
# anything here imports torch; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from splat.errors import SplatError  # noqa: E402

__all__ = ["SplatError"]
__version__ = "0.1.0"
