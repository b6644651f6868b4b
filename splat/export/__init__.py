"""Editable assets: 3DGS PLY splats, program/params JSON, instanced GLB mesh, .blend (blender extra).

Public API (see docs/architecture.md):

- :class:`SplatCloud`, :func:`write_splats_ply`, :func:`read_splats_ply` — Inria 3DGS PLY layout.
- :func:`splats_from_world` — world Gaussians -> PLY values (rotation/covariance maths: :mod:`splat.maths`).
- :class:`EditableAsset`, :func:`write_assets`, :func:`load_asset` (asset.py) — a run's assets folder
  (program.json, params.json, gaussians.pt, splats.ply) written and loaded back; edits re-evaluate the
  program and move the Gaussians with their primitives.
- :func:`write_glb`, :func:`part_colors` (glb.py) — instanced GLB of the program's geometry.
- ``splat export RUN`` (splat/commands/export.py) — assets, splats.ply, mesh.glb, object.blend.
"""

from splat.export.asset import EditableAsset, load_asset, write_assets
from splat.export.glb import part_colors, write_glb
from splat.export.ply import (
    SplatCloud,
    read_splats_ply,
    splats_from_world,
    splats_to_array,
    write_splats_ply,
)

__all__ = [
    "EditableAsset",
    "load_asset",
    "part_colors",
    "write_assets",
    "write_glb",
    "SplatCloud",
    "read_splats_ply",
    "splats_from_world",
    "splats_to_array",
    "write_splats_ply",
]
