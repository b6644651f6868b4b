"""Where things are: shipped scenes, scene folders, a run's program, run folders and checkpoints.

This is the one module that turns what a user types into files:

- a *scene* is a registered name (a shipped scene, package data in ``splat/scenes/<name>``) or a path
  to a scene folder (:func:`scene_dir`);
- a run's *program* is the one its config names (``--program``: a library name or a path), else the one
  its scene names: a file beside the scene's ``transforms.json``, else a library program
  (:func:`program_for`);
- a *run* is a run folder (``outputs/<scene>/<run>``), its ``assets/`` folder, or a checkpoint file
  (``checkpoints/latest.pt``); :func:`load_run` makes any of them an :class:`EditableAsset` (a run
  killed or still training before it wrote ``assets/`` is read from its latest checkpoint, through the
  same loaders the trainer uses to resume);
- the scene of a run: :func:`run_scene_dir` (``--scene`` override, else the scene in its config.json).

Nothing is resolved relative to the working directory or the repository: the shipped scenes and the
program library travel with the package, so an installed ``splat`` finds them from anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from splat.errors import SplatError
from splat.export.asset import (
    PROGRAM_FILE,
    EditableAsset,
    load_asset,
    plain_params,
    snap_to_range,
    state_keys,
)

if TYPE_CHECKING:
    from splat.config import TrainConfig
    from splat.data import Scene
    from splat.program import ShapeProgram

SCENES_DIR = Path(__file__).resolve().parent / "scenes"
"""The shipped scenes (package data): ``<name>/transforms.json`` with images, depth, masks."""


def shipped_scenes() -> tuple[str, ...]:
    """Names of the shipped scenes, sorted."""
    if not SCENES_DIR.is_dir():
        return ()
    return tuple(sorted(p.name for p in SCENES_DIR.iterdir() if (p / "transforms.json").is_file()))


def scene_dir(scene: str | os.PathLike, *, field: str = "scene") -> Path:
    """The folder of a scene given by path or by a shipped scene's name.

    A path that exists wins over a shipped name (a local folder ``chair/`` is that folder). SplatError
    naming ``field`` when neither exists, listing the shipped names.
    """
    p = Path(scene)
    if p.is_dir():
        return p
    name = os.fspath(scene)
    if name in shipped_scenes():
        return SCENES_DIR / name
    known = ", ".join(shipped_scenes()) or "none installed"
    raise SplatError(f"no such scene folder, nor a shipped scene of that name (shipped: {known})",
                     file=p, field=field)


def wants_program_choice(scene: "Scene", program: str = "") -> bool:
    """Whether a run on ``scene`` chooses its program from the library (``--program auto``, or no
    ``--program`` and a scene that names none): :func:`splat.search.choose.choose_program`."""
    return program == "auto" or (not program and not scene.program)


def program_for(scene: "Scene", program: str = "") -> "ShapeProgram":
    """The shape program of a run on ``scene``: ``program`` (library name or path) when given, else the
    one the scene's transforms.json names (a file beside it, else a library program)."""
    from splat.program import load_program

    name = program or scene.program
    if name == "auto":
        raise SplatError("'auto' is chosen by the structure search (splat train / splat search), not a program",
                         file=scene.root / "transforms.json", field="program")
    if not name:
        raise SplatError("the scene names no shape program; pass --program NAME_OR_PATH",
                         file=scene.root / "transforms.json", field="program")
    local = scene.root / name
    return load_program(local if (not program and local.is_file()) else name)


def load_train_config(run_dir: str | os.PathLike) -> "TrainConfig":
    """The resolved TrainConfig a run saved as ``config.json`` (validated)."""
    from splat.config import load_config

    return load_config(Path(run_dir) / "config.json")


def _run_root(path: Path) -> Path:
    """The run folder of a run folder, its assets/ folder, its checkpoints/ folder or a checkpoint file."""
    if path.is_file() and path.suffix == ".pt" and path.parent.name == "checkpoints":
        return path.parent.parent
    if path.is_dir() and path.name in ("assets", "checkpoints") and (path.parent / "config.json").is_file():
        return path.parent
    return path.parent if path.is_file() else path


def load_run(path: str | os.PathLike, *, device: torch.device | str = "cpu") -> EditableAsset:
    """An editable asset from a run folder, its ``assets/`` folder, or its checkpoint.

    A finished run is read from ``assets/`` (:func:`splat.export.asset.load_asset`). A run folder
    without assets, a ``checkpoints/`` folder or a ``.pt`` file is read from the latest checkpoint
    (:func:`load_checkpoint_asset`): what the run would export if it stopped now. Every problem is a
    SplatError naming the file.
    """
    p = Path(path)
    if not p.exists():
        raise SplatError("no such run folder, assets folder or checkpoint", file=p)
    root = _run_root(p)
    wants_ckpt = p.suffix == ".pt" or p.name == "checkpoints"
    has_assets = (root / PROGRAM_FILE).is_file() or (root / "assets" / PROGRAM_FILE).is_file()
    if wants_ckpt or (not has_assets and (root / "checkpoints").is_dir() and (root / "config.json").is_file()):
        return load_checkpoint_asset(root, device=device)
    return load_asset(p if p.is_dir() else p.parent, device=device)


def load_checkpoint_asset(run_dir: str | os.PathLike, *, device: torch.device | str = "cpu") -> EditableAsset:
    """An EditableAsset from a run's ``config.json`` and ``checkpoints/latest.pt`` (joint stage), through
    the trainer's own loaders (:func:`splat.config.load_config`, ``ProgramFit.load_state``,
    ``ProceduralGaussians.from_state``)."""
    from splat.data import load_scene
    from splat.gaussians import ProceduralGaussians
    from splat.program import ProgramFit
    from splat.runs import LATEST, load_checkpoint

    root = Path(run_dir)
    if not (root / "config.json").is_file():
        raise SplatError("not a run folder (config.json missing)", file=root)
    cfg = load_train_config(root)
    ckpt = load_checkpoint(root / "checkpoints", map_location=device)
    if ckpt is None or ckpt.get("joint") is None:
        raise SplatError("the run has no joint-stage checkpoint yet (still searching?) and no assets/",
                         file=root / "checkpoints")
    program = program_for(load_scene(scene_dir(cfg.scene)), cfg.program)
    try:
        fit = ProgramFit(program, dict(ckpt["search"]["assignment"]), ckpt["search"]["placement"].double())
        with torch.no_grad():
            fit.load_state(ckpt["joint"]["fit"])
        state = ckpt["joint"]["gaussians"]
        gaussians = ProceduralGaussians.from_state(state, state_keys(state, program))
    except (KeyError, ValueError, TypeError) as err:
        raise SplatError(f"checkpoint does not match this version of the trainer ({type(err).__name__}: {err})",
                         file=root / "checkpoints" / LATEST) from None
    params = plain_params(program.space.validate(snap_to_range(fit.assignment(), program.space)), program.space)
    placement = fit.placement().detach().double().cpu().numpy()
    return EditableAsset(program, params, gaussians, placement, root=root, scene=cfg.scene)


def run_scene_dir(asset: EditableAsset, override: str | os.PathLike | None = None, *,
                  required: bool = True) -> Path | None:
    """The scene folder of a run: ``override`` (``--scene``), else the scene its config.json records
    (a path, or a shipped scene's name). None when unknown and not ``required``; SplatError otherwise."""
    if override is not None:
        return scene_dir(override, field="--scene")
    name = asset.scene
    if name:
        try:
            return scene_dir(name)
        except SplatError:
            pass
    if not required:
        return None
    raise SplatError(f"cannot find the run's scene (config.json scene: {name!r}); pass --scene",
                     file=asset.root, field="--scene")
