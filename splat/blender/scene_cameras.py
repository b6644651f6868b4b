"""Camera rigs for rendered scenes: views on a sphere around an object, train and held-out test split.

Pure numpy (no bpy), so the rig can be planned, tested and recorded without Blender.

Convention: world is Blender's (right-handed, +Z up, metres). Cameras are returned as
:class:`splat.data.Camera` (``viewmat`` world->camera in OpenCV axes, ``K`` in pixels, pixel centres at
+0.5, see docs/conventions.md). Every camera looks at the object's bounding-box centre with no roll
(image "up" is the projection of world +Z). Intrinsics are those of a real camera: a focal length in
millimetres over a sensor width in millimetres (the defaults, 35 mm over 36 mm, are a 35 mm-equivalent
"normal-wide" lens), square pixels, principal point at the image centre, fitted horizontally (Blender's
``sensor_fit = 'HORIZONTAL'``), so ``fx = fy = focal_mm / sensor_width_mm * width``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from splat.data.camera import Camera, intrinsics_matrix, viewmat_to_opengl_c2w
from splat.errors import SplatError

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618..., low-discrepancy step for elevations


@dataclass(frozen=True)
class CameraSettings:
    """How the views of a rendered scene are placed."""

    n_train: int = 24
    """Number of training views."""
    n_test: int = 8
    """Number of held-out test views (placed between training views, never on top of one)."""
    width: int = 256
    """Image width in pixels."""
    height: int = 256
    """Image height in pixels."""
    focal_mm: float = 35.0
    """Lens focal length in millimetres."""
    sensor_width_mm: float = 36.0
    """Sensor width in millimetres (36 = full frame, so focal_mm is the 35 mm-equivalent focal length)."""
    elevation_deg: tuple[float, float] = (10.0, 60.0)
    """Range of camera elevations above the horizontal plane through the look-at point, degrees."""
    distance_scale: tuple[float, float] = (0.8, 1.1)
    """Range of camera distances, in units of the distance at which the bounding sphere just fills the
    narrower field of view. A camera too close to keep every bounding-box corner inside the image
    (with ``margin``) is moved back until it does, so the object is never cut off."""
    margin: float = 0.04
    """Smallest gap between a projected bounding-box corner and the image border, as a fraction of the
    image size."""


class CameraRig(NamedTuple):
    """Planned views. ``train`` and ``test`` are disjoint lists of cameras named ``train_XXX``/``test_XXX``."""

    train: list[Camera]  # n_train cameras
    test: list[Camera]  # n_test cameras
    look_at: np.ndarray  # [3] world point every camera looks at (bounding-box centre)
    radius: float  # bounding-sphere radius used to choose distances (metres)


def validate_camera_settings(s: CameraSettings) -> None:
    """Raise SplatError naming the field when a setting is out of range."""
    checks = [
        ("n_train", s.n_train >= 1, "must be >= 1"),
        ("n_test", s.n_test >= 0, "must be >= 0"),
        ("width", 8 <= s.width <= 8192, "must be in [8, 8192]"),
        ("height", 8 <= s.height <= 8192, "must be in [8, 8192]"),
        ("focal_mm", s.focal_mm > 0, "must be > 0"),
        ("sensor_width_mm", s.sensor_width_mm > 0, "must be > 0"),
        ("elevation_deg", -89.0 <= s.elevation_deg[0] <= s.elevation_deg[1] <= 89.0,
         "must be (low, high) with -89 <= low <= high <= 89"),
        ("distance_scale", 0.5 <= s.distance_scale[0] <= s.distance_scale[1],
         "must be (low, high) with 0.5 <= low <= high"),
        ("margin", 0.0 <= s.margin < 0.4, "must be in [0, 0.4)"),
    ]
    for field, ok, why in checks:
        if not ok:
            raise SplatError(f"{why}, got {getattr(s, field)!r}", field=f"cameras.{field}")


def intrinsics(s: CameraSettings) -> np.ndarray:
    """[3, 3] float64 K of the settings' real camera (horizontal sensor fit, centred principal point)."""
    f = s.focal_mm / s.sensor_width_mm * s.width
    return intrinsics_matrix(f, f, s.width / 2.0, s.height / 2.0)


def look_at_viewmat(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[4, 4] world->camera (OpenCV axes) for a camera at ``eye`` [3] looking at ``target`` [3], no roll.

    Image up is world +Z projected on the image plane; the view direction must not be vertical.
    """
    eye = np.asarray(eye, dtype=np.float64)
    fwd = np.asarray(target, dtype=np.float64) - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    n = np.linalg.norm(right)
    if n < 1e-9:
        raise ValueError("look_at_viewmat: view direction is vertical, roll is undefined")
    right /= n
    down = np.cross(fwd, right)
    r = np.stack([right, down, fwd])  # rows: camera x, y, z axes in world coordinates
    v = np.eye(4)
    v[:3, :3] = r
    v[:3, 3] = -r @ eye
    return v


def plan_cameras(bbox_min: np.ndarray, bbox_max: np.ndarray, settings: CameraSettings,
                 rng: np.random.Generator) -> CameraRig:
    """Place ``n_train + n_test`` cameras on a sphere around an axis-aligned bounding box.

    All views share one azimuth ring of ``n_train + n_test`` evenly spaced slots (with a random global
    rotation and a small per-slot jitter); every ``(n_train + n_test) / n_test``-th slot is a test view,
    so each test view sits between two training views instead of on one. Elevations follow a
    golden-ratio sequence over ``elevation_deg`` (shuffled offset), distances are uniform in
    ``distance_scale`` times the fill distance, then backed off (x1.03 steps) until every bounding-box
    corner projects inside the image with ``margin``. Deterministic given ``rng``'s state.

    Args:
        bbox_min, bbox_max: [3] world bounding box of the object.
        settings: the rig's settings (validated here).
        rng: numpy Generator; the only randomness used.
    """
    validate_camera_settings(settings)
    lo = np.asarray(bbox_min, dtype=np.float64)
    hi = np.asarray(bbox_max, dtype=np.float64)
    centre = (lo + hi) / 2.0
    radius = float(np.linalg.norm(hi - lo) / 2.0)
    if not radius > 0:
        raise SplatError("object bounding box is empty (zero size)", field="mesh")
    K = intrinsics(settings)
    half_fov = math.atan(min(settings.width, settings.height) / 2.0 / K[0, 0])
    fill = radius / math.sin(half_fov)

    total = settings.n_train + settings.n_test
    test_slots = set()
    if settings.n_test:
        step = total / settings.n_test
        test_slots = {int(math.floor((j + 0.5) * step)) % total for j in range(settings.n_test)}
    az0 = rng.uniform(0.0, 2.0 * math.pi)
    jitter = rng.uniform(-0.2, 0.2, size=total)
    elev_u0 = rng.uniform(0.0, 1.0)
    dist_u = rng.uniform(0.0, 1.0, size=total)
    e_lo, e_hi = (math.radians(e) for e in settings.elevation_deg)
    d_lo, d_hi = settings.distance_scale

    train, test = [], []
    for slot in range(total):
        az = az0 + 2.0 * math.pi * (slot + jitter[slot]) / total
        el = e_lo + (e_hi - e_lo) * ((elev_u0 + slot * _GOLDEN) % 1.0)
        dist = fill * (d_lo + (d_hi - d_lo) * dist_u[slot])
        direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        for _ in range(100):  # back off until the whole bounding box is in view
            vm = look_at_viewmat(centre + dist * direction, centre)
            if box_in_view(lo, hi, vm, K, settings):
                break
            dist *= 1.03
        is_test = slot in test_slots
        group = test if is_test else train
        name = f"{'test' if is_test else 'train'}_{len(group):03d}"
        group.append(Camera(K=K, viewmat=vm, width=settings.width, height=settings.height, name=name))
    return CameraRig(train=train, test=test, look_at=centre, radius=radius)


def box_in_view(lo: np.ndarray, hi: np.ndarray, viewmat: np.ndarray, K: np.ndarray, s: CameraSettings) -> bool:
    """Whether every corner of the box ``lo``..``hi`` [3] projects in front of the camera and inside the image
    with the settings' margin."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    cam = corners @ viewmat[:3, :3].T + viewmat[:3, 3]
    if np.any(cam[:, 2] <= 1e-6):
        return False
    uv = cam[:, :2] / cam[:, 2:3] * np.diag(K)[:2] + K[:2, 2]
    mx, my = s.margin * s.width, s.margin * s.height
    return bool(np.all((uv[:, 0] >= mx) & (uv[:, 0] <= s.width - mx) & (uv[:, 1] >= my) & (uv[:, 1] <= s.height - my)))


@dataclass(frozen=True)
class LoopSettings:
    """A hand-held capture: one loop around the object, the camera held at chest-to-eye height."""

    n_views: int = 40
    """Number of frames along the loop."""
    distance: tuple[float, float] = (1.2, 1.8)
    """Range of the camera's horizontal distance from the object's vertical axis, metres."""
    height: tuple[float, float] = (1.0, 1.5)
    """Range of the camera's height above the floor, metres."""
    roll_deg: float = 3.0
    """Largest roll of the hand-held camera about its optical axis, degrees."""
    look_jitter: float = 0.05
    """Standard deviation of the aimed point about the object's centre (each axis), metres."""


def validate_loop_settings(s: LoopSettings) -> None:
    """Raise SplatError naming the field when a loop setting is out of range."""
    checks = [
        ("n_views", 2 <= s.n_views <= 10000, "must be in [2, 10000]"),
        ("distance", 0.2 <= s.distance[0] <= s.distance[1] <= 50.0,
         "must be (low, high) with 0.2 <= low <= high <= 50"),
        ("height", 0.0 < s.height[0] <= s.height[1] <= 50.0, "must be (low, high) with 0 < low <= high <= 50"),
        ("roll_deg", 0.0 <= s.roll_deg <= 45.0, "must be in [0, 45]"),
        ("look_jitter", 0.0 <= s.look_jitter <= 1.0, "must be in [0, 1]"),
    ]
    for field, ok, why in checks:
        if not ok:
            raise SplatError(f"{why}, got {getattr(s, field)!r}", field=f"loop.{field}")


def plan_loop(bbox_min: np.ndarray, bbox_max: np.ndarray, settings: CameraSettings, loop: LoopSettings,
              rng: np.random.Generator) -> list[Camera]:
    """Cameras of one hand-held loop around an object standing on the floor (z = 0), named ``frame_XXXX``.

    The azimuth advances evenly over one turn (random start and direction, small per-frame jitter);
    distance and height wander smoothly within their ranges (two and three slow waves per loop); each
    camera aims at the bounding-box centre plus a random offset (``look_jitter``) and rolls by up to
    ``roll_deg``. A camera too close to keep every bounding-box corner in view (with ``margin``) moves
    back along its line of sight (x1.03 steps). Only ``width``, ``height``, ``focal_mm``,
    ``sensor_width_mm`` and ``margin`` of ``settings`` are used. Deterministic given ``rng``'s state.
    """
    validate_camera_settings(settings)
    validate_loop_settings(loop)
    lo = np.asarray(bbox_min, dtype=np.float64)
    hi = np.asarray(bbox_max, dtype=np.float64)
    centre = (lo + hi) / 2.0
    K = intrinsics(settings)
    n = loop.n_views
    az0 = rng.uniform(0.0, 2.0 * math.pi)
    turn = 1.0 if rng.random() < 0.5 else -1.0
    jitter = rng.uniform(-0.25, 0.25, size=n)
    phase = rng.uniform(0.0, 2.0 * math.pi, size=2)
    aim = rng.normal(0.0, loop.look_jitter, size=(n, 3))
    roll = np.radians(rng.uniform(-loop.roll_deg, loop.roll_deg, size=n))
    d_lo, d_hi = loop.distance
    h_lo, h_hi = loop.height
    cams = []
    for i in range(n):
        t = (i + jitter[i]) / n
        az = az0 + turn * 2.0 * math.pi * t
        dist = d_lo + (d_hi - d_lo) * (0.5 + 0.5 * math.sin(2.0 * 2.0 * math.pi * t + phase[0]))
        height = h_lo + (h_hi - h_lo) * (0.5 + 0.5 * math.sin(3.0 * 2.0 * math.pi * t + phase[1]))
        target = centre + aim[i]
        eye = np.array([centre[0] + dist * math.cos(az), centre[1] + dist * math.sin(az), height])
        c, s = math.cos(roll[i]), math.sin(roll[i])
        r_roll = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        for _ in range(100):  # back off along the line of sight until the whole box is in view
            vm = look_at_viewmat(eye, target)
            vm[:3, :3] = r_roll @ vm[:3, :3]
            vm[:3, 3] = -vm[:3, :3] @ eye
            if box_in_view(lo, hi, vm, K, settings):
                break
            eye = target + (eye - target) * 1.03
        cams.append(Camera(K=K, viewmat=vm, width=settings.width, height=settings.height, name=f"frame_{i:04d}"))
    return cams


def blender_camera_matrix(camera: Camera) -> np.ndarray:
    """[4, 4] Blender ``matrix_world`` of a camera object (camera->world, Blender/OpenGL camera axes)."""
    return viewmat_to_opengl_c2w(camera.viewmat)
