"""Shared pytest fixtures and markers.

Markers (declared in pyproject.toml): `slow` (quality checks at shrunk sizes, still run in CI),
`blender` (needs bpy; skipped without it), `cuda` (needs a CUDA device; skipped without one).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_shared() -> Path | None:
    """The third-party test data folder: $SPLAT_SHARED_DIR, then ../shared beside the clone, then /work/shared."""
    env = os.environ.get("SPLAT_SHARED_DIR")
    if env == "none":  # simulate a machine without the data (to check that those tests skip)
        return None
    candidates = [env, REPO.parent / "shared", "/work/shared"]
    for cand in candidates:
        if cand and (Path(cand) / "data" / "blender_programs").is_dir():
            return Path(cand)
    return None


_FOUND_SHARED = _find_shared()
SHARED = _FOUND_SHARED if _FOUND_SHARED is not None else REPO.parent / "shared"
BLENDER_PROGRAMS = SHARED / "data" / "blender_programs"
POLYHAVEN = SHARED / "data" / "polyhaven"

HAS_BPY = importlib.util.find_spec("bpy") is not None


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a hard dependency
        has_cuda = False
    skip_bpy = pytest.mark.skip(reason="needs the `blender` extra (bpy)")
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device")
    skip_shared = pytest.mark.skip(reason="needs ../shared/data (third-party programs and models); set SPLAT_SHARED_DIR")
    for item in items:
        if _FOUND_SHARED is None and _uses_shared_data(item):
            item.add_marker(skip_shared)
        if "blender" in item.keywords and not HAS_BPY:
            item.add_marker(skip_bpy)
        if "cuda" in item.keywords and not has_cuda:
            item.add_marker(skip_cuda)


def _uses_shared_data(item) -> bool:
    names = ("SHARED", "BLENDER_PROGRAMS", "POLYHAVEN")
    if any(n in item.name for n in ("shipped", "third_party", "polyhaven", "gltf")):
        return True
    try:
        src = inspect.getsource(item.function)
    except (OSError, TypeError, AttributeError):
        return False
    return any(n in src for n in names)


@pytest.fixture
def repo_root() -> Path:
    return REPO
