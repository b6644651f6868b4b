"""``splat make-scene``: a ground-truth scene rendered by Blender Cycles (needs the `blender` extra).

    splat make-scene --program chair --seed 3 --out scenes/my_chair          # random valid params
    splat make-scene --program table --params '{"Width": 1.5}' --out scenes/t
    splat make-scene --mesh model.gltf --out scenes/m                         # glTF / OBJ / PLY
    splat make-scene --all [--only stool chair]                              # re-make the shipped scenes
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
    width: int = 256
    height: int = 256
    n_train: int = 24
    n_test: int = 8
    focal_mm: float = 35.0
    samples: int = 32
    """Cycles samples per pixel."""
    denoise: bool = True
    """Denoise the renders."""
    threads: int = 2
    """Render threads (0 = all cores)."""
    sensor_noise: bool = False
    """Add depth-sensor noise and holes (structured-light model) to the depth maps."""


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
    cams = replace(CameraSettings(), width=cfg.width, height=cfg.height, n_train=cfg.n_train,
                   n_test=cfg.n_test, focal_mm=cfg.focal_mm)
    render = replace(RenderSettings(), samples=cfg.samples, denoise=cfg.denoise, threads=cfg.threads)
    req = SceneRequest(out=cfg.out, seed=cfg.seed, program=cfg.program, params=parse_params(cfg.params),
                       mesh_file=cfg.mesh)
    return [make_scene(req, cameras=cams, render=render, noise=SensorNoise(enabled=cfg.sensor_noise),
                       command=command)]


def main(argv: list[str] | None = None) -> list[Path]:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = tyro.cli(MakeSceneConfig, args=argv, prog="splat make-scene", description=__doc__.split("\n\n")[0])
    paths = make(cfg, command="splat make-scene " + " ".join(shlex.quote(a) for a in argv))
    for p in paths:
        print(p)
    return paths
