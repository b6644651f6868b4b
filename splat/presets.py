"""Training presets, a registry keyed by scene name: ``python train.py --scene chair``.

Each preset is a function returning a :class:`splat.config.TrainConfig` tuned for one shipped
scene (``splat/scenes/<name>``, :data:`splat.workspace.SCENES_DIR`). :func:`smoke` shrinks any config to a couple of cheap steps for tests.
Every field of a preset can still be overridden from the command line (``--optim.steps 500``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from splat.errors import SplatError
from splat.config import (
    DensifyConfig,
    EvalConfig,
    GaussianConfig,
    LogConfig,
    OptimConfig,
    SearchConfig,
    TrainConfig,
)



def chair() -> TrainConfig:
    """The default chair scene: structure search + silhouette check, then 1000 joint steps.

    The program's parameters and placement stay at the search's values here (learning rates 0): on the
    shipped scenes the photometric/mask gradients, biased by the Gaussians' blur past the primitives'
    edges, shrank thin parts (leg size, back and seat thickness) by several % of their range within a few
    hundred steps, while the search alone lands within ~0.1% on most parameters. Re-enable with ``--optim.lr-program 5e-3
    --optim.lr-placement 1e-3`` (the gradients do reach them: tests/test_gaussians.py).
    """
    return TrainConfig(
        scene="chair",
        search=SearchConfig(population=32, generations=20),
        gaussians=GaussianConfig(num_init=12000),
        optim=OptimConfig(steps=1000, lr_program=0.0, lr_placement=0.0),
        densify=DensifyConfig(start=100, stop=800, every=100, max_gaussians=40000),
    )


def table() -> TrainConfig:
    """The shipped table scene (our table program): the chair's settings."""
    return dataclasses.replace(chair(), scene="table")


def cabinet() -> TrainConfig:
    """The shipped cabinet scene (our cabinet program): the chair's settings."""
    return dataclasses.replace(chair(), scene="cabinet")


PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "chair": chair,
    "table": table,
    "cabinet": cabinet,
}
"""Scene name -> preset. A registered name must be a shipped scene (:func:`splat.workspace.shipped_scenes`)."""


def preset(name: str) -> TrainConfig:
    """The preset of a registered scene, or a default config for a scene folder path."""
    if name in PRESETS:
        return PRESETS[name]()
    path = Path(name)
    if path.is_dir():
        return TrainConfig(scene=str(path))
    known = ", ".join(sorted(PRESETS))
    raise SplatError(f"unknown scene {name!r}: not a registered scene ({known}) nor a scene folder",
                     field="--scene")


def smoke(cfg: TrainConfig) -> TrainConfig:
    """Shrink ``cfg`` to two cheap steps: tiny search, few Gaussians, no images logged."""
    return dataclasses.replace(
        cfg,
        search=dataclasses.replace(cfg.search, population=4, generations=1, scan_points=512,
                                   final_refine_steps=2, silhouette_check=False),
        gaussians=dataclasses.replace(cfg.gaussians, num_init=300),
        optim=dataclasses.replace(cfg.optim, steps=2, program_start=0),
        loss=dataclasses.replace(cfg.loss, chamfer_samples=256),
        densify=dataclasses.replace(cfg.densify, start=1, stop=2, every=1, max_gaussians=2000),
        log=LogConfig(every=1, image_every=2, checkpoint_every=1, progress=False),
        eval=EvalConfig(fscore_tau=cfg.eval.fscore_tau, surface_samples=512, save_renders=False),
    )
