"""The depth views a scan was fused from, so the fitness only asks for geometry the cameras could see.

A depth scan shows the surfaces its cameras saw: the underside of a table top, the inside of a cabinet's
back or a leg's inner face may carry no scan points at all. The surface -> scan term of the fitness
would then pull such hidden faces toward the seen ones (a table top thinned to its lower bound, a
cabinet's back dropped). With the views, a surface point counts in that term only if some view would
have seen it or seen through it: it projects inside that view's frame, in front of the camera, and not
behind the observed surface there (``z <= depth + tolerance``; a pixel outside the view's object mask,
or without masks a pixel without a return, is free space: depth +inf; a pixel inside the mask without a
return is unknown and counts nothing). A point hidden behind observed surfaces in every view
adds nothing; a point in space the cameras saw through (a door where the scan shows open shelves)
still counts, so free space keeps penalising extra geometry.

Convention: docs/conventions.md (OpenCV world->camera viewmats, pixel centres at +0.5, z-depth in
metres, 0 = no return).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from splat.errors import SplatError
from splat.ops.mesh_raster import points_seen


@dataclass(frozen=True)
class ScanViews:
    """Depth views of a scan (all tensors on one device)."""

    viewmats: Tensor  # [V, 4, 4] world -> camera
    Ks: Tensor  # [V, 3, 3]
    depths: Tensor  # [V, H, W] z-depth metres; 0 or non-finite = no return
    masks: Tensor | None = None  # [V, H, W] bool object masks; outside = free space (None: depths alone)
    tolerance: float = 0.01
    """Metres a surface point may lie behind the observed depth and still count as seen."""

    def __post_init__(self):
        v = self.viewmats.shape[0] if self.viewmats.ndim == 3 else -1
        if self.viewmats.shape != (v, 4, 4) or v < 1:
            raise SplatError(f"viewmats must be [V, 4, 4] with V >= 1, got {list(self.viewmats.shape)}", field="viewmats")
        if self.Ks.shape != (v, 3, 3):
            raise SplatError(f"Ks must be [{v}, 3, 3], got {list(self.Ks.shape)}", field="Ks")
        if self.depths.ndim != 3 or self.depths.shape[0] != v:
            raise SplatError(f"depths must be [{v}, H, W], got {list(self.depths.shape)}", field="depths")
        if self.masks is not None and self.masks.shape != self.depths.shape:
            raise SplatError(f"masks must be {list(self.depths.shape)}, got {list(self.masks.shape)}", field="masks")
        if not self.tolerance >= 0:
            raise SplatError(f"tolerance must be >= 0, got {self.tolerance}", field="tolerance")

    @cached_property
    def free_depth(self) -> Tensor:
        """``[V, H, W]`` depth up to which each pixel's ray is known to be empty.

        +inf where the ray hit nothing (outside the object mask; or, without masks, no return); -inf
        where it is unknown (inside the mask but no return: a sensor hole), so no point counts there.
        """
        d = self.depths.to(torch.float32)
        no_return = ~torch.isfinite(d) | (d <= 0)
        if self.masks is None:
            return torch.where(no_return, torch.full_like(d, float("inf")), d)
        inside = self.masks.to(device=d.device, dtype=torch.bool)
        d = torch.where(no_return, torch.full_like(d, -float("inf")), d)
        return torch.where(inside, d, torch.full_like(d, float("inf")))

    @staticmethod
    def from_scene(scene, frames="train", *, tolerance: float = 0.01) -> "ScanViews":
        """The views of a loaded :class:`splat.data.Scene` (a split name or frame indices) that have depth."""
        idx = list(scene.split[frames]) if isinstance(frames, str) else [int(i) for i in frames]
        idx = [i for i in idx if scene.depths[i] is not None]
        if not idx:
            raise SplatError("no frame with a depth map", file=scene.root / "transforms.json", field="frames[].depth_file_path")
        masks = scene.masks_tensor(idx, device="cpu") if all(scene.masks[i] is not None for i in idx) else None
        return ScanViews(scene.viewmats_tensor(idx, device="cpu"), scene.Ks_tensor(idx, device="cpu"),
                         scene.depths_tensor(idx, device="cpu"), masks, tolerance=tolerance)


def expected_visible(points: Tensor, views: ScanViews) -> Tensor:
    """``[...]`` bool: which of ``points [..., 3]`` (world) some view would have seen or seen through
    (:func:`splat.ops.mesh_raster.points_seen`: a C++ kernel on the CPU; the search calls this for every
    population)."""
    free = views.free_depth.to(points.device)
    seen = points_seen(points.reshape(-1, 3), views.viewmats, views.Ks, free, views.tolerance)
    return seen.reshape(points.shape[:-1])
