"""Real RGB-D captures in: readers of capture layouts, the per-frame depth check, floor and object
isolation, object masks, and the importer that writes a scene folder (``splat import``).

Public API::

    list_capture(format, src, ReaderOptions()) -> CaptureListing      # frames as FrameRefs, nothing read
    read_frame(ref) -> CaptureFrame; downscale_frame(frame, factor)   # colour + depth on one grid
    check_depth(frames, DepthCheckSettings()) -> DepthCheck           # frames whose depth disagrees
    isolate_object(frames, IsolateSettings()) -> Isolation            # floor frame, object scan, regions
    object_mask(frame, isolation, settings) -> [H, W] bool
    import_capture(ImportSettings(...)) -> ImportReport               # all of it, into a scene folder

Formats: ``tum``, ``scannet``, ``nerfstudio`` (see :mod:`splat.capture.formats`). Conventions:
docs/conventions.md; in memory poses are camera->world with OpenCV camera axes, depth is z-depth in
metres (0 = no reading), colour uint8.
"""

from splat.capture.check import DepthCheck, DepthCheckSettings, check_depth
from splat.capture.formats import FORMATS, CaptureListing, ReaderOptions, list_capture
from splat.capture.frames import CaptureFrame, FrameRef, downscale_frame, read_frame
from splat.capture.importer import CAPTURE_KEY, ImportReport, ImportSettings, import_capture
from splat.capture.isolate import Floor, IsolateSettings, Isolation, isolate_object, object_mask

__all__ = [
    "CAPTURE_KEY",
    "FORMATS",
    "CaptureFrame",
    "CaptureListing",
    "DepthCheck",
    "DepthCheckSettings",
    "Floor",
    "FrameRef",
    "ImportReport",
    "ImportSettings",
    "IsolateSettings",
    "Isolation",
    "ReaderOptions",
    "check_depth",
    "downscale_frame",
    "import_capture",
    "isolate_object",
    "list_capture",
    "object_mask",
    "read_frame",
]
