"""``splat make-scene``: a ground-truth scene rendered by Blender Cycles (needs the `blender` extra).

    splat make-scene --program chair --seed 3 --out scenes/my_chair          # random valid params
    splat make-scene --program table --params '{"Width": 1.5}' --out scenes/t
    splat make-scene --mesh model.gltf --out scenes/m                         # glTF / OBJ / PLY
    splat make-scene --all [--only stool chair]                              # re-make the shipped scenes
    splat make-scene --program chair --capture --out captures/chair            # a capture-like RGB-D capture

``--capture`` writes a hand-held RGB-D capture of the object in a cluttered room (nerfstudio layout, read
by ``splat import nerfstudio``) with its ground truth in ``truth/`` (splat.blender.scene_capture).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import tyro

from splat.errors import SplatError

_CAMERAS_DEFAULT = dict(width=256, height=256, n_train=24, n_test=8, focal_mm=35.0)


@dataclass(frozen=True)
class MakeSceneConfig:
    """Render a ground-truth scene (RGB, depth, masks, GT mesh, GT parameters) with Blender Cycles."""

    program: Optional[str] = None
    """A library program name or a program path (the scene is this program at --params)."""
    mesh: Optional[Path] = None
    """A mesh file Blender imports (.gltf/.glb/.obj/.ply), instead of a program."""
    all: bool = False
    """Re-make the shipped scenes (splat/scenes)."""
    only: tuple[str, ...] = ()
    """With --all: only these shipped scenes."""
    params: Optional[str] = None
    """JSON object (or a .json file) of program parameters. Default: random valid parameters."""
    seed: int = 0
    """Seed of every random choice."""
    out: Optional[Path] = None
    """Output scene folder."""
    width: Optional[int] = None
    """Image width (default 256; 320 with --capture)."""
    height: Optional[int] = None
    """Image height (default 256; 240 with --capture)."""
    n_train: int = 24
    n_test: int = 8
    focal_mm: Optional[float] = None
    """Lens focal length over a 36 mm sensor (default 35; 30 with --capture, ~60 degrees across)."""
    samples: Optional[int] = None
    """Cycles samples per pixel (default 32; 16 with --capture)."""
    denoise: bool = True
    """Denoise the renders."""
    threads: int = 2
    """Render threads (0 = all cores)."""
    sensor_noise: bool = False
    """Add depth-sensor noise and holes (structured-light model) to the depth maps (always on with --capture)."""
    capture: bool = False
    """Write a capture-like scene instead: a hand-held RGB-D loop in a cluttered room, read by `splat import
    nerfstudio` (no masks; depth of everything, with sensor noise), the ground truth in truth/."""
    n_views: Optional[int] = None
    """--capture: frames along the loop (default 40)."""
    loop_distance: Optional[tuple[float, float]] = None
    """--capture: range of the camera's horizontal distance from the object, metres (default 1.2 1.8)."""
    loop_height: Optional[tuple[float, float]] = None
    """--capture: range of the camera's height above the floor, metres (default 1.0 1.5)."""
    clutter: Optional[int] = None
    """--capture: number of other things on the floor (boxes, cylinders, library programs; default 6)."""
    clutter_programs: Optional[tuple[str, ...]] = None
    """--capture: library programs the clutter may be (default chair table cabinet bookshelf; `--clutter-programs`
    alone: boxes and cylinders only)."""
    walls: Optional[int] = None
    """--capture: walls beyond the clutter, 0, 1 or 2 meeting in a corner (default 2)."""
    floor_texture: Optional[bool] = None
    """--capture: a procedural floor (planks, tiles, carpet; default on) or flat grey."""
    exposure: Optional[float] = None
    """--capture: per-view exposure gain within 1 +- this (default 0.3)."""
    white_balance: Optional[float] = None
    """--capture: per-view white balance per channel within +- this (default 0.05)."""
    pose_noise_m: Optional[float] = None
    """--capture: distance of each written camera centre from the true one, metres (default 0.01)."""
    pose_noise_deg: Optional[float] = None
    """--capture: angle of each written camera orientation from the true one, degrees (default 0.5)."""
    jpeg_quality: Optional[int] = None
    """--capture: JPEG quality of the colour images, 0 = PNG (default 90)."""


def parse_params(text: str | None) -> dict | None:
    """``--params``: a JSON object, or the path of a JSON file holding one."""
    if text is None:
        return None
    from splat.io import parse_json, read_json

    src = Path(text)
    if not text.lstrip().startswith("{") and src.is_file():
        value = read_json(src)
    else:
        value = parse_json(text, field="--params")
    if not isinstance(value, dict):
        raise SplatError("must be a JSON object {name: value}", field="--params")
    return value


def make(cfg: MakeSceneConfig, command: str = "splat make-scene") -> list[Path]:
    """Run the scene maker for ``cfg``; returns the written transforms.json paths."""
    from splat.blender.make_scene import (CameraSettings, RenderSettings, SceneRequest, SensorNoise,
                                          make_scene, make_shipped)

    sources = sum([cfg.program is not None, cfg.mesh is not None, cfg.all])
    if sources != 1:
        raise SplatError("give exactly one of --program, --mesh or --all", field="--program")
    if cfg.all:
        return make_shipped(list(cfg.only) or None)
    if cfg.out is None:
        raise SplatError("is required (the scene folder to write)", field="--out")
    given = [f"--{k.replace('_', '-')}" for k in _CAPTURE_ONLY if getattr(cfg, k) is not None]
    if given and not cfg.capture:
        raise SplatError("is an option of capture-like scenes: add --capture", field=given[0])
    capture = cfg.capture
    cams = replace(CameraSettings(), width=_pick(cfg.width, 320 if capture else 256),
                   height=_pick(cfg.height, 240 if capture else 256), n_train=cfg.n_train, n_test=cfg.n_test,
                   focal_mm=_pick(cfg.focal_mm, 30.0 if capture else 35.0))
    render = replace(RenderSettings(), samples=_pick(cfg.samples, 16 if capture else 32), denoise=cfg.denoise,
                     threads=cfg.threads)
    req = SceneRequest(out=cfg.out, seed=cfg.seed, program=cfg.program, params=parse_params(cfg.params),
                       mesh_file=cfg.mesh)
    if capture:
        from splat.blender.scene_capture import make_capture_scene

        written = make_capture_scene(req, cameras=cams, render=render, capture=capture_settings(cfg),
                                     command=command, log=lambda msg: print(msg, flush=True))
        return [written.transforms]
    return [make_scene(req, cameras=cams, render=render, noise=SensorNoise(enabled=cfg.sensor_noise),
                       command=command)]


_CAPTURE_ONLY = ("n_views", "loop_distance", "loop_height", "clutter", "clutter_programs", "walls", "floor_texture",
                 "exposure", "white_balance", "pose_noise_m", "pose_noise_deg", "jpeg_quality")


def _pick(value, default):
    return default if value is None else value


def capture_settings(cfg: MakeSceneConfig):
    """The CaptureSettings of ``cfg``'s capture options (the defaults where not given)."""
    from splat.blender.scene_capture import CaptureSettings

    base = CaptureSettings()
    loop = replace(base.loop, n_views=_pick(cfg.n_views, base.loop.n_views),
                   distance=_pick(cfg.loop_distance, base.loop.distance),
                   height=_pick(cfg.loop_height, base.loop.height))
    over = {k: getattr(cfg, k) for k in _CAPTURE_ONLY[3:] if getattr(cfg, k) is not None}
    return replace(base, loop=loop, **over)


def main(argv: list[str] | None = None) -> list[Path]:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = tyro.cli(MakeSceneConfig, args=argv, prog="splat make-scene", description=__doc__.split("\n\n")[0])
    paths = make(cfg, command="splat make-scene " + " ".join(shlex.quote(a) for a in argv))
    for p in paths:
        print(p)
    return paths
