"""What the training stages may see: the train frames only (the held-out test views are read only by
the evaluation stage, see :mod:`splat.evaluate`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from splat.data import Scene, scene_background
from splat.errors import SplatError


@dataclass(frozen=True, eq=False)
class TrainData:
    """Train frames of a scene as tensors, plus the fused depth scan of those frames.

    Convention: see docs/conventions.md (OpenCV viewmats, pixel centres at +0.5, z-depth metres).
    """

    images: Tensor  # [V, H, W, 3] float32 in [0, 1]
    masks: Tensor | None  # [V, H, W] bool, None when the scene has no masks
    depths: Tensor | None  # [V, H, W] float32 metres (0 = missing), None when the scene has no depth
    viewmats: Tensor  # [V, 4, 4] world->camera
    Ks: Tensor  # [V, 3, 3]
    scan: Tensor  # [P, 3] float32 world points fused from the train depth maps
    background: Tensor  # [3] float32 render background (the colour the images were composited over)
    width: int
    height: int
    floor: float | None = None  # z of the floor from the full fused scan (before subsampling); None: unknown

    @property
    def num_views(self) -> int:
        return int(self.images.shape[0])

    @property
    def extent(self) -> float:
        """Diagonal of the scan's bounding box (metres), the scale of the scene (1.0 without a scan)."""
        if self.scan.shape[0] == 0:
            return 1.0
        return float(torch.linalg.vector_norm(self.scan.amax(0) - self.scan.amin(0)).clamp_min(1e-6))


def train_data(scene: Scene, *, max_scan_points: int, generator: torch.Generator,
               background: tuple[float, float, float] | None = None, device: str = "cpu",
               scan_voxel: float | None = None) -> TrainData:
    """Gather the train frames of ``scene`` (never its test frames) and fuse their depth into a scan.

    The floor is estimated from every fused point; the scan is then voxel-downsampled (``scan_voxel``
    metres, None: not) so its density is even over the surface instead of following how many views saw
    each part and how close they were, then subsampled to ``max_scan_points``.
    """
    from splat.data import fuse_depth
    from splat.data.fusion import voxel_downsample

    idx = list(scene.split["train"])
    if not idx:
        raise SplatError("the scene has no train frames", file=scene.root / "transforms.json", field="split.train")
    has_mask = any(scene.masks[i] is not None for i in idx)
    has_depth = any(scene.depths[i] is not None for i in idx)
    if not has_depth:
        raise SplatError("the train frames have no depth maps: the structure search needs a depth scan",
                         file=scene.root / "transforms.json", field="frames[].depth_file_path")
    scan = fuse_depth(scene, idx, use_masks=True)
    if scan.shape[0] < 16:
        raise SplatError(f"the fused depth scan has only {scan.shape[0]} points", file=scene.root, field="depth")
    from splat.search.genome import estimate_floor

    if isinstance(scene.extras.get("capture"), dict):
        floor = 0.0  # an imported capture is expressed in floor coordinates (splat.capture: floor at z = 0)
    else:
        floor = float(estimate_floor(scan))  # from every point: a subsample keeps few of the lowest
    if scan_voxel:
        scan = torch.from_numpy(voxel_downsample(scan.double().numpy(), scan_voxel)).to(torch.float32)
    if scan.shape[0] > max_scan_points:
        keep = torch.randperm(scan.shape[0], generator=generator)[:max_scan_points]
        scan = scan[keep.sort().values]
    h, w = scene.cameras[idx[0]].height, scene.cameras[idx[0]].width
    return TrainData(
        images=scene.images_tensor(idx, device=device),
        masks=scene.masks_tensor(idx, device=device) if has_mask else None,
        depths=scene.depths_tensor(idx, device=device) if has_depth else None,
        viewmats=scene.viewmats_tensor(idx, device=device),
        Ks=scene.Ks_tensor(idx, device=device),
        scan=scan.to(device),
        background=torch.tensor(scene_background(scene, background), dtype=torch.float32, device=device),
        width=int(w),
        height=int(h),
        floor=floor,
    )


def downscale_data(data: TrainData, factor: int) -> TrainData:
    """``data`` at 1/``factor`` resolution: images area-averaged, masks area-averaged then > 0.5, depth
    averaged over the valid pixels of each block, intrinsics scaled (pixel centres stay at +0.5)."""
    if factor == 1:
        return data
    import torch.nn.functional as F

    def pool(x: Tensor) -> Tensor:  # [V, H, W, C] -> [V, h, w, C]
        return F.avg_pool2d(x.permute(0, 3, 1, 2), factor, ceil_mode=True).permute(0, 2, 3, 1)

    images = pool(data.images)
    masks = None if data.masks is None else pool(data.masks[..., None].float())[..., 0] > 0.5
    depths = None
    if data.depths is not None:
        valid = (data.depths > 0).float()[..., None]
        num = pool(data.depths[..., None] * valid)
        den = pool(valid)
        depths = torch.where(den > 0.5, num / den.clamp_min(1e-9), torch.zeros_like(num))[..., 0]
    Ks = data.Ks.clone()
    Ks[:, :2] /= factor
    return TrainData(images=images, masks=masks, depths=depths, viewmats=data.viewmats, Ks=Ks, scan=data.scan,
                     background=data.background, width=int(images.shape[2]), height=int(images.shape[1]),
                     floor=data.floor)
