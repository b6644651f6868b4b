"""Shared pytest fixtures and markers.

Markers (declared in pyproject.toml): `slow` (quality checks at shrunk sizes, still run in CI),
`blender` (needs bpy; skipped without it), `cuda` (needs a CUDA device; skipped without one).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
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
    for item in items:
        if "blender" in item.keywords and not HAS_BPY:
            item.add_marker(skip_bpy)
        if "cuda" in item.keywords and not has_cuda:
            item.add_marker(skip_cuda)


@pytest.fixture
def repo_root() -> Path:
    return REPO
