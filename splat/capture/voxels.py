"""Sparse voxel sets: occupancy of a point cloud on a grid, membership tests, dilation and 26-connected
components, all as sorted integer keys (no dense grid, so a room-sized capture costs what its points do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

_BITS = 21  # per axis: +-2^20 voxels (10 km at 1 cm)
_OFFSET = 1 << (_BITS - 1)
_NEIGHBOURS = np.array([(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)
                        if (dx, dy, dz) != (0, 0, 0)], dtype=np.int64)


def _encode(ijk: np.ndarray) -> np.ndarray:
    c = np.asarray(ijk, dtype=np.int64) + _OFFSET
    return (c[:, 0] << (2 * _BITS)) | (c[:, 1] << _BITS) | c[:, 2]


def _decode(keys: np.ndarray) -> np.ndarray:
    mask = (1 << _BITS) - 1
    return np.stack([(keys >> (2 * _BITS)) & mask, (keys >> _BITS) & mask, keys & mask], axis=1) - _OFFSET


@dataclass(frozen=True, eq=False)
class VoxelSet:
    """Occupied voxels of edge ``size`` (metres), aligned to the origin.

    Attributes:
        keys: [V] int64 sorted unique voxel keys.
        size: voxel edge in metres.
    """

    keys: np.ndarray
    size: float

    @classmethod
    def from_points(cls, points: np.ndarray, size: float) -> "VoxelSet":
        """The voxels holding at least one of ``points`` [P, 3]."""
        return cls(np.unique(cls.point_keys(points, size)), float(size))

    @staticmethod
    def point_keys(points: np.ndarray, size: float) -> np.ndarray:
        """[P] keys of the voxels the points fall in."""
        return _encode(np.floor(np.asarray(points, dtype=np.float64).reshape(-1, 3) / size).astype(np.int64))

    def __len__(self) -> int:
        return len(self.keys)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """[P] bool: which points fall in an occupied voxel."""
        k = self.point_keys(points, self.size)
        if len(self.keys) == 0:
            return np.zeros(len(k), bool)
        pos = np.clip(np.searchsorted(self.keys, k), 0, len(self.keys) - 1)
        return self.keys[pos] == k

    def centres(self) -> np.ndarray:
        """[V, 3] float64 voxel centres."""
        return (_decode(self.keys) + 0.5) * self.size

    def subset(self, keep: np.ndarray) -> "VoxelSet":
        return VoxelSet(self.keys[np.asarray(keep)], self.size)

    def dilated(self, steps: int = 1) -> "VoxelSet":
        """The set grown by ``steps`` voxels in all 26 directions."""
        keys = self.keys
        for _ in range(steps):
            ijk = _decode(keys)
            grown = [keys] + [_encode(ijk + off) for off in _NEIGHBOURS]
            keys = np.unique(np.concatenate(grown))
        return VoxelSet(keys, self.size)

    def components(self) -> np.ndarray:
        """[V] int component label of each voxel (26-connectivity), labels 0..n-1."""
        n = len(self.keys)
        if n == 0:
            return np.zeros(0, np.int64)
        ijk = _decode(self.keys)
        rows, cols = [], []
        for off in _NEIGHBOURS[13:]:  # half of the 26 offsets: each pair is found once
            k = _encode(ijk + off)
            pos = np.clip(np.searchsorted(self.keys, k), 0, n - 1)
            hit = self.keys[pos] == k
            rows.append(np.nonzero(hit)[0])
            cols.append(pos[hit])
        r, c = np.concatenate(rows), np.concatenate(cols)
        graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n, n))
        return connected_components(graph, directed=False)[1]
