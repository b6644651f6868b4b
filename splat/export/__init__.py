"""Editable assets: 3DGS PLY splats, program/params JSON, instanced GLB mesh, .blend (blender extra).

Public API (see docs/architecture.md):

- :class:`SplatCloud`, :func:`write_splats_ply`, :func:`read_splats_ply` — Inria 3DGS PLY layout.
- :func:`covariances_to_scales_quats`, :func:`splats_from_world` — world Gaussians -> PLY values.
"""

from splat.export.ply import (
    SH_C0,
    SplatCloud,
    covariances_from_scales_quats,
    covariances_to_scales_quats,
    quats_to_rotmats,
    read_splats_ply,
    rgb_to_sh_dc,
    rotmats_to_quats,
    sh_dc_to_rgb,
    splats_from_world,
    splats_to_array,
    write_splats_ply,
)

__all__ = [
    "SH_C0",
    "SplatCloud",
    "covariances_from_scales_quats",
    "covariances_to_scales_quats",
    "quats_to_rotmats",
    "read_splats_ply",
    "rgb_to_sh_dc",
    "rotmats_to_quats",
    "sh_dc_to_rgb",
    "splats_from_world",
    "splats_to_array",
    "write_splats_ply",
]
