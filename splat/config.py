"""Training configuration: nested frozen dataclasses, one docstring per field (tyro shows them as help).

Sections that configure a library component *are* that component's settings class, embedded as is and
handed over by the trainer unchanged, so each default and each range check exists once, in the library:

- ``search``: :class:`splat.search.SearchSettings` (stage (a)'s genetic search). The trainer fills in
  ``seed`` and ``progress`` from the run's ``seed`` and ``log.progress`` (so both must stay at their
  defaults here) and ``placement.floor``, when None, from the full fused scan.
- ``gaussians``: :class:`splat.gaussians.InitSettings` (initialisation of the procedural Gaussians).
- ``densify``: :class:`splat.gaussians.DensifySettings` (thresholds and schedule of densification).
- ``raster``: :class:`splat.render.RasterSettings` (backend, planes, low-pass filter); each stage picks
  its own ``render_mode`` (joint training renders RGB + expected depth), so it must stay "RGB" here.

The trainer's own concerns have no library class and are the small dataclasses below: the fused scan
(``scan``), stage switches (``structure``), optimiser (``optim``), loss weights (``loss``), logging
(``log``) and evaluation (``eval``).

The resolved config is saved as ``config.json`` in the run folder and reloaded through the same
dataclasses (:func:`config_to_dict`, :func:`config_from_dict`); nothing is ever ``eval``-ed. A
config.json written before the library classes were embedded (sections ``search.scan_points``,
``gaussians.init_color``, top-level ``backend``) does not load: the unknown key is named.
:func:`validate_config` is the one validation entry point: it checks that every float is finite, calls
each section's ``validate()`` (the library classes' own checks; ``ChamferSettings`` and
``RasterSettings`` check themselves on construction) and the checks that span sections, and raises
:class:`splat.errors.SplatError` naming the field (``optim.steps``, ``gaussians.num_init``), so the CLI
prints one line and exits with status 2.

Presets keyed by scene name live in :mod:`splat.presets`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from splat.errors import SplatError
from splat.gaussians.densify import DensifySettings
from splat.gaussians.init import InitSettings
from splat.io import read_json
from splat.render.functional import RasterSettings
from splat.search.ga import SearchSettings
from splat.search.choose import ChoiceSettings


def _fail(field_name: str, message: str) -> None:
    raise SplatError(message, field=field_name)


@dataclass(frozen=True)
class StructureConfig:
    """Stage (a): how the program's discrete structure, parameters and placement are found."""

    search: bool = True
    """Run the structure search (its settings: the ``search`` section); False: the program's default
    parameters, placed on the scan's bounding box, start the joint stage."""
    silhouette_check: bool = True
    """After the search, re-check the discrete parameters against the train masks (silhouette +
    Chamfer; see splat.train.structure)."""
    edge_check: bool = False
    """Then let the photos choose the winner's turn among those the depth scan cannot tell apart (quarter
    and half turns about +Z): the one whose part edges fall on image edges wins (splat.train.edges). For
    captures, whose depth noise hides which face has the drawers or doors."""
    edge_tolerance: float = 0.05
    """With edge_check: turns within this fraction of the best scan score compete."""
    facade_check: bool = False
    """Then let the photos lay out the front of a library program that declares one (``facade`` in its
    params.json: the cabinet's drawer count, top drawer, handle height, doors): a candidate's fronts,
    gaps and handles against the front face seen by the train views facing it (splat.train.facade). For
    captures, whose depth sees a flat front whatever the layout."""

    def validate(self) -> None:
        """Raise :class:`SplatError` naming the field for an out-of-range value."""
        if not 0.0 <= self.edge_tolerance <= 1.0:
            _fail("edge_tolerance", f"must be in [0, 1], got {self.edge_tolerance}")


@dataclass(frozen=True)
class ScanConfig:
    """The depth scan fused from the train views: the structure search's target and the joint stage's
    Chamfer loss's."""

    points: int = 20000
    """Points kept from the fused depth scan (uniform subsample) for the search and the Chamfer loss."""
    voxel: float = 0.005
    """Voxel edge (metres) the fused scan is downsampled with before that subsample, so its density is
    even over the surface (0: no voxel step). The search's surface -> scan term measures distances
    beyond the local point spacing, which an uneven scan (parts seen by few views) would skew."""

    def validate(self) -> None:
        """Raise :class:`SplatError` naming the field for an out-of-range value."""
        if self.points < 16:
            _fail("points", f"must be >= 16, got {self.points}")
        if not (math.isfinite(self.voxel) and self.voxel >= 0):
            _fail("voxel", f"must be a finite number >= 0, got {self.voxel}")


@dataclass(frozen=True)
class OptimConfig:
    """Stage (b): Adam over Gaussian attributes and the program's continuous parameters."""

    steps: int = 1500
    """Joint-training steps (one training view per step)."""
    lr_means: float = 2e-3
    """Learning rate of canonical means (canonical unit space), decayed to lr_final_ratio of itself."""
    lr_scales: float = 5e-3
    """Learning rate of canonical log-scales."""
    lr_quats: float = 1e-3
    """Learning rate of rotations (quaternions, wxyz)."""
    lr_opacities: float = 5e-2
    """Learning rate of opacity logits."""
    lr_colors: float = 2.5e-3
    """Learning rate of SH DC colour coefficients (higher degrees use a 20th of it)."""
    lr_residuals: float = 1e-3
    """Learning rate of per-copy colour residuals (when enabled)."""
    lr_program: float = 5e-3
    """Learning rate of the program's continuous parameters, in normalised [0,1] units."""
    lr_placement: float = 1e-3
    """Learning rate of the placement (translation in metres, yaw in radians, log-scale)."""
    lr_exposure: float = 0.0
    """Learning rate of a per-train-image affine colour correction ``rgb' = A rgb + b`` (3x3 + 3, starting
    at the identity) applied to the render before the photometric loss, for captures whose auto-exposure
    and white balance change from frame to frame (0: off, clean renders)."""
    lr_pose: float = 0.0
    """Learning rate of a per-train-image pose correction (rotation vector in radians + translation in
    metres, applied on the camera side: ``viewmat' = exp(delta) viewmat``), for captures whose SLAM poses
    are off by centimetres (0: off). The program and its placement hold the scene where the scan is, so
    the corrections cannot move it as a whole."""
    lr_final_ratio: float = 0.01
    """Exponential decay of the Gaussian learning rates: at the last step this fraction of the start."""
    lr_program_final_ratio: float = 0.1
    """The same for the program parameters and the placement."""
    program_start: int = 100
    """Step at which the program parameters and the placement start to move (Gaussians settle first)."""
    downscale: int = 1
    """Train at 1/downscale of the image resolution (images area-averaged) until the last
    ``full_res_steps`` steps, which use the full resolution (1: always full resolution; on CPU the
    step cost is dominated by per-Gaussian work, so this saves little)."""
    full_res_steps: int = 300
    """Final steps at full resolution."""

    def validate(self) -> None:
        """Raise :class:`SplatError` naming the field for an out-of-range value."""
        if self.steps < 0:
            _fail("steps", f"must be >= 0, got {self.steps}")
        for name in ("lr_means", "lr_scales", "lr_quats", "lr_opacities", "lr_colors", "lr_residuals",
                     "lr_program", "lr_placement", "lr_exposure", "lr_pose"):
            if getattr(self, name) < 0.0:
                _fail(name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("lr_final_ratio", "lr_program_final_ratio"):
            if not 0.0 < getattr(self, name) <= 1.0:
                _fail(name, f"must be in (0, 1], got {getattr(self, name)}")
        if self.program_start < 0:
            _fail("program_start", f"must be >= 0, got {self.program_start}")
        if not 1 <= self.downscale <= 8:
            _fail("downscale", f"must be in [1, 8], got {self.downscale}")
        if self.full_res_steps < 0:
            _fail("full_res_steps", f"must be >= 0, got {self.full_res_steps}")


@dataclass(frozen=True)
class LossConfig:
    """Stage (b) loss weights (the photometric L1 has weight 1 - ssim)."""

    ssim: float = 0.2
    """Weight of D-SSIM = (1 - SSIM) / 2 against L1 (photometric loss = (1-w) L1 + w D-SSIM)."""
    mask: float = 0.1
    """Weight of the alpha-vs-mask L1 loss."""
    depth: float = 0.1
    """Weight of the expected-depth L1 loss against the depth maps (metres, on the mask)."""
    chamfer: float = 1.0
    """Weight of the one-sided Chamfer distance from the scan to the program's surface samples
    (squared, metres^2 scaled by 1/extent^2)."""
    chamfer_samples: int = 2000
    """Program surface samples per step for the Chamfer loss."""
    chamfer_scan_points: int = 5000
    """Scan points (a fixed random subset) used by the per-step Chamfer loss."""
    surface: float = 1.0
    """Weight of the regulariser keeping canonical Gaussians near their primitive's surface."""
    surface_band: float = 0.01
    """Metres; > 0: the surface regulariser is quadratic only within this distance of the primitive's
    surface and linear beyond (Huber), so detail Gaussians (``gaussians.detail_init``) may leave their
    primitive (still owned by it: an edit moves them) where the photos show what the program lacks (0:
    quadratic everywhere)."""
    scale: float = 1.0
    """Weight of the penalty on world scales above ``max_scale``."""
    max_scale: float = 0.05
    """Largest world scale (standard deviation, metres) a Gaussian may take without penalty."""
    photometric_region: Literal["full", "mask"] = "full"
    """Pixels the photometric loss compares: "full" (clean renders over a known background) or "mask"
    (only the object mask: a capture's background is not the object's to explain; the mask loss still
    keeps the Gaussians transparent outside it)."""
    mask_erode: int = 0
    """Pixels; with photometric_region="mask", the mask is shrunk by this many pixels for the photometric
    loss: a capture's mask edge (depth registered to colour within a few pixels) mixes object and
    background, which would tint the object's outer Gaussians (0: the whole mask)."""
    occlusion_margin: float = 0.0
    """Metres; > 0: pixels whose sensor depth is nearer than the rendered object by more than this (an
    occluder in front of it) are left out of the photometric, mask and depth losses (0: off)."""
    depth_max_residual: float = 0.0
    """Metres; > 0: depth residuals larger than this (sensor outliers, flying pixels at edges) are left
    out of the depth loss (0: every reading counts)."""
    chamfer_trim: float = 0.0
    """Fraction in [0, 0.5) of the scan points farthest from the program left out of the Chamfer loss
    (clutter or floor left in a capture's scan; 0: none)."""
    mesh_silhouette: float = 1.0
    """Weight of the L1 between the program mesh's anti-aliased silhouette and the object mask
    (:mod:`splat.ops.mesh_raster`; only while the program or placement trains). Unlike the Gaussians'
    alpha, the mesh's outline ends where its faces end, so its optimum is at the true edges."""
    mesh_depth: float = 1.0
    """Weight of the L1 between the program mesh's rendered z-depth and the depth map (metres scaled by
    1/extent, on the mask; only while the program or placement trains)."""
    mesh_silhouette_mode: Literal["both", "carve"] = "both"
    """"both": the L1 above on every pixel (the mesh is pulled in where it covers background and out
    where it misses the mask). "carve", for a capture whose mask comes from depth isolation and loses the
    object's edges to depth holes: mask pixels (shrunk by ``mask_erode``) the mesh misses pull it out,
    and only pixels outside the mask whose sensor depth lies more than ``mesh_max_residual`` behind the
    mesh (space the sensor saw through) push it in; a pixel without a reading says nothing. Both terms
    are means over the shrunk mask's pixels."""
    mesh_max_residual: float = 0.02
    """Metres; mesh-depth residuals above this are left out (a pixel that sees another part or surface
    than the mesh says: the silhouette, not the depth, settles such pixels)."""
    gaussian_geometry_grad: bool = False
    """Whether the losses on the Gaussians' render (photometric, mask, depth) also reach the program's
    parameters and placement. Default False: the Gaussians follow the geometry, which learns from the
    mesh's silhouette and depth and the Chamfer loss only. Measured on the chair (bench/RESULTS.md): with
    the Gaussians' gradients (they blur past the primitives' edges) thin parts shrank (Seat Thickness
    4.0% -> 7.7% of its range, Leg Size 0.01% -> 4.4%); with the mesh's alone every parameter ends within
    0.2% of its range."""
    exposure: float = 0.01
    """Weight of the pull of the per-image colour corrections towards the identity (with
    ``optim.lr_exposure`` > 0): fixes the gauge between the corrections and the Gaussians' colours."""
    pose: float = 1.0
    """Weight of the pull of the per-image pose corrections towards zero (with ``optim.lr_pose`` > 0;
    squared rotation in radians plus squared translation in metres): directions the photo barely
    constrains (roll about a centred object, motion along the view) stay put instead of wandering."""

    def validate(self) -> None:
        """Raise :class:`SplatError` naming the field for an out-of-range value."""
        for name in ("ssim", "mask", "depth", "chamfer", "surface", "scale", "occlusion_margin",
                     "depth_max_residual", "exposure", "pose", "mesh_silhouette", "mesh_depth",
                     "mesh_max_residual", "surface_band"):
            if getattr(self, name) < 0.0:
                _fail(name, f"must be >= 0, got {getattr(self, name)}")
        if self.ssim > 1.0:
            _fail("ssim", f"must be in [0, 1], got {self.ssim}")
        if self.mesh_silhouette_mode not in ("both", "carve"):
            _fail("mesh_silhouette_mode", f"must be 'both' or 'carve', got {self.mesh_silhouette_mode!r}")
        if self.chamfer_samples < 1:
            _fail("chamfer_samples", f"must be >= 1, got {self.chamfer_samples}")
        if self.chamfer_scan_points < 16:
            _fail("chamfer_scan_points", f"must be >= 16, got {self.chamfer_scan_points}")
        if not self.max_scale > 0.0:
            _fail("max_scale", f"must be > 0, got {self.max_scale}")
        if not 0 <= self.mask_erode <= 16:
            _fail("mask_erode", f"must be in [0, 16], got {self.mask_erode}")
        if not 0.0 <= self.chamfer_trim < 0.5:
            _fail("chamfer_trim", f"must be in [0, 0.5), got {self.chamfer_trim}")


@dataclass(frozen=True)
class LogConfig:
    """TensorBoard, progress bar and checkpoints."""

    every: int = 10
    """Log losses to TensorBoard every this many steps."""
    image_every: int = 250
    """Log a render/target image pair every this many steps (0: never)."""
    checkpoint_every: int = 250
    """Write an atomic checkpoint every this many steps (0: only at the end of a stage)."""
    progress: bool = True
    """Show tqdm progress bars (the structure search's and the joint stage's, with the current loss)."""

    def validate(self) -> None:
        """Raise :class:`SplatError` naming the field for an out-of-range value."""
        if self.every < 1:
            _fail("every", f"must be >= 1, got {self.every}")
        for name in ("image_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                _fail(name, f"must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class EvalConfig:
    """Stage (c): evaluation on the held-out test views."""

    surface_samples: int = 20000
    """Program surface samples for Chamfer-L2 and F-score."""
    save_renders: bool = True
    """Write the test-view renders to renders/ in the run folder."""

    def validate(self) -> None:
        """Raise :class:`SplatError` naming the field for an out-of-range value."""
        if self.surface_samples < 16:
            _fail("surface_samples", f"must be >= 16, got {self.surface_samples}")


@dataclass(frozen=True)
class TrainConfig:
    """``python train.py --scene NAME``: fit a shape program and its Gaussians to a scene."""

    scene: str = "chair"
    """A registered scene name (see splat.presets) or a path to a scene folder."""
    program: str = ""
    """Shape program: a name in programs/, a path to a graph JSON, or "auto" (search every library program
    on the scan and keep the best: splat.search.choose). Empty: the one the scene names, else "auto"."""
    category: str = ""
    """With --program auto: choose only among the library programs of this category (seating, table,
    storage, bed; ``splat programs`` lists them). Empty: all."""
    output_dir: Path = Path("outputs")
    """Runs are written to <output_dir>/<scene>/<run>/."""
    run: str = ""
    """Run name. Empty: a new timestamped name (with --resume: the latest run of the scene)."""
    resume: bool = False
    """Continue the run's latest checkpoint (its saved config.json is used)."""
    seed: int = 0
    """Seed of every random choice (view order, initialisation, search)."""
    device: str = "cpu"
    """Torch device ("cpu", "cuda")."""
    threads: int = 0
    """torch intra-op threads (0: leave torch's default)."""
    background: tuple[float, float, float] | None = None
    """Background colour of renders; None: the colour the scene's manifest states (black if none)."""
    structure: StructureConfig = field(default_factory=StructureConfig)
    """Stage (a) switches: structure search, silhouette check."""
    scan: ScanConfig = field(default_factory=ScanConfig)
    """The fused depth scan the search and the Chamfer loss fit."""
    # AvoidSubcommands: the Optional nested ``final_chamfer`` stays a plain default instead of a tyro
    # subcommand (it is set in presets or config.json, not on the command line).
    choice: ChoiceSettings = field(default_factory=ChoiceSettings)
    """Stage (a) with --program auto: the first round every library program gets and the finalists that
    get the full search (splat.search.choose.ChoiceSettings)."""
    search: Annotated[SearchSettings, tyro.conf.AvoidSubcommands] = field(default_factory=SearchSettings)
    """Stage (a): the genetic structure search (splat.search.SearchSettings; seed and progress come from
    --seed and --log.progress, placement.floor from the scan when None)."""
    gaussians: InitSettings = field(default_factory=InitSettings)
    """Procedural Gaussians bound to the program's canonical primitives (splat.gaussians.InitSettings)."""
    raster: RasterSettings = field(default_factory=RasterSettings)
    """Rasterizer (splat.render.RasterSettings); render_mode is chosen by each stage and stays "RGB" here."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Stage (b) optimiser: steps and learning rates."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Stage (b) loss weights."""
    densify: DensifySettings = field(default_factory=DensifySettings)
    """Densification and pruning in canonical space, thresholds and schedule
    (splat.gaussians.DensifySettings)."""
    log: LogConfig = field(default_factory=LogConfig)
    """TensorBoard, progress bars and checkpoints."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Stage (c): evaluation on the held-out test views."""

    @property
    def backend(self) -> str:
        """The rasterizer backend, ``raster.backend`` (read-only; for readers of the former top-level
        field)."""
        return self.raster.backend


# --- validation --------------------------------------------------------------------------------------

def validate_config(cfg: TrainConfig, *, file: str | os.PathLike | None = None) -> TrainConfig:
    """Raise :class:`SplatError` naming the field for any out-of-range value; return ``cfg``.

    Every float must be finite; every section (at any depth) with a ``validate()`` method checks itself
    (the library settings classes' own checks, their field names prefixed with the section's path); then
    the run-level fields and the checks that span sections.
    """
    f = None if file is None else os.fspath(file)
    for path, value in _walk(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            raise SplatError(f"must be a finite number, got {value}", file=f, field=path)
    for path, section in _sections(cfg):
        check = getattr(section, "validate", None)
        if callable(check):
            try:
                check()
            except SplatError as err:
                raise SplatError(err.message, file=f, field=f"{path}.{err.field}" if err.field else path) from None

    def need(ok: bool, field_name: str, message: str) -> None:
        if not ok:
            raise SplatError(message, file=f, field=field_name)

    need(bool(cfg.scene), "scene", "must name a scene or a scene folder")
    need(cfg.threads >= 0, "threads", f"must be >= 0, got {cfg.threads}")
    if cfg.background is not None:
        need(all(0.0 <= c <= 1.0 for c in cfg.background), "background",
             f"each channel must be in [0, 1], got {cfg.background}")
    library = SearchSettings()
    need(cfg.search.seed == library.seed, "search.seed",
         f"the search uses the run's seed (--seed); leave this at {library.seed}, got {cfg.search.seed}")
    need(cfg.search.progress == library.progress, "search.progress",
         "the search's progress bar follows --log.progress; leave this at its default")
    need(cfg.raster.render_mode == RasterSettings().render_mode, "raster.render_mode",
         f"each stage picks its render mode (joint training renders RGB+ED); leave this at "
         f"{RasterSettings().render_mode!r}, got {cfg.raster.render_mode!r}")
    need(cfg.densify.max_gaussians >= cfg.gaussians.num_init, "densify.max_gaussians",
         f"must be >= gaussians.num_init ({cfg.gaussians.num_init}), got {cfg.densify.max_gaussians}")
    return cfg


def _walk(obj: Any, prefix: str = ""):
    """(path, value) of every leaf field of a nested config."""
    for fld in dataclasses.fields(obj):
        value = getattr(obj, fld.name)
        path = f"{prefix}{fld.name}"
        if dataclasses.is_dataclass(value):
            yield from _walk(value, path + ".")
        else:
            yield path, value


def _sections(obj: Any, prefix: str = ""):
    """(path, dataclass) of every nested section, parents before their children."""
    for fld in dataclasses.fields(obj):
        value = getattr(obj, fld.name)
        if dataclasses.is_dataclass(value):
            yield prefix + fld.name, value
            yield from _sections(value, f"{prefix}{fld.name}.")


# --- JSON round trip ---------------------------------------------------------------------------------

def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain JSON-ready dict of a (nested) config dataclass: Paths as strings, tuples as lists, None kept."""
    out: dict[str, Any] = {}
    for fld in dataclasses.fields(cfg):
        value = getattr(cfg, fld.name)
        if dataclasses.is_dataclass(value):
            out[fld.name] = config_to_dict(value)
        elif isinstance(value, Path):
            out[fld.name] = str(value)
        elif isinstance(value, tuple):
            out[fld.name] = list(value)
        else:
            out[fld.name] = value
    return out


def config_from_dict(cls: type, data: Any, *, file: str | None = None, prefix: str = "") -> Any:
    """Rebuild ``cls`` from :func:`config_to_dict`'s output; unknown keys and wrong types raise SplatError."""
    if not isinstance(data, dict):
        raise SplatError("must be a JSON object", file=file, field=prefix.rstrip(".") or None)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise SplatError(f"unknown config key (known: {', '.join(sorted(names))})", file=file,
                             field=prefix + key)
    kwargs = {}
    for fld in dataclasses.fields(cls):
        if fld.name not in data:
            continue
        kwargs[fld.name] = _coerce(hints[fld.name], data[fld.name], file, prefix + fld.name)
    try:
        return cls(**kwargs)
    except (SplatError, ValueError) as err:  # settings classes that check themselves on construction
        sub = err.field if isinstance(err, SplatError) else None
        message = err.message if isinstance(err, SplatError) else str(err)
        path = prefix + sub if sub else prefix.rstrip(".") or None
        raise SplatError(message, file=file, field=path) from None


def _coerce(tp: Any, value: Any, file: str | None, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return config_from_dict(tp, value, file=file, prefix=path + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, file, path)
    if origin is Literal:
        if value not in args:
            raise SplatError(f"must be one of {list(args)}, got {value!r}", file=file, field=path)
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise SplatError(f"must be a list of {len(args)} values", file=file, field=path)
        return tuple(_coerce(a, v, file, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if tp is Path:
        if not isinstance(value, str):
            raise SplatError("must be a string path", file=file, field=path)
        return Path(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise SplatError(f"must be true or false, got {value!r}", file=file, field=path)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SplatError(f"must be an integer, got {value!r}", file=file, field=path)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SplatError(f"must be a number, got {value!r}", file=file, field=path)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SplatError(f"must be a string, got {value!r}", file=file, field=path)
        return value
    raise TypeError(f"unsupported config field type {tp!r} at {path}")


def save_config(path: str | os.PathLike, cfg: TrainConfig) -> None:
    """Write the resolved config atomically as JSON."""
    from splat.io import write_json_atomic

    write_json_atomic(path, config_to_dict(cfg))


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a config.json written by :func:`save_config` (validated)."""
    p = os.fspath(path)
    data = read_json(p)
    return validate_config(config_from_dict(TrainConfig, data, file=p), file=p)
