"""Ground-truth scenes rendered by Blender Cycles (CPU): RGB, z-depth, masks, GT mesh and parameters.

Usage::

    splat make-scene --program chair --seed 3 --out DIR      # random valid params
    splat make-scene --program chair --params '{"Seat Height": 0.5}' --out DIR
    splat make-scene --mesh model.gltf --seed 0 --out DIR     # glTF / OBJ / PLY

Mesh files: glTF and OBJ are read as Y-up, PLY as Z-up; units are metres.
    splat make-scene --all                                    # re-make the shipped scenes (splat/scenes)
    splat make-scene --program chair --capture --out DIR      # a capture-like RGB-D capture (scene_capture)

Each view is rendered once; the RGB (with alpha, ``film_transparent``) comes from the render result and
the z-depth from the same render's Z pass, written by a compositor File Output node as a float32 EXR
that bpy reads back. The scene folder is written through :func:`splat.data.write_scene`: RGB composited
over the manifest's ``background``, 16-bit depth in millimetres, masks, ``gt_mesh.ply`` and, for program
scenes, ``program`` + ``gt_params``; ``manifest`` (in transforms.json) records everything needed to make
the scene again (seed, Blender version, settings, command).

Convention: Blender world (right-handed, +Z up, metres); the object stands with its base on z=0.
Cycles' Z pass is the distance along the camera axis (z-depth, not ray length): checked by the tests by
back-projecting depth onto the ground-truth mesh. Images are sRGB ("Standard" view transform); the
composite ``rgb = alpha * render + (1 - alpha) * background`` is done on sRGB values, as the trainer's
rasterizer does. A mask pixel is object when the render's alpha >= 0.5; depth is kept only on mask
pixels. docs/conventions.md has the general conventions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from splat.blender.scene_cameras import CameraRig, CameraSettings, blender_camera_matrix, plan_cameras
from splat.blender.scene_materials import PartMaterial, build_material, choose_part_materials
from splat.data import Camera, write_scene
from splat.errors import SplatError
from splat.io import atomic_path
from splat.workspace import SCENES_DIR

MANIFEST_FORMAT = "splat.scene_manifest/1"
MESH_SUFFIXES = (".gltf", ".glb", ".obj", ".ply")


@dataclass(frozen=True)
class RenderSettings:
    """Cycles settings (recorded in the manifest)."""

    samples: int = 32
    """Path-tracing samples per pixel."""
    denoise: bool = True
    """OpenImageDenoise on the RGB when this Blender build has it (the manifest says if it was used)."""
    max_bounces: int = 4
    """Total light bounces."""
    threads: int = 2
    """CPU render threads (0 = all cores)."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """sRGB colour the RGB images are composited over (the trainer renders with the same)."""
    sun_strength: float = 3.0
    """Sun irradiance (W/m^2)."""
    sky_strength: float = 0.7
    """Strength of the uniform sky (ambient) light."""


def validate_render_settings(s: RenderSettings) -> None:
    """Raise SplatError naming the field when a render setting is out of range."""
    checks = [
        ("samples", s.samples >= 1, "must be >= 1"),
        ("max_bounces", s.max_bounces >= 0, "must be >= 0"),
        ("threads", s.threads >= 0, "must be >= 0 (0 = all cores)"),
        ("background", len(s.background) == 3 and all(0.0 <= c <= 1.0 for c in s.background),
         "must be 3 sRGB values in [0, 1]"),
        ("sun_strength", s.sun_strength >= 0, "must be >= 0"),
        ("sky_strength", s.sky_strength >= 0, "must be >= 0"),
    ]
    for name, ok, why in checks:
        if not ok:
            raise SplatError(f"{why}, got {getattr(s, name)!r}", field=f"render.{name}")


@dataclass(frozen=True)
class SensorNoise:
    """Optional depth-sensor imperfections applied to the depth maps (not to RGB or masks).

    Axial noise follows a structured-light model, ``sigma(z) = base + quad * (z - 0.4)^2`` metres
    (Nguyen et al. 2012, Kinect); holes are dropped readings at depth discontinuities and at random.
    """

    enabled: bool = False
    """Apply noise and holes."""
    base: float = 0.0012
    """Noise std at 0.4 m (m)."""
    quad: float = 0.0019
    """Quadratic growth of the noise std with distance (1/m)."""
    edge_threshold: float = 0.05
    """A pixel whose 4-neighbour depth differs by more than this (m) is an edge pixel."""
    edge_dropout: float = 0.5
    """Probability that an edge pixel reads nothing."""
    random_dropout: float = 0.01
    """Probability that any other pixel reads nothing."""


class ObjectMesh(NamedTuple):
    """A triangle mesh with parts, in the world frame (Blender axes, metres)."""

    verts: np.ndarray  # [V, 3] float64
    faces: np.ndarray  # [F, 3] int64, triangles
    face_part: np.ndarray  # [F] int64, index into part_keys
    part_keys: list[str]  # [P] equal keys = copies of one primitive (share a material)


class SceneRequest(NamedTuple):
    """What to render: exactly one of a program (``program`` + ``params``) or a mesh file."""

    out: Path
    seed: int
    program: str | None = None
    params: dict | None = None  # None: random valid parameters from the seed
    mesh_file: Path | None = None


class ProgramObject(NamedTuple):
    """A program evaluated and realized for rendering."""

    mesh: ObjectMesh  # program frame (not yet placed)
    params: dict  # every parameter of the space, python scalars (inactive ones included)
    name: str  # the program's name
    sha256: str  # of the program's JSON (graph + parameter space)


# --------------------------------------------------------------------------------------- geometry


def program_mesh(program_name: str, params: dict | None, rng: np.random.Generator) -> ProgramObject:
    """Evaluate one of our programs with one parameter set and realize it (active faces only).

    ``params=None`` draws random valid parameters from ``rng``; given params are validated by the
    program's ParamSpace (SplatError naming the parameter).
    """
    import torch

    from splat.program import load_program

    program = load_program(program_name)
    if params is None:
        gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        sampled = program.space.sample(1, gen)
        params = program.space.unbatch(sampled)[0]
    params = program.space.validate(params, file="--params")
    geometry = program.evaluate(params, dtype=torch.float64)
    mesh = geometry.realize()
    verts = mesh.verts[0].detach().cpu().numpy().astype(np.float64)
    faces = mesh.faces.cpu().numpy().astype(np.int64)
    face_part = mesh.face_part.cpu().numpy().astype(np.int64)
    keep = mesh.face_active[0].cpu().numpy().astype(bool)
    faces, face_part = faces[keep], face_part[keep]
    used = np.unique(faces)
    remap = np.full(len(verts), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    verts, faces = verts[used], remap[faces]
    keys = []
    for part in geometry.parts:
        k = part.key
        keys.append(f"{k.tree}/{k.node}/{k.kind}/{'x'.join(str(t) for t in k.topology)}")
    digest = hashlib.sha256(json.dumps(program.to_dict(), sort_keys=True).encode()).hexdigest()
    return ProgramObject(ObjectMesh(verts, faces, face_part, keys), params, program.name, digest)


def place_on_ground(mesh: ObjectMesh) -> tuple[ObjectMesh, np.ndarray]:
    """Translate a mesh so its base is on z=0 (x, y unchanged); returns (mesh, [3] translation)."""
    offset = np.array([0.0, 0.0, -float(mesh.verts[:, 2].min())])
    return mesh._replace(verts=mesh.verts + offset), offset


# ------------------------------------------------------------------------------------------- bpy


def _bpy():
    from splat.blender import require_bpy

    try:
        return require_bpy()  # the session owner: arms the shutdown guard
    except SplatError:
        raise SplatError("the scene maker needs Blender as a Python module: pip install 'splat[blender]'",
                         field="bpy") from None


def _reset(bpy) -> None:
    from splat.blender import new_session

    new_session()
    bpy.ops.wm.read_factory_settings(use_empty=True)


def part_frame(verts: np.ndarray) -> np.ndarray:
    """[4, 4] rigid frame of a part's vertices [V, 3]: origin at their centroid, axes = principal axes
    sorted by decreasing extent (x = longest, z = thinnest), right-handed.

    Procedural textures use object coordinates, so giving each part this frame makes wood grain run
    along every board's and leg's long axis, whatever its orientation in the world.
    """
    centre = verts.mean(axis=0)
    d = verts - centre
    _, _, vt = np.linalg.svd(d, full_matrices=False) if len(d) >= 3 else (None, None, np.eye(3))
    axes = np.eye(3) if vt.shape != (3, 3) else vt  # rows, by decreasing singular value
    if np.linalg.det(axes) < 0:
        axes[2] = -axes[2]
    frame = np.eye(4)
    frame[:3, :3] = axes.T
    frame[:3, 3] = centre
    return frame


def add_object_mesh(bpy, mesh: ObjectMesh, materials: list[PartMaterial]) -> None:
    """One Blender object per part (in its :func:`part_frame`), one material per distinct finish."""
    import mathutils

    built: dict[PartMaterial, object] = {}
    for part, mat in enumerate(materials):
        sel = np.nonzero(mesh.face_part == part)[0]
        if len(sel) == 0:
            continue
        used, local_faces = np.unique(mesh.faces[sel], return_inverse=True)
        frame = part_frame(mesh.verts[used])
        local = (mesh.verts[used] - frame[:3, 3]) @ frame[:3, :3]
        me = bpy.data.meshes.new(f"part_{part}")
        me.from_pydata(local.tolist(), [], local_faces.reshape(-1, 3).tolist())
        me.validate(clean_customdata=False)
        if mat not in built:
            built[mat] = build_material(bpy, mat, f"{mat.kind}_{mat.name}_{len(built)}")
        me.materials.append(built[mat])
        me.update()
        obj = bpy.data.objects.new(f"part_{part}", me)
        obj.matrix_world = mathutils.Matrix(frame.tolist())
        bpy.context.scene.collection.objects.link(obj)


def _import_mesh_file(bpy, path: Path) -> tuple[ObjectMesh, np.ndarray]:
    """Import a glTF/OBJ/PLY and place it (x/y-centred, base on z=0).

    Returns its world triangles and the [3] translation applied to the file's coordinates.
    """
    suffix = path.suffix.lower()
    if not path.is_file():
        raise SplatError("mesh file does not exist", file=path, field="--mesh")
    if suffix not in MESH_SUFFIXES:
        raise SplatError(f"unsupported mesh type {suffix!r}; use one of {list(MESH_SUFFIXES)}", file=path,
                         field="--mesh")
    try:
        if suffix in (".gltf", ".glb"):
            bpy.ops.import_scene.gltf(filepath=str(path))
        elif suffix == ".obj":  # OBJ convention: Y up (Blender's default)
            bpy.ops.wm.obj_import(filepath=str(path), forward_axis="NEGATIVE_Z", up_axis="Y")
        else:  # PLY: Z up, as Blender and our own gt_mesh.ply
            bpy.ops.wm.ply_import(filepath=str(path), forward_axis="Y", up_axis="Z")
    except RuntimeError as err:
        raise SplatError(f"Blender cannot import it: {err}", file=path, field="--mesh") from None
    mesh = _world_triangles(bpy)
    if len(mesh.faces) == 0:
        raise SplatError("the file has no triangles", file=path, field="--mesh")
    lo, hi = mesh.verts.min(0), mesh.verts.max(0)
    offset = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
    for obj in bpy.context.scene.objects:
        if obj.parent is None:
            obj.location = (obj.location[0] + offset[0], obj.location[1] + offset[1], obj.location[2] + offset[2])
    bpy.context.view_layer.update()
    return _world_triangles(bpy), offset


def _world_triangles(bpy) -> ObjectMesh:
    """All visible mesh objects of the scene, evaluated and triangulated, in world coordinates."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    verts, faces, face_part, keys = [], [], [], []
    base = 0
    for obj in bpy.context.scene.objects:
        if obj.type != "MESH":
            continue
        ev = obj.evaluated_get(depsgraph)
        me = ev.to_mesh()
        me.calc_loop_triangles()
        n_v, n_t = len(me.vertices), len(me.loop_triangles)
        co = np.empty(n_v * 3, dtype=np.float64)
        me.vertices.foreach_get("co", co)
        tri = np.empty(n_t * 3, dtype=np.int64)
        me.loop_triangles.foreach_get("vertices", tri)
        mw = np.array(ev.matrix_world)
        co = co.reshape(-1, 3) @ mw[:3, :3].T + mw[:3, 3]
        ev.to_mesh_clear()
        verts.append(co)
        faces.append(tri.reshape(-1, 3) + base)
        face_part.append(np.full(n_t, len(keys), dtype=np.int64))
        keys.append(obj.name)
        base += n_v
    if not verts:
        return ObjectMesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros(0, np.int64), [])
    return ObjectMesh(np.concatenate(verts), np.concatenate(faces), np.concatenate(face_part), keys)


def setup_world_and_lights(bpy, settings: RenderSettings, rng: np.random.Generator) -> dict:
    """Uniform sky (ambient) + one sun at a seeded azimuth; returns the lighting record."""
    scene = bpy.context.scene
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    sky = (0.80, 0.85, 0.95)
    bg.inputs["Color"].default_value = (*sky, 1.0)
    bg.inputs["Strength"].default_value = settings.sky_strength
    scene.world = world
    azimuth = float(rng.uniform(0.0, 360.0))
    elevation = float(rng.uniform(35.0, 65.0))
    sun_data = bpy.data.lights.new("sun", type="SUN")
    sun_data.energy = settings.sun_strength
    sun_data.angle = math.radians(8.0)
    sun = bpy.data.objects.new("sun", sun_data)
    # A sun shines along its local -Z: point -Z from the sun direction towards the origin.
    sun.rotation_euler = (math.radians(90.0 - elevation), 0.0, math.radians(azimuth + 90.0))
    scene.collection.objects.link(sun)
    return {"sky_color_linear": list(sky), "sky_strength": settings.sky_strength,
            "sun_strength": settings.sun_strength, "sun_azimuth_deg": azimuth, "sun_elevation_deg": elevation,
            "sun_angle_deg": 8.0}


def setup_render(bpy, cams: CameraSettings, settings: RenderSettings, seed: int, depth_dir: Path) -> bool:
    """Cycles CPU settings + compositor writing the Z pass to EXR; returns whether OIDN is used."""
    import _cycles  # Blender's Cycles module, present whenever bpy has Cycles

    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = settings.samples
    scene.cycles.seed = seed
    scene.cycles.use_animated_seed = False
    scene.cycles.max_bounces = settings.max_bounces
    denoise = bool(settings.denoise and getattr(_cycles, "with_openimagedenoise", False))
    scene.cycles.use_denoising = denoise
    if denoise:
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
    scene.render.resolution_x = cams.width
    scene.render.resolution_y = cams.height
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    scene.render.film_transparent = True
    scene.render.use_persistent_data = True
    scene.render.threads_mode = "FIXED" if settings.threads > 0 else "AUTO"
    if settings.threads > 0:
        scene.render.threads = settings.threads
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    scene.view_layers[0].use_pass_z = True
    scene.use_nodes = True
    tree = scene.node_tree
    for node in list(tree.nodes):
        tree.nodes.remove(node)
    layers = tree.nodes.new("CompositorNodeRLayers")
    composite = tree.nodes.new("CompositorNodeComposite")
    tree.links.new(layers.outputs["Image"], composite.inputs["Image"])
    out = tree.nodes.new("CompositorNodeOutputFile")
    out.base_path = str(depth_dir)
    out.format.file_format = "OPEN_EXR"
    out.format.color_depth = "32"
    out.format.exr_codec = "ZIP"
    out.file_slots[0].path = "depth_"
    tree.links.new(layers.outputs["Depth"], out.inputs[0])
    return denoise


def set_camera(bpy, camera: Camera, cams: CameraSettings):
    scene = bpy.context.scene
    if scene.camera is None:
        data = bpy.data.cameras.new("camera")
        obj = bpy.data.objects.new("camera", data)
        scene.collection.objects.link(obj)
        scene.camera = obj
    obj = scene.camera
    obj.data.lens = cams.focal_mm
    obj.data.sensor_width = cams.sensor_width_mm
    obj.data.sensor_fit = "HORIZONTAL"
    obj.data.shift_x = obj.data.shift_y = 0.0
    obj.data.clip_start = 0.01
    obj.data.clip_end = 1000.0
    import mathutils

    obj.matrix_world = mathutils.Matrix(blender_camera_matrix(camera).tolist())


@contextlib.contextmanager
def _quiet_stdout():
    """Silence Blender's per-sample progress lines (C-level stdout) while rendering."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def render_view(bpy, tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    """Render the current camera; returns (rgba [H, W, 4] uint8 straight alpha, z [H, W] float32)."""
    import imageio.v3 as iio

    scene = bpy.context.scene
    scene.render.filepath = str(tmp / "rgba.png")
    for f in (tmp / "depth").glob("*.exr"):
        f.unlink()
    with _quiet_stdout():
        bpy.ops.render.render(write_still=True)
    rgba = np.asarray(iio.imread(tmp / "rgba.png"))
    exrs = sorted((tmp / "depth").glob("*.exr"))
    if len(exrs) != 1:
        raise RuntimeError(f"expected one depth EXR from the compositor, found {exrs}")
    return rgba, read_exr_channel(bpy, exrs[0])


def read_exr_channel(bpy, path: Path) -> np.ndarray:
    """The first channel of an EXR the compositor wrote, top row first: [H, W] float32."""
    img = bpy.data.images.load(str(path), check_existing=False)
    try:
        img.colorspace_settings.name = "Non-Color"
        w, h = img.size
        px = np.empty(w * h * 4, dtype=np.float32)
        img.pixels.foreach_get(px)
    finally:
        bpy.data.images.remove(img)
    return np.flipud(px.reshape(h, w, 4)[:, :, 0]).copy()  # Blender images start at the bottom row


# ----------------------------------------------------------------------------------- post-process


def composite_over(rgba: np.ndarray, background) -> np.ndarray:
    """[H, W, 4] uint8 straight-alpha sRGB -> [H, W, 3] float32 sRGB over a constant background."""
    a = rgba[:, :, 3:4].astype(np.float32) / 255.0
    rgb = rgba[:, :, :3].astype(np.float32) / 255.0
    return a * rgb + (1.0 - a) * np.asarray(background, dtype=np.float32)


def clean_depth(z: np.ndarray, mask: np.ndarray, far: float) -> np.ndarray:
    """Keep Z-pass depth on mask pixels with a finite hit closer than ``far``; else 0. [H, W] float32."""
    ok = mask & np.isfinite(z) & (z > 0) & (z < far)
    return np.where(ok, z, 0.0).astype(np.float32)


def add_sensor_noise(depth: np.ndarray, noise: SensorNoise, rng: np.random.Generator) -> np.ndarray:
    """Axial Gaussian noise growing with distance plus holes at edges and at random. [H, W] -> [H, W]."""
    d = depth.astype(np.float64)
    valid = d > 0
    sigma = noise.base + noise.quad * (d - 0.4) ** 2
    noisy = d + rng.standard_normal(d.shape) * sigma
    pad = np.pad(d, 1, mode="edge")
    jump = np.zeros_like(d, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        jump |= np.abs(pad[dy:dy + d.shape[0], dx:dx + d.shape[1]] - d) > noise.edge_threshold
    drop = np.where(jump, rng.random(d.shape) < noise.edge_dropout, rng.random(d.shape) < noise.random_dropout)
    keep = valid & ~drop & (noisy > 0)
    return np.where(keep, noisy, 0.0).astype(np.float32)


def write_mesh_ply(path: Path, mesh: ObjectMesh) -> None:
    """Binary PLY with float32 vertices, triangle faces and a per-face ``part`` index, atomically."""
    from plyfile import PlyData, PlyElement

    v = np.empty(len(mesh.verts), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    v["x"], v["y"], v["z"] = mesh.verts.T
    f = np.empty(len(mesh.faces), dtype=[("vertex_indices", "i4", (3,)), ("part", "i4")])
    f["vertex_indices"] = mesh.faces
    f["part"] = mesh.face_part
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(v, "vertex"), PlyElement.describe(f, "face")]).write(str(tmp))


def read_mesh_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle PLY (as written by :func:`write_mesh_ply`): ([V, 3] float64, [F, 3] int64)."""
    from plyfile import PlyData

    data = PlyData.read(str(path))
    v = data["vertex"]
    verts = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float64)
    faces = np.stack(data["face"]["vertex_indices"]).astype(np.int64)
    return verts, faces


# ----------------------------------------------------------------------------------------- driver


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def validate_request(request: SceneRequest) -> None:
    """Raise SplatError when a request names no object or two, or its seed is out of range."""
    if (request.program is None) == (request.mesh_file is None):
        raise SplatError("give exactly one of --program or --mesh", field="--program/--mesh")
    if request.params is not None and request.program is None:
        raise SplatError("--params needs --program", field="--params")
    if not (0 <= request.seed < 2**31):
        raise SplatError(f"must be in [0, 2^31), got {request.seed}", field="--seed")


class BuiltObject(NamedTuple):
    """The scene's object, added to the Blender scene (base on z = 0)."""

    mesh: ObjectMesh  # world triangles
    offset: np.ndarray  # [3] translation applied to the program's (or file's) coordinates
    source: dict  # manifest record of where it came from
    program: str | None  # program name (None for a mesh file)
    params: dict | None  # every parameter of the program (None for a mesh file)
    materials: list | str  # manifest record of the finishes


def build_object(bpy, request: SceneRequest, rng_params: np.random.Generator,
                 rng_materials: np.random.Generator) -> BuiltObject:
    """Add the request's object to the (reset) Blender scene: a program with seeded finishes, or a mesh file."""
    if request.mesh_file is not None:
        path = Path(request.mesh_file)
        mesh, offset = _import_mesh_file(bpy, path)
        source = {"kind": "mesh_file", "file": path.name, "sha256": _file_sha256(path)}
        return BuiltObject(mesh, offset, source, None, None, "from the file")
    obj = program_mesh(request.program, request.params, rng_params)
    mesh = obj.mesh
    source = {"kind": "program", "program": obj.name, "program_sha256": obj.sha256,
              "params_given": request.params is not None}
    if len(mesh.faces) == 0:
        raise SplatError("the object has no faces (every part is inactive?)", field="params")
    mesh, offset = place_on_ground(mesh)
    mats = choose_part_materials(list(mesh.part_keys), rng_materials)
    add_object_mesh(bpy, mesh, mats)
    record = [{"part": k, **m.to_json()} for k, m in zip(mesh.part_keys, mats)]
    return BuiltObject(mesh, offset, source, obj.name, obj.params, record)


def make_scene(request: SceneRequest, *, cameras: CameraSettings = CameraSettings(),
               render: RenderSettings = RenderSettings(), noise: SensorNoise = SensorNoise(),
               command: str | None = None) -> Path:
    """Render a scene folder; returns the path of its transforms.json.

    The object is either ``request.program`` (our program with ``request.params`` or random valid
    ones, rendered with seeded procedural materials) or ``request.mesh_file`` (a glTF/OBJ/PLY with its
    own materials). Randomness (parameters, materials, sun, cameras, sensor noise) comes from
    independent streams of ``request.seed``; the Cycles seed is ``request.seed`` too, so the same
    request makes the same scene (bit-identical on one machine).
    """
    bpy = _bpy()
    validate_render_settings(render)
    validate_request(request)
    seq = np.random.SeedSequence(request.seed)
    rng_params, rng_materials, rng_light, rng_cameras, rng_noise = (np.random.default_rng(s) for s in seq.spawn(5))

    out = Path(request.out)
    _reset(bpy)
    built = build_object(bpy, request, rng_params, rng_materials)
    mesh, offset = built.mesh, built.offset

    lighting = setup_world_and_lights(bpy, render, rng_light)
    lo, hi = mesh.verts.min(0), mesh.verts.max(0)
    rig: CameraRig = plan_cameras(lo, hi, cameras, rng_cameras)
    views = rig.train + rig.test
    far = 10.0 * (np.linalg.norm(views[0].center - rig.look_at) + rig.radius)

    images, depths, masks = [], [], []
    with tempfile.TemporaryDirectory(prefix="make_scene_") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "depth").mkdir()
        denoised = setup_render(bpy, cameras, render, request.seed, tmp / "depth")
        for cam in views:
            set_camera(bpy, cam, cameras)
            rgba, z = render_view(bpy, tmp)
            mask = rgba[:, :, 3] >= 128
            depth = clean_depth(z, mask, far)
            if noise.enabled:
                depth = add_sensor_noise(depth, noise, rng_noise)
            images.append(composite_over(rgba, render.background))
            depths.append(depth)
            masks.append(mask)

    write_mesh_ply(out / "gt_mesh.ply", mesh)
    manifest = {
        "format": MANIFEST_FORMAT,
        "seed": int(request.seed),
        "command": command,
        "blender_version": bpy.app.version_string,
        "source": built.source,
        "placement_offset": offset.tolist(),
        "render": {**asdict(render), "engine": "CYCLES", "device": "CPU", "cycles_seed": int(request.seed),
                   "denoiser": "OPENIMAGEDENOISE" if denoised else None, "view_transform": "Standard",
                   "film_transparent": True, "mask_alpha_threshold": 0.5},
        "cameras": {**asdict(cameras), "look_at": rig.look_at.tolist(), "bounding_radius": rig.radius},
        "sensor_noise": asdict(noise),
        "materials": built.materials,
        "lighting": lighting,
    }
    return write_scene(
        out, views, images, depths=depths, masks=masks,
        split={"train": [c.name for c in rig.train], "test": [c.name for c in rig.test]},
        program=built.program, gt_params=built.params,
        extras={"background": list(render.background), "gt_mesh": "gt_mesh.ply", "manifest": manifest},
    )


# ---------------------------------------------------------------------------------- shipped scenes

ASSETS = SCENES_DIR
POLYHAVEN = Path(__file__).resolve().parents[3] / "shared" / "data" / "polyhaven"


@dataclass(frozen=True)
class ShippedScene:
    """One shipped scene (splat/scenes/<name>): name, source and seed (the parameters of program scenes are explicit,
    chosen away from the programs' defaults)."""

    name: str
    seed: int
    program: str | None = None
    params: dict | None = None
    mesh_file: str | None = None  # file name in ../shared/data/polyhaven
    cameras: CameraSettings = field(default_factory=CameraSettings)


SHIPPED: tuple[ShippedScene, ...] = (
    ShippedScene("chair", seed=3, program="chair", params={
        "Seat Height": 0.46, "Seat Width": 0.46, "Seat Depth": 0.44, "Seat Thickness": 0.05, "Legs Type": 0,
        "Leg Size": 0.035, "Has Stretchers": True, "Stretcher Height": 0.12, "Has Back": True, "Back Type": 1,
        "Back Height": 0.42, "Back Thickness": 0.025, "Slat Count": 4, "Has Arms": False}),
    ShippedScene("table", seed=4, program="table", params={
        "Width": 1.3, "Depth": 0.8, "Height": 0.74, "Top Thickness": 0.04, "Top Shape": 0, "Legs Type": 1,
        "Leg Size": 0.06, "Leg Inset": 0.06, "Has Shelf": True, "Shelf Height": 0.2}),
    ShippedScene("cabinet", seed=1, program="cabinet", params={
        "Width": 1.0, "Height": 1.2, "Depth": 0.42, "Board Thickness": 0.02, "Has Back": True, "Has Legs": True,
        "Leg Height": 0.12, "Leg Size": 0.04, "Interior": 0, "Shelf Count": 3, "Has Doors": False}),
    ShippedScene("stool", seed=11, mesh_file="painted_wooden_stool_1k.gltf"),
)


def make_shipped(names: list[str] | None = None, root: Path = ASSETS, polyhaven: Path = POLYHAVEN) -> list[Path]:
    """(Re-)make the shipped scenes (all, or those named) under ``root``; returns their transforms.json."""
    known = {s.name: s for s in SHIPPED}
    for n in names or []:
        if n not in known:
            raise SplatError(f"unknown shipped scene {n!r}; have {sorted(known)}", field="--only")
    written = []
    for s in SHIPPED:
        if names and s.name not in names:
            continue
        req = SceneRequest(out=root / s.name, seed=s.seed, program=s.program, params=s.params,
                           mesh_file=None if s.mesh_file is None else polyhaven / s.mesh_file)
        cmd = f"splat make-scene --all --only {s.name}"
        print(f"[make_scene] {s.name} -> {req.out}", flush=True)
        written.append(make_scene(req, cameras=s.cameras, command=cmd))
    return written
