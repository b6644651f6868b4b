"""The run folder: ``<output_dir>/<scene>/<run>/`` and what lives in it.

Layout::

    config.json        resolved TrainConfig (reloadable through splat.config.load_config)
    checkpoints/       latest.pt (atomic; see below)
    tb/                TensorBoard event files
    assets/            program.json, params.json, splats.ply
    renders/           test-view renders of the final model
    metrics.json       final evaluation on the held-out views

Checkpoints load with ``torch.load(weights_only=True)``: a plain nested dict of tensors, numbers,
strings, lists and dicts (parameters, optimizer states, the ``torch.Generator`` state, the stage name
and the step). A checkpoint is written to a temporary name beside the target and renamed onto it
(:func:`splat.io.atomic_path`), so a run killed mid-write keeps its previous checkpoint.
"""

from __future__ import annotations

import datetime
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from splat.errors import SplatError
from splat.io import atomic_path


@dataclass(frozen=True)
class RunDir:
    """Paths of one run folder (nothing is created until :meth:`create`)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    @property
    def assets(self) -> Path:
        return self.root / "assets"

    @property
    def renders(self) -> Path:
        return self.root / "renders"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    def create(self) -> "RunDir":
        for p in (self.root, self.checkpoints, self.tb, self.assets):
            p.mkdir(parents=True, exist_ok=True)
        return self


def scene_label(scene: str) -> str:
    """Folder name of a scene given by registered name or path (its last path component)."""
    name = Path(scene.rstrip("/\\")).name
    return name or "scene"


def resolve_run_dir(output_dir: Path, scene: str, run: str, *, resume: bool) -> RunDir:
    """Pick the run folder: a new timestamped one, the named one, or (resume, no name) the latest one."""
    base = Path(output_dir) / scene_label(scene)
    if run:
        if "/" in run or "\\" in run or run in (".", ".."):
            raise SplatError(f"must be a plain folder name, got {run!r}", field="run")
        rd = RunDir(base / run)
        if resume and not rd.config.is_file():
            raise SplatError("no run to resume here (config.json missing)", file=rd.root, field="--resume")
        return rd
    if resume:
        runs = sorted(p for p in base.glob("*") if (p / "config.json").is_file()) if base.is_dir() else []
        if not runs:
            raise SplatError("no earlier run of this scene to resume", file=base, field="--resume")
        return RunDir(max(runs, key=lambda p: (p / "config.json").stat().st_mtime))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    rd, k = RunDir(base / stamp), 1
    while rd.root.exists():
        rd, k = RunDir(base / f"{stamp}-{k}"), k + 1
    return rd


# --- checkpoints -------------------------------------------------------------------------------------

LATEST = "latest.pt"


def save_checkpoint(folder: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically as ``<folder>/latest.pt`` and return the path.

    Serialised in memory first, so a full disk is a plain OS error (a :class:`SplatError` from
    :func:`splat.io.atomic_path`) and the previous checkpoint stays in place.
    """
    path = Path(folder) / LATEST
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return path


def load_checkpoint(folder: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """Read ``<folder>/latest.pt`` (weights_only), or None if the folder holds no checkpoint."""
    path = Path(folder) / LATEST
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated or foreign file is the user's to remove
        raise SplatError(f"cannot read checkpoint ({type(err).__name__}: {err})", file=path) from None
