"""Pinhole cameras and the one place where camera axis conventions are converted.

Convention: see docs/conventions.md. In memory a camera is ``viewmat`` (world->camera, OpenCV axes:
x right, y down, z forward) and ``K`` in pixels with pixel centres at +0.5: pixel (row i, column j)
covers ``[j, j+1) x [i, i+1)`` and its centre is ``(u, v) = (j + 0.5, i + 0.5)``. On disk
(transforms.json) a camera is ``transform_matrix`` = camera->world in OpenGL/Blender axes (x right, y up,
z back). :func:`opengl_c2w_to_viewmat` and :func:`viewmat_to_opengl_c2w` are the only conversions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# OpenGL camera axes -> OpenCV camera axes: flip y and z.
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])

RIGID_TOLERANCE = 1e-4
"""Largest allowed deviation of ``R^T R`` from identity and of ``det R`` from 1 for a rigid transform."""


def rigidity_error(matrix: np.ndarray) -> str | None:
    """Say why a 4x4 matrix is not a rigid transform (rotation + translation), or None if it is.

    Args:
        matrix: [4, 4] float.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        return f"must be a 4x4 matrix, got shape {list(m.shape)}"
    if not np.all(np.isfinite(m)):
        return "contains NaN or infinite values"
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=RIGID_TOLERANCE):
        return f"last row must be [0, 0, 0, 1], got {m[3].tolist()}"
    r = m[:3, :3]
    det = float(np.linalg.det(r))
    if abs(det) < 1e-8:
        return "is singular (its 3x3 rotation part has determinant 0)"
    if abs(det - 1.0) > RIGID_TOLERANCE or np.abs(r.T @ r - np.eye(3)).max() > RIGID_TOLERANCE:
        return (f"is not rigid: its 3x3 part must be a rotation (orthonormal, determinant +1), "
                f"got determinant {det:.6g}")
    return None


def rigid_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform, ``[R^T, -R^T t; 0 0 0 1]``. [4, 4] -> [4, 4] float64."""
    m = np.asarray(matrix, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = m[:3, :3].T
    out[:3, 3] = -m[:3, :3].T @ m[:3, 3]
    return out


def opengl_c2w_to_viewmat(c2w: np.ndarray) -> np.ndarray:
    """camera->world in OpenGL axes (transforms.json) -> world->camera in OpenCV axes (memory).

    Args:
        c2w: [4, 4] rigid camera->world matrix, camera axes x right, y up, z back.
    Returns:
        [4, 4] float64 world->camera matrix, camera axes x right, y down, z forward.
    """
    c2w_cv = np.asarray(c2w, dtype=np.float64) @ _GL_TO_CV  # flips columns 1 and 2
    return rigid_inverse(c2w_cv)


def viewmat_to_opengl_c2w(viewmat: np.ndarray) -> np.ndarray:
    """Inverse of :func:`opengl_c2w_to_viewmat`. [4, 4] -> [4, 4] float64."""
    return rigid_inverse(viewmat) @ _GL_TO_CV


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """[3, 3] float64 pinhole matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (pixels)."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def _copy64(a: np.ndarray) -> np.ndarray:
    # A private float64 copy. Not made read-only: torch.as_tensor warns on read-only arrays.
    return np.array(a, dtype=np.float64, copy=True)


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera without distortion.

    Convention: ``viewmat`` is world->camera with OpenCV camera axes (x right, y down, z forward),
    ``K`` is in pixels and pixel centres are at +0.5 (docs/conventions.md). Both are float64 numpy
    arrays owned by the camera (copied on construction; treat them as immutable);
    :class:`splat.data.Scene` stacks them into torch tensors.

    Attributes:
        K: [3, 3] intrinsics.
        viewmat: [4, 4] rigid world->camera transform.
        width: image width in pixels.
        height: image height in pixels.
        name: frame name (the image file stem unless transforms.json gives ``name``); unique in a scene.
    """

    K: np.ndarray  # [3, 3]
    viewmat: np.ndarray  # [4, 4]
    width: int
    height: int
    name: str

    def __post_init__(self):
        object.__setattr__(self, "K", _copy64(self.K))
        object.__setattr__(self, "viewmat", _copy64(self.viewmat))
        if self.K.shape != (3, 3) or self.viewmat.shape != (4, 4):
            raise ValueError(f"Camera needs K [3,3] and viewmat [4,4], got {self.K.shape}, {self.viewmat.shape}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def from_opengl_c2w(cls, c2w: np.ndarray, K: np.ndarray, width: int, height: int, name: str) -> "Camera":
        """Build from a transforms.json-style camera->world matrix (OpenGL axes), [4, 4]."""
        return cls(K=K, viewmat=opengl_c2w_to_viewmat(c2w), width=width, height=height, name=name)

    @property
    def c2w_opengl(self) -> np.ndarray:
        """[4, 4] camera->world in OpenGL axes, as written to transforms.json."""
        return viewmat_to_opengl_c2w(self.viewmat)

    @property
    def center(self) -> np.ndarray:
        """[3] camera centre in world coordinates."""
        return -self.viewmat[:3, :3].T @ self.viewmat[:3, 3]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points to pixel coordinates.

        Args:
            points: [N, 3] world points.
        Returns:
            uv: [N, 2] continuous pixel coordinates (u right, v down; the centre of pixel (i, j) is
                (j + 0.5, i + 0.5)).
            z: [N] z-depth in the camera frame (positive in front of the camera).
        """
        p = np.asarray(points, dtype=np.float64)
        cam = p @ self.viewmat[:3, :3].T + self.viewmat[:3, 3]
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = cam[:, :2] / z[:, None]
        uv = uv * np.diag(self.K)[:2] + self.K[:2, 2]
        return uv, z

    def backproject(self, depth: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """World points of the pixel centres of a z-depth map.

        Args:
            depth: [H, W] z-depth in metres (0 = missing); H, W must equal ``height``, ``width``.
            valid: [H, W] bool, extra pixels to keep (ANDed with ``depth > 0``), or None.
        Returns:
            [P, 3] float64 world points, in row-major pixel order.
        """
        depth = np.asarray(depth, dtype=np.float64)
        if depth.shape != (self.height, self.width):
            raise ValueError(f"depth shape {depth.shape} != camera size {(self.height, self.width)}")
        keep = depth > 0
        if valid is not None:
            keep &= valid
        rows, cols = np.nonzero(keep)
        z = depth[rows, cols]
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        x = (cols + 0.5 - cx) / fx * z
        y = (rows + 0.5 - cy) / fy * z
        cam = np.stack([x, y, z], axis=1)
        r, t = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return (cam - t) @ r  # R^T (p - t), row-vector form
