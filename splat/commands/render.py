"""``splat render RUN`` (also ``python render.py RUN``): novel views, held-out views, edits, sweeps.

Given a run folder (``outputs/<scene>/<run>``), its ``assets/`` folder or a checkpoint, :func:`render` writes into
``--out`` (default ``<run>/renders``):

- ``orbit.mp4`` / ``orbit.gif``: ``--frames`` views on a circle around the object, each frame the
  requested modes side by side (RGB | colour-mapped depth | alpha);
- ``views/<name>.png`` for every camera of ``--cameras`` (a transforms.json-style file);
- ``test/<name>.png``: each held-out view of the run's scene as target | RGB | depth | alpha, with the
  PSNR printed (when the scene can be found);
- ``sweep_<param>.mp4`` / ``.gif`` with ``--edit-sweep NAME``: the parameter swept across its range
  from a fixed camera.

``--set "Seat Height=0.62"`` (repeatable) edits parameters first: the program is re-evaluated and the
procedural Gaussians follow their primitives; edited outputs get an ``_edited`` suffix. Every output
file is written atomically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch
import tyro

from splat.errors import SplatError
from splat.render.cameras import bounds_sphere, load_camera_file, orbit_cameras, orbit_distance
from splat.params import find_param, inactive_edits, parse_sets, sweep_values
from splat.render.frames import ViewSettings, hstack, panel, render_views, shared_depth_range
from splat.render.video import write_video


@dataclass(frozen=True)
class RenderConfig:
    """``splat render RUN``: render a trained (and optionally edited) object."""

    run: tyro.conf.Positional[Path]
    """Run folder (outputs/<scene>/<run>), its assets/ folder, or a bare 3DGS splats.ply (view only)."""
    out: Optional[Path] = None
    """Output folder. Default: <run>/renders."""
    set: tyro.conf.UseAppendAction[tuple[str, ...]] = ()
    """Edit a parameter before rendering, NAME=VALUE (repeat for several): --set "Seat Height=0.62"."""
    orbit: bool = True
    """Render the orbit video."""
    frames: int = 48
    """Frames of the orbit video (one turn)."""
    fps: float = 16.0
    """Frames per second of the videos."""
    formats: tuple[Literal["mp4", "gif"], ...] = ("mp4", "gif")
    """Video containers to write."""
    modes: tuple[Literal["rgb", "depth", "alpha"], ...] = ("rgb", "depth", "alpha")
    """Images per view, side by side: RGB, colour-mapped (turbo) depth, alpha."""
    width: int = 256
    """Width of orbit / sweep frames (pixels)."""
    height: int = 256
    """Height of orbit / sweep frames (pixels)."""
    fov: float = 40.0
    """Horizontal field of view of orbit / sweep cameras (degrees)."""
    elevation: float = 20.0
    """Elevation of orbit / sweep cameras above the object's centre (degrees)."""
    strip: int = 0
    """Also write orbit_strip.png (and sweep_<param>_strip.png with --edit-sweep): this many evenly
    spaced frames side by side, the sweep's from the low to the high end (0: none)."""
    cameras: Optional[Path] = None
    """Also render the views of this transforms.json-style camera file into views/."""
    test_views: bool = True
    """Render the scene's held-out (test) views beside their targets into test/ (skipped with a note
    when the run's scene cannot be found)."""
    scene: Optional[Path] = None
    """Scene folder for the test views. Default: the scene named in the run's config.json."""
    edit_sweep: Optional[str] = None
    """Render a video sweeping this parameter across its range (fixed camera)."""
    sweep_frames: int = 24
    """Frames of the sweep video."""
    background: Optional[tuple[float, float, float]] = None
    """Background colour (RGB in [0, 1]). Default: white, and for the test views the background the
    scene's images were composited over (as the trainer uses)."""
    backend: Literal["auto", "cpu", "torch", "gsplat"] = "auto"
    """Rasterizer backend."""
    device: str = "cpu"
    """Torch device of the Gaussians."""


@dataclass(frozen=True)
class RenderResult:
    """Paths :func:`render` wrote, and what it measured."""

    files: tuple[Path, ...]
    params: dict[str, Any]  # the parameters rendered (after edits)
    test_psnr: dict[str, float]  # held-out view name -> PSNR (dB), empty when not rendered


def _check(cfg: RenderConfig) -> None:
    if cfg.strip < 0:
        raise SplatError(f"must be >= 0, got {cfg.strip}", field="--strip")
    for name in ("frames", "width", "height", "sweep_frames"):
        if getattr(cfg, name) < 1:
            raise SplatError(f"must be >= 1, got {getattr(cfg, name)}", field=f"--{name.replace('_', '-')}")
    if not 0 < cfg.fov < 180:
        raise SplatError(f"must be in (0, 180) degrees, got {cfg.fov}", field="--fov")
    if not cfg.modes:
        raise SplatError("give at least one of rgb, depth, alpha", field="--modes")
    if str(cfg.device).startswith("cuda") and not torch.cuda.is_available():
        raise SplatError(f"{cfg.device!r} asked for but no CUDA device is available; use --device cpu",
                         field="--device")
    if cfg.background is not None and not all(0 <= c <= 1 for c in cfg.background):
        raise SplatError(f"must be RGB in [0, 1], got {cfg.background}", field="--background")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _frames(splats_list: list[Any], cams: list[Any], cfg: RenderConfig, vs: ViewSettings) -> np.ndarray:
    """Render one camera per Gaussian set (or all cameras of one set), one depth scale for all."""
    views = []
    for sp, cam in zip(splats_list, cams):
        views.extend(render_views(sp, [cam], vs))
    near, far = shared_depth_range(views)
    return np.stack([panel(v, cfg.modes, near=near, far=far) for v in views])


def render(cfg: RenderConfig) -> RenderResult:
    """Do what ``splat render`` does (see the module docstring); returns what was written."""
    from splat.workspace import load_run, run_scene_dir
    from splat.render.images import write_png

    _check(cfg)
    if cfg.run.suffix.lower() == ".ply" and cfg.run.is_file():
        return _render_ply(cfg)
    asset = load_run(cfg.run, device=cfg.device)
    edits = parse_sets(cfg.set, asset.program.space)
    fitted = asset
    if edits:
        for name in inactive_edits(asset.program.space, {**asset.params, **edits}, edits):
            print(f"note: {name!r} is inactive with these parameters; editing it changes nothing")
        asset = asset.with_params(edits)
        _note_new_primitives(fitted, asset)
    sweep_param = find_param(asset.program.space, cfg.edit_sweep, field="--edit-sweep") if cfg.edit_sweep else None
    out = cfg.out or (asset.root or Path(cfg.run)) / "renders"
    tag = "_edited" if edits else ""
    vs = ViewSettings(background=cfg.background or (1.0, 1.0, 1.0), backend=cfg.backend)
    files: list[Path] = []

    world = asset.world_gaussians()
    ref = fitted.world_gaussians().means.detach().cpu().numpy()
    center, radius = bounds_sphere(ref if len(ref) else world.means.detach().cpu().numpy())
    dist = orbit_distance(radius, cfg.fov, cfg.width, cfg.height)

    if cfg.orbit:
        cams = orbit_cameras(center, dist, cfg.frames, width=cfg.width, height=cfg.height, fov_deg=cfg.fov,
                             elevation_deg=cfg.elevation)
        frames = _frames([world] * len(cams), cams, cfg, vs)
        for fmt in cfg.formats:
            files.append(write_video(out / f"orbit{tag}.{fmt}", frames, fps=cfg.fps))
        if cfg.strip:
            files.append(write_png(out / f"orbit_strip{tag}.png", _strip(frames, cfg.strip)))

    if cfg.cameras is not None:
        cams = load_camera_file(cfg.cameras)
        views = render_views(world, cams, vs)
        near, far = shared_depth_range(views)
        for v in views:
            files.append(write_png(out / "views" / f"{v.name}{tag}.png", panel(v, cfg.modes, near=near, far=far)))

    psnrs: dict[str, float] = {}
    if cfg.test_views:
        scene_root = run_scene_dir(asset, cfg.scene, required=False)
        if scene_root is None:
            print(f"note: no scene found for the test views (run scene: {asset.scene!r}); use --scene")
        else:
            from splat.data import load_scene

            scene = load_scene(scene_root)
            idx = list(scene.split["test"])
            if not idx:
                print(f"note: scene {scene_root} has no held-out (test) views")
            cams = [scene.cameras[i] for i in idx]
            from splat.data import scene_background

            views = render_views(world, cams, replace(vs, background=scene_background(scene, cfg.background)))
            near, far = shared_depth_range(views)
            for i, v in zip(idx, views):
                target = scene.images[i]
                psnrs[v.name] = _psnr(v.rgb, target)
                files.append(write_png(out / "test" / f"{v.name}{tag}.png",
                                       panel(v, cfg.modes, target=target, near=near, far=far)))
            if psnrs:
                mean = sum(psnrs.values()) / len(psnrs)
                print(f"test views: {len(psnrs)}, mean PSNR {mean:.2f} dB (whole image)"
                      + (" (edited parameters)" if edits else ""))

    if sweep_param is not None:
        values = sweep_values(sweep_param, cfg.sweep_frames)
        cam = orbit_cameras(center, dist * 1.1, 8, width=cfg.width, height=cfg.height, fov_deg=cfg.fov,
                            elevation_deg=cfg.elevation, name="sweep")[1]
        cache: dict[Any, Any] = {}
        sets = []
        for v in values:
            if v not in cache:
                cache[v] = asset.with_params({sweep_param.name: v}).world_gaussians()
            sets.append(cache[v])
        frames = _frames(sets, [cam] * len(sets), cfg, vs)
        slug = "".join(ch if ch.isalnum() else "_" for ch in sweep_param.name).strip("_").lower()
        for fmt in cfg.formats:
            files.append(write_video(out / f"sweep_{slug}{tag}.{fmt}", frames, fps=cfg.fps))
        if cfg.strip:
            if sweep_param.type == "float":  # low -> high half of the ping-pong
                peak = int(np.argmax(values))
                idx = sorted(set(np.round(np.linspace(0, peak, min(cfg.strip, peak + 1))).astype(int).tolist()))
            else:  # the first frame of each value
                idx = [i for i, v in enumerate(values) if i == 0 or v != values[i - 1]][: cfg.strip]
            files.append(write_png(out / f"sweep_{slug}_strip{tag}.png", hstack([frames[i] for i in idx], gap=2)))

    for f in files:
        print(f"wrote {f}")
    return RenderResult(tuple(files), dict(asset.params), psnrs)


def _note_new_primitives(before: Any, after: Any) -> None:
    new = [k for k in after.gaussians.keys if k not in set(before.gaussians.keys)]
    if new:
        names = ", ".join(sorted({f"{k.tree}/{k.node}" for k in new}))
        print(f"note: the edit adds primitives the run has no trained Gaussians for ({names}); "
              "they are covered with new Gaussians in the colour of their neighbours")


def _strip(frames: np.ndarray, n: int) -> np.ndarray:
    """``n`` evenly spaced frames of ``frames`` [T, H, W, 3] side by side (a 2-pixel white gap)."""
    idx = np.linspace(0, len(frames), min(n, len(frames)), endpoint=False).astype(int)
    return hstack([frames[i] for i in idx], gap=2)


def _render_ply(cfg: RenderConfig) -> RenderResult:
    """Orbit video and camera-file views of a bare 3DGS PLY (no program: no edits, no sweep)."""
    from splat.export.ply import read_splats_ply
    from splat.render.frames import splats_from_cloud
    from splat.render.images import write_png

    for flag, given in (("--set", bool(cfg.set)), ("--edit-sweep", cfg.edit_sweep is not None)):
        if given:
            raise SplatError("editing needs a run folder (program + Gaussians), not a bare splats.ply",
                             file=cfg.run, field=flag)
    splats = splats_from_cloud(read_splats_ply(cfg.run, device=cfg.device))
    out = cfg.out or cfg.run.parent / "renders"
    vs = ViewSettings(background=cfg.background or (1.0, 1.0, 1.0), backend=cfg.backend)
    files: list[Path] = []
    center, radius = bounds_sphere(splats.means.cpu().numpy())
    if cfg.orbit:
        cams = orbit_cameras(center, orbit_distance(radius, cfg.fov, cfg.width, cfg.height), cfg.frames,
                             width=cfg.width, height=cfg.height, fov_deg=cfg.fov, elevation_deg=cfg.elevation)
        frames = _frames([splats] * len(cams), cams, cfg, vs)
        for fmt in cfg.formats:
            files.append(write_video(out / f"orbit_{cfg.run.stem}.{fmt}", frames, fps=cfg.fps))
    if cfg.cameras is not None:
        views = render_views(splats, load_camera_file(cfg.cameras), vs)
        near, far = shared_depth_range(views)
        for v in views:
            files.append(write_png(out / "views" / f"{v.name}.png", panel(v, cfg.modes, near=near, far=far)))
    for f in files:
        print(f"wrote {f}")
    return RenderResult(tuple(files), {}, {})


def main(argv: Optional[list[str]] = None) -> RenderResult:
    """Parse the command line (tyro) and render; wrap in :func:`splat.cli.run_cli`."""
    cfg = tyro.cli(RenderConfig, args=argv, prog="splat render", description=__doc__.split("\n\n")[0])
    return render(cfg)
