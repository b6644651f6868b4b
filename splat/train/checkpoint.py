"""Atomic training checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a plain nested dict of tensors, numbers, strings, lists and dicts (nothing pickled
beyond what ``weights_only`` allows): parameters, optimizer states, the ``torch.Generator`` state, the
stage name and the step. It is written to a temporary name beside the target and renamed onto it
(:func:`splat.io.atomic_path`), so a run killed mid-write keeps its previous checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from splat.errors import SplatError
from splat.io import atomic_path

LATEST = "latest.pt"


def save_checkpoint(folder: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically as ``<folder>/latest.pt`` and return the path."""
    path = Path(folder) / LATEST
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
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
