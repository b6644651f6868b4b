"""``splat import FORMAT SRC --out SCENE_DIR``: an RGB-D capture in, a scene folder out.

    splat import tum ../shared/data/real/tum_fr3_cabinet --out scenes/cabinet_real --downscale 2
    splat import scannet scans/scene0000_00 --out scenes/s0 --every 10 --crop 1.2 0.4 0 2.4 1.6 1.2
    splat import nerfstudio polycam_export --out scenes/chair_real --test-fraction 0.1

Reads the capture (``splat.capture.formats``), selects frames, drops frames whose depth disagrees with
their neighbours', finds the floor and the object (``--crop`` box in the capture's world, or the cluster
the cameras look at), computes per-frame object masks and writes the scene in floor coordinates (+Z up,
floor at 0) with ``scan.ply`` (the object's fused depth) and the transform back to the capture's world
in transforms.json (``capture.to_capture_world``). User errors print one ``error:`` line and exit 2;
nothing is written outside --out, and a failed import leaves nothing behind.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import tyro

from splat.errors import SplatError


@dataclass(frozen=True)
class ImportConfig:
    """Import an RGB-D capture (tum, scannet, nerfstudio) as a scene: floor frame, isolated object, masks."""

    format: tyro.conf.Positional[Annotated[str, tyro.conf.arg(metavar="FORMAT")]]
    """Capture format: tum (TUM RGB-D, original or CubeSLAM layout), scannet (SensReader export) or nerfstudio
    (transforms.json with depth_file_path: Polycam, Record3D)."""
    src: tyro.conf.Positional[Annotated[Path, tyro.conf.arg(metavar="SRC")]]
    """The capture folder (nerfstudio: the folder of transforms.json, or the file)."""
    out: Path
    """Scene folder to write (must not exist or be empty, unless --overwrite)."""
    every: int = 1
    """Keep every k-th frame (after --frames)."""
    frames: tuple[str, ...] = ()
    """Only these frames: indices in the capture's order and ranges, e.g. --frames 0 4 10-20."""
    test_every: Optional[int] = None
    """Hold out one frame in N for testing, spread over the trajectory (default 8; 0: no test split)."""
    test_fraction: Optional[float] = None
    """Hold out this fraction of the frames instead, evenly spaced (exclusive with --test-every)."""
    crop: Optional[tuple[float, float, float, float, float, float]] = None
    """The object's box in the capture's own world coordinates: xmin ymin zmin xmax ymax zmax (metres)."""
    auto: bool = False
    """Find the object automatically: the cluster above the floor the cameras look at (the default without --crop)."""
    max_depth: Optional[float] = None
    """Ignore depth readings beyond this many metres (not fused, not written)."""
    colour_trust: int = 0
    """Let the photo's colour extend the mask up to this many pixels past the depth's outline, where the
    sensor reads the background (a Kinect's depth is registered to its colour to a pixel or two). Helps a
    plain object on a plain floor (TUM cabinet); hurt on textured floors with clutter (capture-like scenes)."""
    colour_passes: int = 1
    """Colour refinements of each mask in a row (2 with --colour-trust on a plain floor)."""
    downscale: int = 1
    """Write frames at 1/N resolution (colour area-averaged, depth by lower median, intrinsics scaled)."""
    depth_check_threshold: Optional[float] = None
    """Drop frames whose median depth disagreement with their neighbours exceeds this (metres). Default:
    2.5 x the median over all frames, at least 1 cm."""
    depth_check: bool = True
    """Check each frame's depth against its neighbours' (--no-depth-check: keep every frame)."""
    intrinsics: Optional[tuple[float, float, float, float]] = None
    """fx fy cx cy of the colour camera, overriding the capture's (TUM without intrinsics.txt)."""
    depth_unit: Optional[float] = None
    """Metres per stored depth value, overriding the format's (TUM 1/5000, ScanNet 0.001)."""
    time_tolerance: float = 0.02
    """TUM (rgb.txt/depth.txt/groundtruth.txt): largest time difference within one frame, seconds."""
    skip_unmatched: bool = False
    """TUM: drop colour frames without a depth map or pose in time instead of failing."""
    program: Optional[str] = None
    """Shape program intended for the object (stored in the scene; train.py then needs no --program)."""
    attribution: Optional[str] = None
    """Licence / attribution text of the capture, stored with the scene (capture.attribution)."""
    image_format: str = "png"
    """Colour images as png (lossless) or jpg (photographs at a fraction of the size)."""
    jpeg_quality: int = 95
    """JPEG quality with --image-format jpg."""
    overwrite: bool = False
    """Replace a non-empty --out (only once the import has succeeded)."""


def settings_from_config(cfg: ImportConfig, command: str | None = None):
    from splat.capture import DepthCheckSettings, ImportSettings, IsolateSettings, ReaderOptions

    if cfg.auto and cfg.crop is not None:
        raise SplatError("give --crop or --auto, not both", field="--auto")
    return ImportSettings(
        format=cfg.format, source=cfg.src, out=cfg.out, every=cfg.every, frames=tuple(cfg.frames),
        test_every=cfg.test_every, test_fraction=cfg.test_fraction, downscale=cfg.downscale,
        image_format=cfg.image_format, jpeg_quality=cfg.jpeg_quality, depth_check=cfg.depth_check,
        program=cfg.program, attribution=cfg.attribution, overwrite=cfg.overwrite,
        reader=ReaderOptions(intrinsics=cfg.intrinsics, depth_unit=cfg.depth_unit,
                             time_tolerance=cfg.time_tolerance, skip_unmatched=cfg.skip_unmatched),
        check=DepthCheckSettings(threshold=cfg.depth_check_threshold),
        isolate=IsolateSettings(crop=cfg.crop, max_depth=cfg.max_depth, colour_trust=cfg.colour_trust,
                                colour_passes=cfg.colour_passes),
        command=command)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = tyro.cli(ImportConfig, args=argv, prog="splat import", description=ImportConfig.__doc__)
    from splat.capture import import_capture

    settings = settings_from_config(cfg, command=shlex.join(["splat", "import", *argv]))
    report = import_capture(settings, log=lambda msg: print(msg, flush=True))
    print(report.summary())
