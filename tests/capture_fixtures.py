"""An analytic RGB-D capture of a known scene, written in the TUM, ScanNet and nerfstudio layouts, for
the tests of splat.capture.

The scene, in its own floor frame F (+Z up, metres): a floor square |x|, |y| <= 3.5 at z = 0 (checker),
the object box [-0.4, 0.4] x [-0.25, 0.25] x [0, 0.6] (a colour per face), a distractor cube of 0.3 m
at (2.2, 1.4) and a thin post at (0.95, 0.55) that hides part of the box from some views. Every pixel is
ray-cast exactly: z-depth at the pixel centre, the colour of what the ray hits first, and which object
that is (so the true object mask, occlusions included, is known). The capture's world W is F moved by a
rigid ``CAPTURE_FROM_FLOOR`` that tilts "up" to -Y (as many SLAM worlds have it), turns and shifts it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import imageio.v3 as iio
import numpy as np

from splat.data.synthetic import look_at_c2w

OBJECT_LO = np.array([-0.4, -0.25, 0.0])
OBJECT_HI = np.array([0.4, 0.25, 0.6])
BOXES = (  # (lo, hi, id); id 1 = the object
    (OBJECT_LO, OBJECT_HI, 1),
    (np.array([2.05, 1.25, 0.0]), np.array([2.35, 1.55, 0.3]), 2),
    (np.array([0.925, 0.525, 0.0]), np.array([0.975, 0.575, 1.2]), 3),
)
FACE_COLOURS = {1: np.array([[0.8, 0.2, 0.2], [0.55, 0.1, 0.1], [0.2, 0.7, 0.2], [0.1, 0.45, 0.1],
                             [0.2, 0.3, 0.85], [0.2, 0.3, 0.85]]),
                2: np.full((6, 3), 0.9) * np.array([1.0, 0.9, 0.1]),
                3: np.full((6, 3), 0.8) * np.array([0.9, 0.2, 0.9])}
FLOOR_HALF = 3.5
SKY = np.array([0.55, 0.7, 0.9])


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


CAPTURE_FROM_FLOOR = np.eye(4)
CAPTURE_FROM_FLOOR[:3, :3] = _rot_x(math.pi / 2) @ _rot_z(0.4)
CAPTURE_FROM_FLOOR[:3, 3] = [0.5, -0.2, 1.3]
"""[4, 4] floor frame F -> capture world W (rigid)."""


class View(NamedTuple):
    rgb: np.ndarray  # [H, W, 3] float in [0, 1]
    depth: np.ndarray  # [H, W] float64 z-depth metres, 0 = nothing hit
    hit: np.ndarray  # [H, W] int: 0 nothing, -1 floor, else the box id


def intrinsics(width: int = 80, height: int = 60, scale: float = 1.0) -> np.ndarray:
    """The capture's pinhole K (off-centre principal point) at ``scale`` times 80x60."""
    return np.array([[70.0 * scale, 0.0, 40.5 * scale], [0.0, 71.0 * scale, 29.25 * scale], [0.0, 0.0, 1.0]])


def camera_poses(n: int = 12, away: tuple[int, ...] = ()) -> list[np.ndarray]:
    """camera->F poses (OpenCV axes) on a ring around the object, alternately higher and lower; the
    cameras in ``away`` look outwards, at the floor behind them."""
    out = []
    for i in range(n):
        az = 2 * math.pi * i / n + 0.2
        r, h = 1.7, (1.0 if i % 2 else 1.3)
        eye = (r * math.cos(az), r * math.sin(az), h)
        target = (2 * r * math.cos(az), 2 * r * math.sin(az), 0.0) if i in away else (0.0, 0.0, 0.25)
        c2w_gl = look_at_c2w(eye, target)
        out.append(c2w_gl @ np.diag([1.0, -1.0, -1.0, 1.0]))
    return out


def render(c2w: np.ndarray, K: np.ndarray, width: int, height: int) -> View:
    """Exact colour, z-depth and hit id of the scene (F) seen by a camera (c2w in F, OpenCV axes)."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    d = d_cam @ c2w[:3, :3].T  # z-depth 1 along the optical axis: t is the z-depth
    o = c2w[:3, 3]
    best = np.full(u.shape, np.inf)
    hit = np.zeros(u.shape, np.int64)
    rgb = np.broadcast_to(SKY, u.shape + (3,)).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -o[2] / d[..., 2]
        p = o + t[..., None] * d
        on = (t > 0) & (np.abs(p[..., 0]) <= FLOOR_HALF) & (np.abs(p[..., 1]) <= FLOOR_HALF)
        best[on] = t[on]
        hit[on] = -1
        cell = (np.floor(p[..., 0] / 0.3) + np.floor(p[..., 1] / 0.3)).astype(np.int64) % 2
        rgb[on] = np.where(cell[on, None] == 0, 0.85, 0.6)
        for lo, hi, ident in BOXES:
            t1 = (lo - o) / d
            t2 = (hi - o) / d
            tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
            near = np.nanmax(tmin, axis=-1)
            far = np.nanmin(tmax, axis=-1)
            ok = (near <= far) & (near > 0) & (near < best)
            axis = np.nanargmax(tmin, axis=-1)
            sign = np.take_along_axis(d, axis[..., None], -1)[..., 0] > 0  # entering through the low face
            face = 2 * axis + sign.astype(np.int64)
            best[ok] = near[ok]
            hit[ok] = ident
            rgb[ok] = FACE_COLOURS[ident][face[ok]]
    depth = np.where(np.isfinite(best), best, 0.0)
    return View(rgb.astype(np.float32), depth, hit)


def quat_xyzw(r: np.ndarray) -> np.ndarray:
    """[3, 3] rotation -> unit quaternion (x, y, z, w), w >= 0."""
    import torch

    from splat.maths import rotmats_to_quats

    w, x, y, z = rotmats_to_quats(torch.as_tensor(r, dtype=torch.float64)[None])[0].tolist()
    return np.array([x, y, z, w])


class Capture(NamedTuple):
    """What a fixture wrote: the truth to compare a reader with."""

    root: Path
    poses_world: list[np.ndarray]  # camera->W, OpenCV axes, as written
    poses_floor: list[np.ndarray]  # camera->F (the truth; differs from poses_world only by CAPTURE_FROM_FLOOR)
    K: np.ndarray  # the (depth) camera's intrinsics
    views: list[View]  # rendered with the true poses


def _views(n: int, width: int, height: int, K: np.ndarray, bad: dict[int, np.ndarray] | None,
           away: tuple[int, ...] = ()):
    poses_f = camera_poses(n, away)
    views = [render(p, K, width, height) for p in poses_f]
    written = []
    for i, p in enumerate(poses_f):
        q = CAPTURE_FROM_FLOOR @ p
        if bad and i in bad:
            q = q.copy()
            q[:3, 3] += bad[i]  # the pose is off; the depth and colour were taken from the true one
        written.append(q)
    return poses_f, views, written


def _u8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def write_tum_cubeslam(root: Path, n: int = 12, *, bad: dict[int, np.ndarray] | None = None,
                       away: tuple[int, ...] = (), width: int = 80, height: int = 60) -> Capture:
    """rgb/NNNN_rgb_raw.png, depth/NNNN_depth_raw.png (1/5000 m), truth_cam_poses.txt, intrinsics.txt.
    ``bad``: frame -> offset added to its written position; ``away``: frames looking away from the object."""
    K = intrinsics() * np.array([[width / 80], [height / 60], [1.0]])
    poses_f, views, written = _views(n, width, height, K, bad, away)
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    lines = []
    for i, (view, c2w) in enumerate(zip(views, written)):
        iio.imwrite(root / "rgb" / f"{i:04d}_rgb_raw.png", _u8(view.rgb))
        iio.imwrite(root / "depth" / f"{i:04d}_depth_raw.png", np.round(view.depth * 5000).astype(np.uint16))
        q = quat_xyzw(c2w[:3, :3])
        lines.append("\t".join(f"{x:.9f}" for x in [1000.0 + 0.5 * i, *c2w[:3, 3], *q]) + "\t")
    (root / "truth_cam_poses.txt").write_text("\n".join(lines) + "\n")
    (root / "intrinsics.txt").write_text(
        f"# test capture\nwidth {width}\nheight {height}\nfx {K[0, 0]!r}\nfy {K[1, 1]!r}\ncx {K[0, 2]!r}\n"
        f"cy {K[1, 2]!r}\ndepth_scale 5000   # per metre\n")
    return Capture(root, written, poses_f, K, views)


def write_tum_original(root: Path, n: int = 12, *, width: int = 80, height: int = 60) -> Capture:
    """rgb.txt / depth.txt / groundtruth.txt with timestamps; depth 5 ms after colour; each pose given by
    two ground-truth samples 4 ms before and 4 ms after the colour time, turned and shifted symmetrically
    about the truth (so interpolation recovers it exactly)."""
    K = intrinsics()
    poses_f, views, written = _views(n, width, height, K, None)
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    rgb_lines, depth_lines, gt = ["# color images"], ["# depth maps"], ["# timestamp tx ty tz qx qy qz qw"]
    for i, (view, c2w) in enumerate(zip(views, written)):
        t = 2000.0 + 0.25 * i
        iio.imwrite(root / "rgb" / f"{t:.6f}.png", _u8(view.rgb))
        iio.imwrite(root / "depth" / f"{t + 0.005:.6f}.png", np.round(view.depth * 5000).astype(np.uint16))
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t + 0.005:.6f} depth/{t + 0.005:.6f}.png")
        for sign in (-1.0, 1.0):
            r = c2w[:3, :3] @ _rot_z(sign * 0.01)
            pos = c2w[:3, 3] + sign * np.array([0.004, -0.002, 0.001])
            gt.append(" ".join(f"{x:.9f}" for x in [t + sign * 0.004, *pos, *quat_xyzw(r)]))
    # one colour frame with nothing near it in time: unmatched
    t_lost = 2000.0 + 0.25 * n + 5.0
    iio.imwrite(root / "rgb" / f"{t_lost:.6f}.png", _u8(views[0].rgb))
    rgb_lines.append(f"{t_lost:.6f} rgb/{t_lost:.6f}.png")
    (root / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (root / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    (root / "groundtruth.txt").write_text("\n".join(gt) + "\n")
    (root / "intrinsics.txt").write_text("fx 70.0\nfy 71.0\ncx 40.5\ncy 29.25\nwidth 80\nheight 60\n")
    return Capture(root, written, poses_f, K, views)


def write_scannet(root: Path, n: int = 12, *, with_info: bool = True) -> tuple[Capture, np.ndarray]:
    """color/N.png at 2x resolution with its own intrinsics, depth/N.png (mm) at 80x60, pose/N.txt,
    intrinsic/*.txt; returns the capture (depth camera) and the colour K."""
    K = intrinsics()
    K_c = np.array([[141.0, 0.0, 80.5], [0.0, 142.5, 59.0], [0.0, 0.0, 1.0]])
    poses_f, views, written = _views(n, 80, 60, K, None)
    for sub in ("color", "depth", "pose", "intrinsic"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, (view, c2w, pf) in enumerate(zip(views, written, poses_f)):
        colour = render(pf, K_c, 160, 120)
        iio.imwrite(root / "color" / f"{i}.png", _u8(colour.rgb))
        iio.imwrite(root / "depth" / f"{i}.png", np.round(view.depth * 1000).astype(np.uint16))
        np.savetxt(root / "pose" / f"{i}.txt", c2w, fmt="%.12f")
    for name, k in (("intrinsic_color.txt", K_c), ("intrinsic_depth.txt", K)):
        m = np.eye(4)
        m[:3, :3] = k
        np.savetxt(root / "intrinsic" / name, m, fmt="%.6f")
    for name in ("extrinsic_color.txt", "extrinsic_depth.txt"):
        np.savetxt(root / "intrinsic" / name, np.eye(4), fmt="%.6f")
    if with_info:
        (root / "scene0000_00.txt").write_text("colorHeight = 120\ncolorWidth = 160\ndepthHeight = 60\n"
                                               "depthWidth = 80\nsceneType = Test\n")
    return Capture(root, written, poses_f, K, views), K_c


def write_nerfstudio(root: Path, n: int = 12, *, depth_scale: int = 1, npy: bool = False) -> Capture:
    """transforms.json (OpenGL camera->world), images/frame_NNNNN.png, depth at 1/``depth_scale`` of the
    colour resolution (mm PNG, or .npy in mm as nerfstudio scales it)."""
    K = intrinsics()
    poses_f, views, written = _views(n, 80, 60, K, None)
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    frames = []
    for i, (view, c2w) in enumerate(zip(views, written)):
        name = f"frame_{i + 1:05d}"
        iio.imwrite(root / "images" / f"{name}.png", _u8(view.rgb))
        d = view.depth[::depth_scale, ::depth_scale] if depth_scale > 1 else view.depth
        if depth_scale > 1:  # render the small depth exactly at its own pixel centres
            Ks = K.copy()
            Ks[:2] /= depth_scale
            d = render(poses_f[i], Ks, 80 // depth_scale, 60 // depth_scale).depth
        mm = np.round(d * 1000)
        if npy:
            np.save(root / "depth" / f"{name}.npy", mm.astype(np.float32))
        else:
            iio.imwrite(root / "depth" / f"{name}.png", mm.astype(np.uint16))
        frames.append({"file_path": f"images/{name}.png",
                       "depth_file_path": f"depth/{name}.{'npy' if npy else 'png'}",
                       "transform_matrix": (c2w @ np.diag([1.0, -1.0, -1.0, 1.0])).tolist()})
    import json

    meta = {"fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "w": 80, "h": 60,
            "camera_model": "OPENCV", "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta, indent=1))
    return Capture(root, written, poses_f, K, views)
