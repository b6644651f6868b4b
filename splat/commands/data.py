"""``splat data SCENE_DIR [--fuse-out scan.ply] [--voxel 0.005] [--no-masks]``: check and summarise a scene.

Loads a scene, checks it, prints a one-screen summary (frames, split, resolution, intrinsics, depth
coverage, masks, fused points, bounding box, ground truth), and optionally writes the fused depth cloud
as a PLY (atomically). User errors print one line and exit 2 (splat.cli.run_cli).
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import tyro

from splat.data.fusion import fuse_depth
from splat.data.ply import read_ply_points, write_ply_points
from splat.data.transforms import load_scene
from splat.workspace import scene_dir
from splat.errors import SplatError


@dataclass(frozen=True)
class DataConfig:
    """Check a scene folder, print its summary, and optionally write its fused depth cloud as a PLY."""

    scene_dir: tyro.conf.Positional[Annotated[Path, tyro.conf.arg(metavar="SCENE_DIR")]]
    """Scene folder holding transforms.json, or a shipped scene's name (chair, table, ...)."""
    fuse_out: Optional[Path] = None
    """Write the fused depth point cloud to this PLY."""
    voxel: Optional[float] = None
    """Voxel size in metres for the fused cloud (default: the fusion's own)."""
    masks: bool = True
    """Fuse depth only inside the masks (--no-masks: outside them too)."""


def _vec(v) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in v) + ")"


def summarize(scene, points: np.ndarray) -> str:
    lines = [f"scene      {scene.root}"]
    lines.append(f"frames     {len(scene)}  (" + ", ".join(f"{k}: {len(v)}" for k, v in scene.split.items()) + ")")
    sizes = Counter((c.width, c.height) for c in scene.cameras)
    lines.append("resolution " + ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.items()))
    fx = np.array([c.K[0, 0] for c in scene.cameras])
    lines.append(f"focal      fx {fx.min():.2f}..{fx.max():.2f} px")
    with_depth = [d for d in scene.depths if d is not None]
    if with_depth:
        valid = np.concatenate([d[d > 0] for d in with_depth])
        cover = sum(int((d > 0).sum()) for d in with_depth) / sum(d.size for d in with_depth)
        rng = f", range {valid.min():.3f}..{valid.max():.3f} m" if valid.size else ""
        lines.append(f"depth      {len(with_depth)}/{len(scene)} frames, {100 * cover:.1f}% pixels valid{rng}")
    else:
        lines.append("depth      none")
    with_mask = [m for m in scene.masks if m is not None]
    if with_mask:
        frac = sum(int(m.sum()) for m in with_mask) / sum(m.size for m in with_mask)
        lines.append(f"masks      {len(with_mask)}/{len(scene)} frames, {100 * frac:.1f}% pixels object")
    else:
        lines.append("masks      none")
    centers = np.stack([c.center for c in scene.cameras])
    dist = np.linalg.norm(centers, axis=1)
    lines.append(f"cameras    distance to origin {dist.min():.3f}..{dist.max():.3f} m")
    lines.append(f"fused      {len(points)} points")
    if len(points):
        lo, hi = points.min(0), points.max(0)
        lines.append(f"bbox       min {_vec(lo)}  max {_vec(hi)}  size {_vec(hi - lo)} m")
    if scene.scan_path is not None:
        lines.append(f"scan.ply   {len(read_ply_points(scene.scan_path))} points")
    if scene.program is not None:
        lines.append(f"program    {scene.program}")
    if scene.gt_params:
        lines.append(f"gt_params  {len(scene.gt_params)}: " + ", ".join(list(scene.gt_params)[:6])
                     + (" ..." if len(scene.gt_params) > 6 else ""))
    if scene.extras:
        lines.append(f"extras     {', '.join(sorted(scene.extras))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = tyro.cli(DataConfig, args=argv, prog="splat data", description=DataConfig.__doc__)
    if args.voxel is not None and not args.voxel > 0:
        raise SplatError(f"must be > 0, got {args.voxel}", field="--voxel")
    scene = load_scene(scene_dir(args.scene_dir, field="SCENE_DIR"))
    points = fuse_depth(scene, voxel_size=args.voxel, use_masks=args.masks).numpy()
    print(summarize(scene, points))
    if args.fuse_out is not None:
        write_ply_points(args.fuse_out, points)
        print(f"wrote      {args.fuse_out}")
