"""The in-memory scene: posed cameras, images, depth maps, masks, split and ground truth.

Convention: see docs/conventions.md. Arrays are numpy, float32 images [H, W, 3] in [0, 1] (sRGB
values), z-depth [H, W] in metres with 0 = missing, bool masks [H, W]. Torch tensors come only from the
explicit ``*_tensor`` methods, which take the device as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from splat.data.camera import Camera
from splat.errors import SplatError


def resolve_inside(root: Path, rel: Any, *, json_file, field: str) -> Path:
    """Resolve a relative path found in a scene file, refusing paths that leave ``root``.

    Absolute paths, ``..`` components that climb out of ``root``, and non-strings are
    :class:`SplatError` naming ``json_file`` and ``field``. The check is lexical (symlinks inside the
    scene folder are followed as usual when the file is opened).
    """
    if not isinstance(rel, str) or not rel:
        raise SplatError(f"must be a non-empty relative path string, got {rel!r}", file=json_file, field=field)
    if os_path_is_absolute(rel):
        raise SplatError(f"path {rel!r} is absolute; paths must be relative to the scene folder",
                         file=json_file, field=field)
    norm = Path(*[p for p in Path(rel.replace("\\", "/")).parts if p not in ("", ".")])
    depth = 0
    for part in norm.parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise SplatError(f"path {rel!r} escapes the scene folder {root}", file=json_file, field=field)
    return root / norm


def os_path_is_absolute(rel: str) -> bool:
    """True for POSIX absolute paths, Windows drive or UNC paths, and home-relative paths."""
    return (rel.startswith(("/", "\\", "~")) or (len(rel) >= 2 and rel[1] == ":"))


@dataclass(frozen=True, eq=False)
class Scene:
    """A loaded scene (see :func:`splat.data.load_scene`). Frame ``i`` is ``cameras[i]``, ``images[i]``...

    Attributes:
        root: the scene folder (holding transforms.json).
        cameras: one :class:`Camera` per frame.
        images: per frame, float32 [H, W, 3] in [0, 1].
        depths: per frame, float32 [H, W] z-depth in metres (0 = missing), or None if the frame has none.
        masks: per frame, bool [H, W] (True = object), or None if the frame has none.
        split: split name -> frame indices (sorted). Always has "train" and "test"; without a
            ``split`` in transforms.json every frame is train and none is test.
        program: ground-truth / intended shape-program name, or None.
        gt_params: ground-truth program parameters (name -> value), or None.
        extras: every other top-level key of transforms.json (e.g. "gt_mesh", "manifest"), unchanged.
    """

    root: Path
    cameras: tuple[Camera, ...]
    images: tuple[np.ndarray, ...]
    depths: tuple[np.ndarray | None, ...]
    masks: tuple[np.ndarray | None, ...]
    split: dict[str, tuple[int, ...]]
    program: str | None = None
    gt_params: dict[str, Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def names(self) -> tuple[str, ...]:
        """Frame names, in frame order."""
        return tuple(c.name for c in self.cameras)

    @property
    def train_indices(self) -> tuple[int, ...]:
        return self.split["train"]

    @property
    def test_indices(self) -> tuple[int, ...]:
        return self.split["test"]

    @property
    def has_depth(self) -> bool:
        """True when at least one frame has a depth map."""
        return any(d is not None for d in self.depths)

    @property
    def scan_path(self) -> Path | None:
        """``root/scan.ply`` if the scene ships a scan, else None."""
        p = self.root / "scan.ply"
        return p if p.is_file() else None

    def extra_path(self, key: str) -> Path | None:
        """Resolve a relative path stored as a top-level extra (e.g. ``"gt_mesh"``); None if absent.

        A path that escapes the scene folder is a :class:`SplatError`.
        """
        if key not in self.extras:
            return None
        return resolve_inside(self.root, self.extras[key], json_file=self.root / "transforms.json", field=key)

    def _select(self, indices: Sequence[int] | str | None) -> list[int]:
        if indices is None:
            return list(range(len(self)))
        if isinstance(indices, str):
            if indices not in self.split:
                raise KeyError(f"no split {indices!r}; have {sorted(self.split)}")
            return list(self.split[indices])
        return [int(i) for i in indices]

    def _same_size(self, idx: list[int]) -> tuple[int, int]:
        if not idx:
            return (self.cameras[0].height, self.cameras[0].width) if self.cameras else (0, 0)
        sizes = {(self.cameras[i].height, self.cameras[i].width) for i in idx}
        if len(sizes) != 1:
            raise ValueError(f"frames {idx} have different sizes {sorted(sizes)}; stack them separately")
        return sizes.pop()

    def viewmats_tensor(self, indices: Sequence[int] | str | None = None, *, device: torch.device | str,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[N, 4, 4] world->camera (OpenCV axes) of the selected frames (indices, a split name, or all)."""
        idx = self._select(indices)
        a = np.stack([self.cameras[i].viewmat for i in idx]) if idx else np.zeros((0, 4, 4))
        return torch.as_tensor(a, dtype=dtype, device=device)

    def Ks_tensor(self, indices: Sequence[int] | str | None = None, *, device: torch.device | str,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[N, 3, 3] intrinsics (pixels, centres at +0.5) of the selected frames."""
        idx = self._select(indices)
        a = np.stack([self.cameras[i].K for i in idx]) if idx else np.zeros((0, 3, 3))
        return torch.as_tensor(a, dtype=dtype, device=device)

    def images_tensor(self, indices: Sequence[int] | str | None = None, *,
                      device: torch.device | str) -> torch.Tensor:
        """[N, H, W, 3] float32 in [0, 1]. The selected frames must share one size."""
        idx = self._select(indices)
        h, w = self._same_size(idx)
        return torch.as_tensor(_stack([self.images[i] for i in idx], (h, w, 3), np.float32), device=device)

    def depths_tensor(self, indices: Sequence[int] | str | None = None, *,
                      device: torch.device | str) -> torch.Tensor:
        """[N, H, W] float32 metres, 0 = missing (a frame without depth is all 0)."""
        idx = self._select(indices)
        h, w = self._same_size(idx)
        a = [self.depths[i] if self.depths[i] is not None else np.zeros((h, w), np.float32) for i in idx]
        return torch.as_tensor(_stack(a, (h, w), np.float32), device=device)

    def masks_tensor(self, indices: Sequence[int] | str | None = None, *,
                     device: torch.device | str) -> torch.Tensor:
        """[N, H, W] bool, True = object (a frame without a mask is all True)."""
        idx = self._select(indices)
        h, w = self._same_size(idx)
        a = [self.masks[i] if self.masks[i] is not None else np.ones((h, w), bool) for i in idx]
        return torch.as_tensor(_stack(a, (h, w), np.bool_), device=device)


def _stack(arrays: list[np.ndarray], shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.stack(arrays) if arrays else np.zeros((0, *shape), dtype)


def check_split_names(split: Any, names: Sequence[str], *, json_file) -> dict[str, tuple[int, ...]]:
    """Turn ``{"train": [names], "test": [names], ...}`` into sorted frame indices per split.

    Unknown frame names, non-list values, duplicates within a split and frames in both train and test are
    :class:`SplatError` (field ``split.<name>``).
    """
    index = {n: i for i, n in enumerate(names)}
    if split is None:
        return {"train": tuple(range(len(names))), "test": ()}
    if not isinstance(split, dict):
        raise SplatError(f"must be an object like {{\"train\": [names], \"test\": [names]}}, got "
                         f"{type(split).__name__}", file=json_file, field="split")
    out: dict[str, tuple[int, ...]] = {}
    for key, members in split.items():
        fld = f"split.{key}"
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise SplatError("must be a list of frame names", file=json_file, field=fld)
        missing = [m for m in members if m not in index]
        if missing:
            raise SplatError(f"names frames that do not exist: {missing[:5]}"
                             f"{' ...' if len(missing) > 5 else ''}", file=json_file, field=fld)
        if len(set(members)) != len(members):
            raise SplatError("names a frame more than once", file=json_file, field=fld)
        out[str(key)] = tuple(sorted(index[m] for m in members))
    out.setdefault("test", ())
    if "train" not in out:  # only a test list given: the rest is train
        out["train"] = tuple(i for i in range(len(names)) if i not in set(out["test"]))
    both = set(out["train"]) & set(out["test"])
    if both:
        raise SplatError(f"frames {[names[i] for i in sorted(both)][:5]} are in both train and test",
                         file=json_file, field="split.test")
    return out


def scene_background(scene: Scene, override: tuple[float, float, float] | None) -> tuple[float, float, float]:
    """The render background: ``override``, else the scene's ``background`` (transforms.json top level or
    ``manifest.render.background``), else black."""
    if override is not None:
        return tuple(float(c) for c in override)
    bg = scene.extras.get("background")
    if bg is None:
        bg = ((scene.extras.get("manifest") or {}).get("render") or {}).get("background")
    if bg is None:
        return (0.0, 0.0, 0.0)
    if (not isinstance(bg, (list, tuple)) or len(bg) != 3
            or not all(isinstance(c, (int, float)) and 0.0 <= c <= 1.0 for c in bg)):
        raise SplatError(f"must be three numbers in [0, 1], got {bg!r}", file=scene.root / "transforms.json",
                         field="background")
    return tuple(float(c) for c in bg)
