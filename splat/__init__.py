"""splat: procedural Gaussian splatting.

Shape programs (Blender-style geometry-node graphs) fitted to depth scans, with 3D Gaussians bound to
their canonical primitives so that editing a semantic parameter moves the Gaussians with it.

See docs/architecture.md for the layout and docs/conventions.md for axes, units and orders.
"""

from splat.errors import SplatError

__all__ = ["SplatError"]
__version__ = "0.1.0"
