"""Training configuration: nested frozen dataclasses, one docstring per field (tyro shows them as help).

The resolved config is saved as ``config.json`` in the run folder and reloaded through the same
dataclasses (:func:`config_to_dict`, :func:`config_from_dict`); nothing is ever ``eval``-ed.
:func:`validate_config` turns bad values into :class:`splat.errors.SplatError` naming the field
(``optim.steps``), so the CLI prints one line and exits with status 2.

Presets keyed by scene name live in ``configs/`` (see :mod:`configs`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from splat.errors import SplatError
from splat.io import read_json


@dataclass(frozen=True)
class SearchConfig:
    """Stage (a): structure search of the shape program against the fused depth scan."""

    enabled: bool = True
    """Run the structure search; when False the program's default parameters (placed on the scan's
    bounding box) start the joint stage."""
    population: int = 32
    """Genomes per GA generation."""
    generations: int = 20
    """GA generations (the search may stop earlier on stagnation)."""
    scan_points: int = 20000
    """Points kept from the fused depth scan (uniform subsample) for the search and the Chamfer loss."""
    scan_voxel: float = 0.005
    """Voxel edge (metres) the fused scan is downsampled with before that subsample, so its density is
    even over the surface (0: no voxel step). The search's surface -> scan term measures distances
    beyond the local point spacing, which an uneven scan (parts seen by few views) would skew."""
    final_refine_steps: int = 150
    """Adam steps of the search's final refinement of the winner's continuous genes."""
    silhouette_check: bool = True
    """After the search, re-check the discrete parameters against the train masks (silhouette +
    Chamfer; see splat.train.structure)."""


@dataclass(frozen=True)
class GaussianConfig:
    """Procedural Gaussians bound to the program's canonical primitives."""

    num_init: int = 12000
    """Gaussians created at initialisation, over all canonical primitives (area-weighted in world units)."""
    sh_degree: int = 0
    """Spherical-harmonics degree of the colours (0: view-independent DC colour only)."""
    init_color: Literal["project", "constant"] = "project"
    """Initial colours: "project" averages the training images where a Gaussian is visible,
    "constant" uses ``constant_color``."""
    constant_color: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """Colour (linear [0,1] RGB as stored in the images) used by init_color="constant" and for
    Gaussians no training view sees."""
    init_opacity: float = 0.7
    """Initial opacity of every Gaussian, in (0, 1)."""
    flatness: float = 0.15
    """Initial scale along the face normal, as a fraction of the in-plane scale (flat Gaussians)."""
    per_copy_residuals: bool = False
    """Learn a colour residual per copy of a primitive (for copies that differ in appearance)."""


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
    scale: float = 1.0
    """Weight of the penalty on world scales above ``max_scale``."""
    max_scale: float = 0.05
    """Largest world scale (standard deviation, metres) a Gaussian may take without penalty."""


@dataclass(frozen=True)
class DensifyConfig:
    """Densification and pruning in canonical space."""

    enabled: bool = True
    """Clone/split Gaussians with a large view-space gradient, prune transparent ones."""
    start: int = 100
    """First step at which densification runs."""
    stop: int = 1000
    """Step after which the set of Gaussians is frozen."""
    every: int = 100
    """Densify/prune every this many steps."""
    grad_threshold: float = 2e-4
    """Mean view-space position-gradient norm (NDC-like units as gsplat) above which a Gaussian grows."""
    split_scale: float = 0.01
    """Gaussians whose largest world scale exceeds this (metres) are split, smaller ones cloned."""
    prune_opacity: float = 0.01
    """Gaussians with opacity below this are pruned."""
    max_gaussians: int = 60000
    """Upper bound on the number of canonical Gaussians."""


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
    """Show a tqdm progress bar with the current loss."""


@dataclass(frozen=True)
class EvalConfig:
    """Stage (c): evaluation on the held-out test views."""

    fscore_tau: float = 0.01
    """Distance threshold of the F-score (metres)."""
    surface_samples: int = 20000
    """Program surface samples for Chamfer-L2 and F-score."""
    save_renders: bool = True
    """Write the test-view renders to renders/ in the run folder."""


@dataclass(frozen=True)
class TrainConfig:
    """``python train.py --scene NAME``: fit a shape program and its Gaussians to a scene."""

    scene: str = "chair"
    """A registered scene name (see configs/) or a path to a scene folder."""
    program: str = ""
    """Shape program: a name in programs/ or a path to a graph JSON. Empty: the one the scene names."""
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
    backend: Literal["auto", "cpu", "torch", "gsplat"] = "auto"
    """Rasterizer backend (see splat.render.rasterize)."""
    threads: int = 0
    """torch intra-op threads (0: leave torch's default)."""
    background: tuple[float, float, float] | None = None
    """Background colour of renders; None: the colour the scene's manifest states (black if none)."""
    search: SearchConfig = field(default_factory=SearchConfig)
    gaussians: GaussianConfig = field(default_factory=GaussianConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    log: LogConfig = field(default_factory=LogConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# --- validation --------------------------------------------------------------------------------------

def _check(cond: bool, field_name: str, message: str, file: str | None) -> None:
    if not cond:
        raise SplatError(message, file=file, field=field_name)


def validate_config(cfg: TrainConfig, *, file: str | os.PathLike | None = None) -> TrainConfig:
    """Raise :class:`SplatError` naming the field for any out-of-range value; return ``cfg``."""
    f = None if file is None else os.fspath(file)
    for path, value in _walk(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            raise SplatError(f"must be a finite number, got {value}", file=f, field=path)
    _check(bool(cfg.scene), "scene", "must name a scene or a scene folder", f)
    _check(cfg.threads >= 0, "threads", f"must be >= 0, got {cfg.threads}", f)
    if cfg.background is not None:
        _check(all(0.0 <= c <= 1.0 for c in cfg.background), "background",
               f"each channel must be in [0, 1], got {cfg.background}", f)
    s = cfg.search
    _check(s.population >= 2, "search.population", f"must be >= 2, got {s.population}", f)
    _check(s.generations >= 1, "search.generations", f"must be >= 1, got {s.generations}", f)
    _check(s.scan_points >= 16, "search.scan_points", f"must be >= 16, got {s.scan_points}", f)
    _check(math.isfinite(s.scan_voxel) and s.scan_voxel >= 0, "search.scan_voxel",
           f"must be a finite number >= 0, got {s.scan_voxel}", f)
    _check(s.final_refine_steps >= 0, "search.final_refine_steps", f"must be >= 0, got {s.final_refine_steps}", f)
    g = cfg.gaussians
    _check(g.num_init >= 1, "gaussians.num_init", f"must be >= 1, got {g.num_init}", f)
    _check(0 <= g.sh_degree <= 3, "gaussians.sh_degree", f"must be in [0, 3], got {g.sh_degree}", f)
    _check(0.0 < g.init_opacity < 1.0, "gaussians.init_opacity", f"must be in (0, 1), got {g.init_opacity}", f)
    _check(0.0 < g.flatness <= 1.0, "gaussians.flatness", f"must be in (0, 1], got {g.flatness}", f)
    _check(all(0.0 <= c <= 1.0 for c in g.constant_color), "gaussians.constant_color",
           f"each channel must be in [0, 1], got {g.constant_color}", f)
    o = cfg.optim
    _check(o.steps >= 0, "optim.steps", f"must be >= 0, got {o.steps}", f)
    for name in ("lr_means", "lr_scales", "lr_quats", "lr_opacities", "lr_colors", "lr_residuals",
                 "lr_program", "lr_placement"):
        v = getattr(o, name)
        _check(v >= 0.0, f"optim.{name}", f"must be >= 0, got {v}", f)
    _check(0.0 < o.lr_final_ratio <= 1.0, "optim.lr_final_ratio", f"must be in (0, 1], got {o.lr_final_ratio}", f)
    _check(0.0 < o.lr_program_final_ratio <= 1.0, "optim.lr_program_final_ratio",
           f"must be in (0, 1], got {o.lr_program_final_ratio}", f)
    _check(o.program_start >= 0, "optim.program_start", f"must be >= 0, got {o.program_start}", f)
    _check(1 <= o.downscale <= 8, "optim.downscale", f"must be in [1, 8], got {o.downscale}", f)
    _check(o.full_res_steps >= 0, "optim.full_res_steps", f"must be >= 0, got {o.full_res_steps}", f)
    lo = cfg.loss
    for name in ("ssim", "mask", "depth", "chamfer", "surface", "scale"):
        v = getattr(lo, name)
        _check(v >= 0.0, f"loss.{name}", f"must be >= 0, got {v}", f)
    _check(lo.ssim <= 1.0, "loss.ssim", f"must be in [0, 1], got {lo.ssim}", f)
    _check(lo.chamfer_samples >= 1, "loss.chamfer_samples", f"must be >= 1, got {lo.chamfer_samples}", f)
    _check(lo.chamfer_scan_points >= 16, "loss.chamfer_scan_points",
           f"must be >= 16, got {lo.chamfer_scan_points}", f)
    _check(lo.max_scale > 0.0, "loss.max_scale", f"must be > 0, got {lo.max_scale}", f)
    d = cfg.densify
    _check(d.every >= 1, "densify.every", f"must be >= 1, got {d.every}", f)
    _check(d.grad_threshold > 0.0, "densify.grad_threshold", f"must be > 0, got {d.grad_threshold}", f)
    _check(d.split_scale > 0.0, "densify.split_scale", f"must be > 0, got {d.split_scale}", f)
    _check(0.0 <= d.prune_opacity < 1.0, "densify.prune_opacity", f"must be in [0, 1), got {d.prune_opacity}", f)
    _check(d.max_gaussians >= g.num_init, "densify.max_gaussians",
           f"must be >= gaussians.num_init ({g.num_init}), got {d.max_gaussians}", f)
    lg = cfg.log
    _check(lg.every >= 1, "log.every", f"must be >= 1, got {lg.every}", f)
    _check(lg.image_every >= 0, "log.image_every", f"must be >= 0, got {lg.image_every}", f)
    _check(lg.checkpoint_every >= 0, "log.checkpoint_every", f"must be >= 0, got {lg.checkpoint_every}", f)
    e = cfg.eval
    _check(e.fscore_tau > 0.0, "eval.fscore_tau", f"must be > 0, got {e.fscore_tau}", f)
    _check(e.surface_samples >= 16, "eval.surface_samples", f"must be >= 16, got {e.surface_samples}", f)
    return cfg


def _walk(obj: Any, prefix: str = ""):
    for fld in dataclasses.fields(obj):
        value = getattr(obj, fld.name)
        path = f"{prefix}{fld.name}"
        if dataclasses.is_dataclass(value):
            yield from _walk(value, path + ".")
        else:
            yield path, value


# --- JSON round trip ---------------------------------------------------------------------------------

def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain JSON-ready dict of a (nested) config dataclass: Paths as strings, tuples as lists."""
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
    return cls(**kwargs)


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
