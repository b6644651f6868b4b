"""Import an RGB-D capture into a scene folder: list, select, read, check, isolate, mask, split, write.

The scene is written to a temporary folder beside ``out`` and renamed onto it at the end, so a failed
import leaves nothing behind and a reader never sees half a scene. Nothing is written anywhere else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from splat.capture.check import DepthCheckSettings, check_depth
from splat.capture.formats import FORMATS, CaptureListing, ReaderOptions, list_capture
from splat.capture.frames import CaptureFrame, FrameRef, downscale_frame, read_frame
from splat.capture.isolate import IsolateSettings, Isolation, isolate_object, object_mask
from splat.data.camera import Camera, rigid_inverse
from splat.data.ply import write_ply_points
from splat.data.writer import write_scene
from splat.errors import SplatError

CAPTURE_KEY = "capture"
"""The transforms.json top-level key holding the import record (``Scene.extras["capture"]``)."""
CAPTURE_FORMAT = "splat.capture/1"


@dataclass(frozen=True)
class ImportSettings:
    """Everything an import needs (see ``splat import --help`` for the user-facing meaning)."""

    format: str
    source: Path
    out: Path
    every: int = 1
    frames: tuple[str, ...] = ()
    test_every: int | None = None
    test_fraction: float | None = None
    downscale: int = 1
    image_format: str = "png"
    jpeg_quality: int = 95
    depth_check: bool = True
    program: str | None = None
    attribution: str | None = None
    overwrite: bool = False
    reader: ReaderOptions = field(default_factory=ReaderOptions)
    check: DepthCheckSettings = field(default_factory=DepthCheckSettings)
    isolate: IsolateSettings = field(default_factory=IsolateSettings)
    command: str | None = None


@dataclass(frozen=True)
class ImportReport:
    """What an import did.

    Attributes:
        transforms: the written transforms.json.
        listed: frames the source holds.
        selected: names of the frames selected by --frames / --every.
        kept: names of the frames written.
        dropped: (name, reason) of every selected frame not written.
        split: {"train": names, "test": names}.
        extents: (x, y, z) size of the isolated object (1-99 percentile of its scan points), metres.
        isolation: the floor and object found.
        notes: reader notes.
    """

    transforms: Path
    listed: int
    selected: tuple[str, ...]
    kept: tuple[str, ...]
    dropped: tuple[tuple[str, str], ...]
    split: dict[str, list[str]]
    extents: tuple[float, float, float]
    isolation: Isolation
    notes: tuple[str, ...]

    def summary(self) -> str:
        iso = self.isolation
        lines = [f"scene      {self.transforms.parent}",
                 f"frames     {self.listed} in the capture, {len(self.selected)} selected, {len(self.kept)} kept "
                 f"(train {len(self.split['train'])}, test {len(self.split['test'])})"]
        for name, why in self.dropped:
            lines.append(f"dropped    {name}: {why}")
        n = iso.floor.normal
        lines.append(f"floor      normal ({n[0]:.4f}, {n[1]:.4f}, {n[2]:.4f}) in the capture's world, "
                     f"{iso.floor.inliers} inliers, rms {1000 * iso.floor.rms:.1f} mm")
        ex = self.extents
        lines.append(f"object     {iso.mode}: {ex[0]:.3f} x {ex[1]:.3f} m footprint, {ex[2]:.3f} m high "
                     f"(floor frame, 1-99 percentile), {len(iso.points)} scan points")
        lines += [f"note       {n}" for n in self.notes]
        return "\n".join(lines)


_RANGE = re.compile(r"^(\d+)-(\d+)$")


def parse_frame_list(items: Sequence[str], n: int) -> list[int]:
    """``["3", "5-9", "12,14"]`` -> sorted unique frame indices in ``[0, n)``."""
    out: set[int] = set()
    for item in items:
        for tok in str(item).replace(",", " ").split():
            m = _RANGE.match(tok)
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                if a > b:
                    raise SplatError(f"range {tok!r} runs backwards", field="--frames")
                vals = range(a, b + 1)
            elif tok.isdigit():
                vals = [int(tok)]
            else:
                raise SplatError(f"{tok!r} is not a frame index or a range like 5-9", field="--frames")
            bad = [v for v in vals if v >= n]
            if bad:
                raise SplatError(f"frame {bad[0]} does not exist: the capture has frames 0..{n - 1}", field="--frames")
            out.update(vals)
    return sorted(out)


def select_frames(listing: CaptureListing, settings: ImportSettings) -> list[FrameRef]:
    """The frames named by ``--frames`` (all when empty), then every ``--every``-th of them."""
    frames = list(listing.frames)
    if settings.frames:
        keep = set(parse_frame_list(settings.frames, len(frames)))
        frames = [f for f in frames if f.index in keep]
    return frames[:: settings.every]


def test_positions(n: int, *, every: int | None, fraction: float | None) -> list[int]:
    """Positions (in capture order) of the held-out frames, spread over the trajectory.

    ``every``: one in ``every`` frames, starting half a period in (0: none); ``fraction``: that share
    of the frames, evenly spaced. Default: ``every=8``.
    """
    if every is not None and fraction is not None:
        raise SplatError("give --test-every or --test-fraction, not both", field="--test-fraction")
    if fraction is not None:
        if not 0.0 <= fraction < 1.0:
            raise SplatError(f"must be in [0, 1), got {fraction}", field="--test-fraction")
        k = int(round(fraction * n))
        if k == 0:
            return []
        return sorted({min(n - 1, int((j + 0.5) * n / k)) for j in range(k)})
    every = 8 if every is None else every
    if every < 0:
        raise SplatError(f"must be >= 0, got {every}", field="--test-every")
    if every == 0:
        return []
    if every == 1:
        raise SplatError("1 would hold out every frame and leave none to train on", field="--test-every")
    return [i for i in range(n) if i % every == every // 2]


def check_settings(s: ImportSettings) -> None:
    """Every option problem, before anything is read or written."""
    if s.format not in FORMATS:
        raise SplatError(f"unknown capture format {s.format!r} (formats: {', '.join(FORMATS)})", field="FORMAT")
    if s.every < 1:
        raise SplatError(f"must be >= 1, got {s.every}", field="--every")
    if s.downscale < 1:
        raise SplatError(f"must be >= 1, got {s.downscale}", field="--downscale")
    if s.image_format not in ("png", "jpg"):
        raise SplatError(f"must be png or jpg, got {s.image_format!r}", field="--image-format")
    if not 1 <= s.jpeg_quality <= 100:
        raise SplatError(f"must be in 1..100, got {s.jpeg_quality}", field="--jpeg-quality")
    test_positions(10, every=s.test_every, fraction=s.test_fraction)
    crop = s.isolate.crop
    if crop is not None:
        if len(crop) != 6 or not all(np.isfinite(crop)):
            raise SplatError("needs six finite numbers: xmin ymin zmin xmax ymax zmax", field="--crop")
        if not all(crop[i] < crop[i + 3] for i in range(3)):
            raise SplatError(f"each minimum must be below its maximum, got {list(crop)}", field="--crop")
    md = s.isolate.max_depth
    if md is not None and not md > 0:
        raise SplatError(f"must be > 0, got {md}", field="--max-depth")
    thr = s.check.threshold
    if thr is not None and not thr > 0:
        raise SplatError(f"must be > 0 metres (use --no-depth-check to skip the check), got {thr}",
                         field="--depth-check-threshold")
    if s.reader.depth_unit is not None and not s.reader.depth_unit > 0:
        raise SplatError(f"must be > 0, got {s.reader.depth_unit}", field="--depth-unit")
    out, src = Path(s.out), Path(s.source)
    if out.exists() and not out.is_dir():
        raise SplatError("exists and is not a folder", file=out, field="--out")
    if out.is_dir() and any(out.iterdir()) and not s.overwrite:
        raise SplatError("exists and is not empty (--overwrite replaces it once the import succeeds)", file=out,
                         field="--out")
    if out.resolve() == src.resolve():
        raise SplatError("must not be the capture folder itself", file=out, field="--out")


def _read(refs: Sequence[FrameRef], settings: ImportSettings) -> list[CaptureFrame]:
    frames = []
    md = settings.isolate.max_depth
    for ref in refs:
        f = downscale_frame(read_frame(ref), settings.downscale)
        if md is not None:
            f = f.replace(depth=np.where(f.depth <= md, f.depth, np.float32(0.0)).astype(np.float32))
        frames.append(f)
    return frames


def _extents(points: np.ndarray) -> tuple[float, float, float]:
    lo, hi = np.percentile(points, 1, axis=0), np.percentile(points, 99, axis=0)
    return float(hi[0] - lo[0]), float(hi[1] - lo[1]), float(hi[2])


def _record(settings: ImportSettings, listing: CaptureListing, iso: Isolation, dropped, extents, depth_check,
            n_selected: int) -> dict[str, Any]:
    to_capture = rigid_inverse(iso.to_floor)
    rec: dict[str, Any] = {
        "format": CAPTURE_FORMAT,
        "source_format": listing.format,
        "layout": listing.layout,
        "source": str(settings.source),
        "to_capture_world": to_capture.tolist(),
        "floor": {"normal": iso.floor.normal.tolist(), "offset": iso.floor.offset, "rms": iso.floor.rms,
                  "inliers": iso.floor.inliers},
        "object": {"mode": iso.mode, "crop": None if settings.isolate.crop is None else list(settings.isolate.crop),
                   "extents": list(extents), "yaw_deg": iso.yaw_deg, "scan_points": int(len(iso.points))},
        "frames": {"listed": len(listing.frames), "selected": n_selected, "every": settings.every,
                   "list": list(settings.frames)},
        "dropped_frames": [{"name": n, "reason": r} for n, r in dropped],
        "depth_check": depth_check,
        "downscale": settings.downscale,
        "image_format": settings.image_format,
        "max_depth": settings.isolate.max_depth,
        "attribution": settings.attribution,
        "notes": list(listing.notes),
    }
    if settings.command:
        rec["command"] = settings.command
    return rec


@contextlib.contextmanager
def _staging(out: Path, overwrite: bool):
    """A temporary folder beside ``out``; renamed onto ``out`` on success, removed on any error."""
    out = Path(out)
    made = []
    parent = out.parent
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    for p in reversed(made):
        p.mkdir()
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        yield tmp
        old = None
        if out.exists():
            if any(out.iterdir()):
                if not overwrite:
                    raise SplatError("appeared during the import and is not empty", file=out, field="--out")
                old = out.parent / f".{out.name}.old-{os.getpid()}"
                os.replace(out, old)
            else:
                out.rmdir()
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in made:
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


def import_capture(settings: ImportSettings, *, log=None) -> ImportReport:
    """Import ``settings.source`` into the scene folder ``settings.out`` (see the module docstring).

    Raises:
        SplatError: bad options, an unreadable or inconsistent capture (missing or unmatched frames,
            depth of another size than its intrinsics say, all-zero depth, a non-rigid pose), no floor,
            an empty crop box, or fewer than two usable frames. Nothing is left in or beside ``out``.
    """
    say = log or (lambda msg: None)
    check_settings(settings)
    listing = list_capture(settings.format, Path(settings.source), settings.reader)
    refs = select_frames(listing, settings)
    selected = tuple(r.name for r in refs)
    dropped: list[tuple[str, str]] = [(r.name, "pose marked invalid in the source") for r in refs if not r.pose_valid]
    refs = [r for r in refs if r.pose_valid]
    if len(refs) < 2:
        raise SplatError(f"only {len(refs)} frame(s) selected with a valid pose; an import needs at least 2",
                         field="--frames" if settings.frames else "--every")
    say(f"reading {len(refs)} frames ({listing.format}, {listing.layout})")
    frames = _read(refs, settings)
    depth_record: dict[str, Any] = {"enabled": settings.depth_check}
    if settings.depth_check:
        check = check_depth(frames, dataclasses.replace(settings.check, max_depth=settings.isolate.max_depth))
        depth_record.update(threshold=check.threshold,
                            scores={f.name: (None if not np.isfinite(s) else round(float(s), 5))
                                    for f, s in zip(frames, check.scores)})
        for i, score in zip(check.dropped, check.dropped_scores):
            dropped.append((frames[i].name, f"depth disagrees with its neighbours' after posing (median "
                                            f"{100 * score:.1f} cm > {100 * check.threshold:.1f} cm)"))
        gone = set(check.dropped)
        frames = [f for i, f in enumerate(frames) if i not in gone]
    say(f"isolating the object in {len(frames)} frames")
    iso = isolate_object(frames, settings.isolate)
    masks, kept = [], []
    for f in frames:
        m = object_mask(f, iso, settings.isolate)
        frac = float(m.mean())
        if frac < settings.isolate.mask_min_fraction:
            dropped.append((f.name, f"object not in view (mask {100 * frac:.2f}% of the image)"))
            continue
        masks.append(m)
        kept.append(f)
    if len(kept) < 2:
        raise SplatError(f"only {len(kept)} frame(s) left after the checks; an import needs at least 2 "
                         f"(dropped: {'; '.join(f'{n}: {r}' for n, r in dropped[:3])})", file=settings.source)
    order = sorted(range(len(kept)), key=lambda i: kept[i].index)
    kept = [kept[i] for i in order]
    masks = [masks[i] for i in order]
    test = set(test_positions(len(kept), every=settings.test_every, fraction=settings.test_fraction))
    names = [f.name for f in kept]
    split = {"train": [n for i, n in enumerate(names) if i not in test],
             "test": [n for i, n in enumerate(names) if i in test]}
    cameras = [Camera(K=f.K, viewmat=rigid_inverse(iso.to_floor @ f.c2w), width=f.width, height=f.height,
                      name=f.name) for f in kept]
    order_of = {r.name: k for k, r in enumerate(refs)}
    dropped.sort(key=lambda d: order_of.get(d[0], -1))
    extents = _extents(iso.points)
    record = _record(settings, listing, iso, dropped, extents, depth_record, len(selected))
    say(f"writing {len(kept)} frames to {settings.out}")
    with _staging(Path(settings.out), settings.overwrite) as tmp:
        write_scene(tmp, cameras, [f.rgb for f in kept], depths=[f.depth for f in kept], masks=masks, split=split,
                    program=settings.program, extras={CAPTURE_KEY: record}, image_format=settings.image_format,
                    jpeg_quality=settings.jpeg_quality)
        write_ply_points(tmp / "scan.ply", iso.points)
    return ImportReport(transforms=Path(settings.out) / "transforms.json", listed=len(listing.frames),
                        selected=selected, kept=tuple(names), dropped=tuple(dropped), split=split, extents=extents,
                        isolation=iso, notes=listing.notes)
