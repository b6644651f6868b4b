"""Capture-like scenes: a rendered RGB-D capture of an object in a cluttered room, with its ground truth.

``splat make-scene --capture`` writes what ``splat import nerfstudio`` reads (transforms.json with
``depth_file_path``), as a hand-held RGB-D camera would have recorded it, and keeps the truth beside it
so the real-capture path can be measured:

- the room (:mod:`splat.blender.scene_clutter`): a textured floor, walls, clutter on the floor;
- a hand-held loop (:func:`splat.blender.scene_cameras.plan_loop`), rendered at the TRUE poses;
- per-view exposure: a gain ``1 + exposure * u`` (u uniform in [-1, 1]) times a white balance per channel
  ``1 + white_balance * v_c`` (v_c uniform in [-1, 1], normalised to mean 1), on linear light, clipped;
- depth of everything the camera sees (z-depth, no reading beyond ``max_range`` or on the sky) with the
  structured-light noise and holes of :class:`splat.blender.make_scene.SensorNoise`;
- WRITTEN poses off the true ones by exactly ``pose_noise_m`` (a random direction) and ``pose_noise_deg``
  (about a random axis through the camera centre), expressed in a capture world that is a random rigid
  motion of the scene's (so gravity is not +Z, as in a SLAM world);
- colour written as JPEG at ``jpeg_quality`` (0: PNG).

The truth, in ``truth/``: ``truth.json`` (format ``splat.capture_truth/1``: program, gt_params,
``scene_to_capture`` [4x4] (scene frame = the frame of ``gt_mesh.ply``: floor z = 0, object centred on
its footprint), per view the true camera->world (OpenCV axes, capture world), the gains and the pose
error, the clutter, walls, floor and the manifest), ``gt_mesh.ply`` and ``masks/<frame>.png``, where
the object itself is visible at the true pose (Cycles' object-index pass, so occluders cut it).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from splat.blender.make_scene import (SceneRequest, SensorNoise, RenderSettings, _bpy, _reset, add_sensor_noise,
                                      build_object, read_exr_channel, render_view, set_camera, setup_render,
                                      setup_world_and_lights, validate_render_settings, validate_request,
                                      write_mesh_ply)
from splat.blender.scene_cameras import CameraSettings, LoopSettings, plan_loop, validate_camera_settings
from splat.blender.scene_clutter import build_room, choose_floor, plan_clutter, plan_walls
from splat.data import Camera, write_scene
from splat.data.camera import rigid_inverse
from splat.errors import SplatError

TRUTH_FORMAT = "splat.capture_truth/1"
OBJECT_INDEX = 1  # Cycles pass_index of the object's parts (everything else: 0)


@dataclass(frozen=True)
class CaptureSettings:
    """What makes a rendered scene look like a hand-held RGB-D capture (recorded in the truth)."""

    loop: LoopSettings = field(default_factory=LoopSettings)
    """The hand-held trajectory."""
    clutter: int = 6
    """Number of other things on the floor around the object."""
    clutter_programs: tuple[str, ...] = ("chair", "table", "cabinet", "bookshelf")
    """Library programs clutter may be (random parameters, outside the camera loop); () = boxes and
    cylinders only."""
    walls: int = 2
    """Walls (0, 1 or 2 meeting in a corner) beyond the clutter."""
    floor_texture: bool = True
    """A procedural floor (planks, tiles or carpet) instead of flat grey."""
    exposure: float = 0.3
    """Per-view exposure gain in [1 - exposure, 1 + exposure]."""
    white_balance: float = 0.05
    """Per-view, per-channel white-balance factor within +-this (normalised to mean 1)."""
    pose_noise_m: float = 0.01
    """Distance between each written camera centre and the true one, metres."""
    pose_noise_deg: float = 0.5
    """Angle between each written camera orientation and the true one, degrees."""
    jpeg_quality: int = 90
    """JPEG quality of the colour images (0: lossless PNG)."""
    sensor_noise: SensorNoise = field(default_factory=lambda: SensorNoise(enabled=True))
    """Depth-sensor noise and holes."""
    max_range: float = 6.0
    """Depth readings farther than this are missing (the sensor's range), metres."""
    random_world: bool = True
    """Express the poses in a random rigid capture world (else the scene's own frame)."""


def validate_capture_settings(s: CaptureSettings) -> None:
    """Raise SplatError naming the field when a capture setting is out of range."""
    from splat.blender.scene_cameras import validate_loop_settings
    from splat.program import available_programs

    validate_loop_settings(s.loop)
    have = set(available_programs())
    unknown = [p for p in s.clutter_programs if p not in have]
    checks = [
        ("clutter", 0 <= s.clutter <= 50, "must be in [0, 50]"),
        ("clutter_programs", not unknown, f"unknown programs {unknown}; library: {sorted(have)}"),
        ("walls", s.walls in (0, 1, 2), "must be 0, 1 or 2"),
        ("exposure", 0.0 <= s.exposure <= 0.9, "must be in [0, 0.9]"),
        ("white_balance", 0.0 <= s.white_balance <= 0.5, "must be in [0, 0.5]"),
        ("pose_noise_m", 0.0 <= s.pose_noise_m <= 0.5, "must be in [0, 0.5] metres"),
        ("pose_noise_deg", 0.0 <= s.pose_noise_deg <= 20.0, "must be in [0, 20] degrees"),
        ("jpeg_quality", s.jpeg_quality == 0 or 1 <= s.jpeg_quality <= 100, "must be 0 (PNG) or in [1, 100]"),
        ("max_range", s.max_range > 0.0, "must be > 0"),
    ]
    for name, ok, why in checks:
        if not ok:
            raise SplatError(f"{why}, got {getattr(s, name)!r}", field=f"capture.{name}")


# ------------------------------------------------------------------------------- pure numpy parts


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """[3, 3] rotation by ``angle`` radians about the unit ``axis`` [3] (Rodrigues)."""
    a = np.asarray(axis, dtype=np.float64)
    k = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def perturb_pose(c2w: np.ndarray, distance: float, angle_deg: float, rng: np.random.Generator) -> np.ndarray:
    """A camera->world [4, 4] moved by exactly ``distance`` (random direction) and turned by exactly
    ``angle_deg`` about a random axis through its centre."""
    out = np.array(c2w, dtype=np.float64)
    direction, axis = _unit(rng), _unit(rng)
    out[:3, :3] = rotation_about(axis, math.radians(angle_deg)) @ out[:3, :3]
    out[:3, 3] = out[:3, 3] + distance * direction
    return out


def random_rigid(rng: np.random.Generator, max_shift: float = 2.0) -> np.ndarray:
    """[4, 4] a uniformly random rotation and a translation uniform in [-max_shift, max_shift]^3."""
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    m = np.eye(4)
    m[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                 [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                 [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]
    m[:3, 3] = rng.uniform(-max_shift, max_shift, size=3)
    return m


def view_gains(n: int, exposure: float, white_balance: float, rng: np.random.Generator) -> np.ndarray:
    """[n, 3] per-view colour gains: exposure ``1 + exposure * u`` times a white balance of mean 1."""
    g = 1.0 + exposure * rng.uniform(-1.0, 1.0, size=n)
    wb = 1.0 + white_balance * rng.uniform(-1.0, 1.0, size=(n, 3))
    wb /= wb.mean(axis=1, keepdims=True)
    return g[:, None] * wb


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, None)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1.0 / 2.4) - 0.055).astype(np.float32)


def apply_gain(image: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """[H, W, 3] sRGB in [0, 1] times a linear-light ``gain`` [3], clipped like a sensor; sRGB out."""
    return np.clip(linear_to_srgb(np.clip(srgb_to_linear(image) * np.asarray(gain, np.float32), 0.0, 1.0)), 0.0, 1.0)


def full_depth(z: np.ndarray, max_range: float) -> np.ndarray:
    """Z-pass depth of everything seen, 0 where nothing is hit or beyond ``max_range``. [H, W] float32."""
    ok = np.isfinite(z) & (z > 0) & (z <= max_range)
    return np.where(ok, z, 0.0).astype(np.float32)


class CaptureTruth(NamedTuple):
    """Paths of a written capture-like scene."""

    transforms: Path  # the capture's transforms.json (nerfstudio layout)
    truth: Path  # truth/truth.json


# ------------------------------------------------------------------------------------------- bpy


def _add_index_output(bpy, index_dir: Path) -> None:
    """Write Cycles' object-index pass as an EXR per render (beside the depth output)."""
    scene = bpy.context.scene
    scene.view_layers[0].use_pass_object_index = True
    tree = scene.node_tree
    layers = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
    out = tree.nodes.new("CompositorNodeOutputFile")
    out.base_path = str(index_dir)
    out.format.file_format = "OPEN_EXR"
    out.format.color_depth = "32"
    out.format.exr_codec = "ZIP"
    out.file_slots[0].path = "index_"
    tree.links.new(layers.outputs["IndexOB"], out.inputs[0])


CAPTURE_CAMERA = CameraSettings(width=320, height=240, focal_mm=30.0)
"""A small RGB-D camera: 320x240, ~60 degrees across (fx ~ 267 px, a Kinect's at half resolution)."""
CAPTURE_RENDER = RenderSettings(samples=16)
"""Few samples (the denoiser and the JPEG hide the rest): a frame in ~2-4 s on one core."""


def make_capture_scene(request: SceneRequest, *, cameras: CameraSettings = CAPTURE_CAMERA,
                       render: RenderSettings = CAPTURE_RENDER, capture: CaptureSettings = CaptureSettings(),
                       command: str | None = None, log: Callable[[str], None] | None = None) -> CaptureTruth:
    """Render a capture-like scene of ``request``'s object (see the module doc); returns its paths.

    Only ``width``, ``height``, ``focal_mm``, ``sensor_width_mm`` and ``margin`` of ``cameras`` are used
    (the views come from ``capture.loop``). Every random choice comes from an independent stream of
    ``request.seed``. ``log`` (e.g. ``print``) hears one line per rendered frame.
    """
    validate_render_settings(render)
    validate_camera_settings(cameras)
    validate_capture_settings(capture)
    validate_request(request)
    bpy = _bpy()
    streams = np.random.SeedSequence(request.seed).spawn(10)
    (rng_params, rng_materials, rng_light, rng_cameras, rng_noise, rng_room, rng_room_mats, rng_gain, rng_pose,
     rng_world) = (np.random.default_rng(s) for s in streams)

    out = Path(request.out)
    _reset(bpy)
    built = build_object(bpy, request, rng_params, rng_materials)
    for obj in bpy.context.scene.objects:
        if obj.type == "MESH":
            obj.pass_index = OBJECT_INDEX
    mesh = built.mesh
    lo, hi = mesh.verts.min(0), mesh.verts.max(0)
    centre = (lo + hi) / 2.0

    views = plan_loop(lo, hi, cameras, capture.loop, rng_cameras)
    loop_radius = max(float(np.linalg.norm(c.center[:2] - centre[:2])) for c in views)
    wall_distance = loop_radius + 2.2
    walls = plan_walls(centre[:2], wall_distance, capture.walls, rng_room)
    clutter = plan_clutter(lo, hi, capture.clutter, tuple(capture.clutter_programs), loop_radius, walls, rng_room,
                           room_radius=wall_distance)
    floor = choose_floor(rng_room) if capture.floor_texture else None
    clutter_materials = build_room(bpy, floor_size=2.0 * wall_distance + 4.0, floor_centre=centre[:2], floor=floor,
                                   walls=walls, clutter=clutter, rng=rng_room_mats)
    lighting = setup_world_and_lights(bpy, render, rng_light)

    n = len(views)
    gains = view_gains(n, capture.exposure, capture.white_balance, rng_gain)
    to_capture = random_rigid(rng_world) if capture.random_world else np.eye(4)
    images, depths, truth_masks, written, records = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="make_capture_") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "depth").mkdir()
        (tmp / "index").mkdir()
        denoised = setup_render(bpy, cameras, render, request.seed, tmp / "depth")
        bpy.context.scene.render.film_transparent = False
        _add_index_output(bpy, tmp / "index")
        for i, cam in enumerate(views):
            for f in (tmp / "index").glob("*.exr"):
                f.unlink()
            set_camera(bpy, cam, cameras)
            rgba, z = render_view(bpy, tmp)
            index = read_exr_channel(bpy, next((tmp / "index").glob("*.exr")))
            rgb = rgba[:, :, :3].astype(np.float32) / 255.0
            images.append(apply_gain(rgb, gains[i]))
            depth = full_depth(z, capture.max_range)
            if capture.sensor_noise.enabled:
                depth = add_sensor_noise(depth, capture.sensor_noise, rng_noise)
            depths.append(depth)
            truth_masks.append(np.rint(index) == OBJECT_INDEX)
            c2w_true = rigid_inverse(cam.viewmat)
            c2w_written = perturb_pose(c2w_true, capture.pose_noise_m, capture.pose_noise_deg, rng_pose)
            written.append(Camera(K=cam.K, viewmat=rigid_inverse(to_capture @ c2w_written), width=cam.width,
                                  height=cam.height, name=cam.name))
            records.append({"name": cam.name, "c2w_true": (to_capture @ c2w_true).tolist(),
                            "gain": gains[i].tolist(), "object_fraction": float(truth_masks[-1].mean())})
            if log is not None:
                log(f"[make_scene] rendered {cam.name} ({i + 1}/{n})")

    from splat.data.images import write_mask
    from splat.io import write_json_atomic

    truth_dir = out / "truth"
    write_mesh_ply(truth_dir / "gt_mesh.ply", mesh)
    for cam, m in zip(views, truth_masks):
        write_mask(truth_dir / "masks" / f"{cam.name}.png", m)
    manifest = {
        "seed": int(request.seed), "command": command, "blender_version": bpy.app.version_string,
        "source": built.source, "placement_offset": built.offset.tolist(),
        "render": {**asdict(render), "engine": "CYCLES", "device": "CPU", "cycles_seed": int(request.seed),
                   "denoiser": "OPENIMAGEDENOISE" if denoised else None, "view_transform": "Standard",
                   "film_transparent": False},
        "cameras": asdict(cameras), "capture": asdict(capture), "materials": built.materials,
        "lighting": lighting,
    }
    truth = {
        "format": TRUTH_FORMAT, "program": built.program, "gt_params": built.params, "gt_mesh": "gt_mesh.ply",
        "masks": "masks", "scene_to_capture": to_capture.tolist(), "object_centre": centre.tolist(),
        "object_extents": (hi - lo).tolist(), "views": records,
        "clutter": [{**c.to_json(), "materials": m} for c, m in zip(clutter, clutter_materials)],
        "walls": [{"direction": w.direction.tolist(), "distance": w.distance, "height": w.height,
                   "material": w.material.to_json()} for w in walls],
        "floor": None if floor is None else floor.to_json(), "loop_radius": loop_radius, "manifest": manifest,
    }
    fmt = "jpg" if capture.jpeg_quality else "png"
    transforms = write_scene(out, written, images, depths=depths, image_format=fmt,
                             jpeg_quality=capture.jpeg_quality or 95)
    write_json_atomic(truth_dir / "truth.json", truth)
    return CaptureTruth(transforms, truth_dir / "truth.json")


def read_truth(path: Path) -> dict:
    """The truth of a capture-like scene (its folder, truth/ or truth.json), checked for its format."""
    from splat.io import read_json

    p = Path(path)
    if p.is_dir():
        p = p / "truth.json" if (p / "truth.json").is_file() else p / "truth" / "truth.json"
    data = read_json(p)
    if not isinstance(data, dict) or data.get("format") != TRUTH_FORMAT:
        raise SplatError(f"not a capture-like scene's truth (format {TRUTH_FORMAT})", file=p, field="format")
    return data
