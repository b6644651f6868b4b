"""The browser editor: a viser (>= 1.1) app over an :class:`splat.viewer.session.EditSession`.

What the page shows:

- the world Gaussians as viser's Gaussian-splat scene node (drawn and depth-sorted in the browser), and
  as toggles the program's mesh (the realized geometry at the current values) and the training cameras
  (frustums with their images, when the run's scene is found);
- one control per program parameter (:mod:`splat.viewer.controls`), in one folder per ParamSpace group;
  controls whose ``requires`` are not met are disabled;
- "Reset to fitted", "Random variant" (a sample of the ParamSpace) and, when an exporter is given,
  "Export" into a folder (``splat view`` passes the one ``splat export RUN --set ...`` runs).

Every change of a control re-evaluates the program and pushes the Gaussians forward on the server
(:meth:`EditorApp.request_update`); changes arriving while an update runs are folded into the next one,
so a dragged slider never queues stale work. A value set from Python (``app.controls[name].value = x``)
is applied before the assignment returns (unless an update from the browser is running: that one applies
it when it ends); one outside the parameter's range is clamped to it.

Convention: viser stores splat covariances as float16, whose normal range starts at 6e-5 (a 8 mm
standard deviation in metres). The splat node therefore holds the Gaussians magnified by
:attr:`EditorApp.display_scale` (about 4 units for the object's radius) under a node scale of its
inverse: the browser draws the same world, with covariances in float16's precise range.
"""

from __future__ import annotations

import importlib
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from splat.errors import SplatError
from splat.export.asset import EditableAsset
from splat.render.cameras import bounds_sphere, orbit_distance
from splat.viewer.controls import ParamControl, controls_for, groups, param_value, ui_value
from splat.viewer.session import EditSession, SplatFrame, untrained_values

VIEWER_EXTRA_HINT = "needs the `viewer` extra: pip install -e '.[viewer]'"

ExportFn = Callable[[Mapping[str, Any], Path], Sequence[Path]]
"""``export(params, out_dir) -> files written``: writes an edited, still editable asset folder."""


def require_viser():
    """Return the ``viser`` module, or raise :class:`SplatError` when the `viewer` extra is missing."""
    try:
        return importlib.import_module("viser")
    except ImportError:
        raise SplatError(f"splat view {VIEWER_EXTRA_HINT}") from None


@dataclass(frozen=True)
class ViewerSettings:
    """How the editor serves and what it shows first."""

    host: str = "127.0.0.1"
    """Interface to listen on (127.0.0.1: this machine only)."""
    port: int = 8080
    """Port to listen on; the next free one when taken; 0: any free port."""
    seed: int = 0
    """Seed of the "Random variant" samples."""
    show_mesh: bool = False
    """Show the program's mesh at start."""
    show_cameras: bool = True
    """Show the training cameras at start (when the run's scene is found)."""
    camera_image_size: int = 96
    """Longest side (pixels) of the images shown in the camera frustums."""
    verbose: bool = False
    """Let viser print its log lines (its start banner with the URL prints either way)."""


def _frustum_image(image: np.ndarray, size: int) -> np.ndarray:
    img = np.asarray(image)
    step = max(1, int(math.ceil(max(img.shape[:2]) / max(size, 1))))
    img = img[::step, ::step, :3]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8) if img.dtype.kind == "f" else img.astype(np.uint8)


class EditorApp:
    """A running editor (see the module docstring). Stop it with :meth:`close`.

    Attributes:
        session: the :class:`EditSession` (current values and Gaussians).
        server: the ``viser.ViserServer``.
        specs: the :class:`ParamControl` of each parameter, by name.
        controls: the viser GUI handle of each parameter's control, by name.
        splats: the Gaussian-splat scene node.
        display_scale: the magnification of the splat node's contents (see the module docstring).
        update_seconds: wall time of the last update on the server (program, pushforward, scene node).
        error: the last update error shown on the page (None: none; the clamped controls cannot cause one).
        url: where the page is served.
    """

    def __init__(self, asset: EditableAsset, settings: ViewerSettings = ViewerSettings(), *,
                 cameras: Sequence[Any] = (), images: Sequence[np.ndarray] | None = None,
                 export: ExportFn | None = None, export_dir: Path | None = None):
        viser = require_viser()
        self.settings = settings
        self.session = EditSession(asset)
        space = asset.program.space
        self.specs: dict[str, ParamControl] = {
            c.name: c for c in controls_for(space, asset.params, untrained_values(asset))}
        self._export_fn = export
        self._generator = torch.Generator().manual_seed(settings.seed)
        self._lock = threading.Lock()
        self._dirty = self._busy = self._muted = False
        self.update_seconds = 0.0
        self.error: str | None = None
        frame = self.session.frame
        center, radius = bounds_sphere(frame.centers) if len(frame.centers) else (np.zeros(3), 1.0)
        self.center, self.radius = center, radius
        self.display_scale = float(2.0 ** round(math.log2(4.0 / radius)))
        self.server = viser.ViserServer(host=settings.host, port=settings.port, verbose=settings.verbose)
        try:
            self._build_scene(viser, cameras, images)
            self._build_gui(export_dir)
            self._push(frame)
        except BaseException:
            self.server.stop()
            raise

    # ---- construction -------------------------------------------------------------------------------

    def _build_scene(self, viser: Any, cameras: Sequence[Any], images: Sequence[np.ndarray] | None) -> None:
        scene = self.server.scene
        scene.set_up_direction("+z")
        cam = self.server.initial_camera
        az, el = math.radians(-60.0), math.radians(20.0)
        dist = orbit_distance(self.radius, 50.0, 1, 1, margin=1.5)
        cam.position = tuple(self.center + dist * np.array([math.cos(el) * math.cos(az),
                                                            math.cos(el) * math.sin(az), math.sin(el)]))
        cam.look_at = tuple(self.center)
        cam.up = (0.0, 0.0, 1.0)
        cam.fov = math.radians(50.0)
        k = self.display_scale
        f = self.session.frame
        self.splats = scene.add_gaussian_splats(
            "/gaussians", centers=f.centers * k, covariances=f.covariances * (k * k), rgbs=f.rgbs,
            opacities=f.opacities, scale=1.0 / k)
        self.mesh = None
        self.cameras = None
        if cameras:
            self.cameras = scene.add_frame("/cameras", show_axes=False, visible=self.settings.show_cameras)
            for i, c in enumerate(cameras):
                c2w = np.linalg.inv(np.asarray(c.viewmat, dtype=np.float64))  # OpenCV camera -> world
                fy = float(c.K[1, 1])
                img = None if images is None else _frustum_image(images[i], self.settings.camera_image_size)
                scene.add_camera_frustum(
                    f"/cameras/{i:03d}", fov=2.0 * math.atan(c.height / (2.0 * fy)), aspect=c.width / c.height,
                    scale=0.08 * self.radius, image=img, wxyz=viser.transforms.SO3.from_matrix(c2w[:3, :3]).wxyz,
                    position=c2w[:3, 3], color=(60, 60, 200), thickness=1.5, thickness_units="screen")

    def _build_gui(self, export_dir: Path | None) -> None:
        gui = self.server.gui
        name = self.session.fitted.program.name or "program"
        self.status = gui.add_markdown(f"**{name}**")
        with gui.add_folder("Show"):
            self.show_gaussians = gui.add_checkbox("Gaussians", True, hint="The fitted Gaussians, moved by the edit.")
            self.show_mesh = gui.add_checkbox("Program mesh", self.settings.show_mesh,
                                              hint="The shape program's geometry at the current values.")
            self.show_cameras = gui.add_checkbox(
                "Training cameras", self.cameras is not None and self.settings.show_cameras,
                disabled=self.cameras is None,
                hint="The run's training views." if self.cameras is not None else "The run's scene was not found.")
        self.show_gaussians.on_update(lambda _: setattr(self.splats, "visible", self.show_gaussians.value))
        self.show_mesh.on_update(lambda _: self._draw_mesh())
        if self.cameras is not None:
            self.show_cameras.on_update(lambda _: setattr(self.cameras, "visible", self.show_cameras.value))
        self.controls: dict[str, Any] = {}
        params = self.session.params
        for group, specs in groups(list(self.specs.values())).items():
            with gui.add_folder(group):
                for c in specs:
                    self.controls[c.name] = self._add_control(c, params[c.name])
        with gui.add_folder("Edit"):
            self.reset_button = gui.add_button("Reset to fitted", hint="Every parameter back to its fitted value.")
            self.random_button = gui.add_button("Random variant", hint="A random sample of the parameter space.")
            self.reset_button.on_click(lambda _: self.reset())
            self.random_button.on_click(lambda _: self.random_variant())
            self.export_button = self.export_dir = None
            if self._export_fn is not None:
                default = export_dir or ((self.session.fitted.root or Path(".")) / "edited")
                self.export_dir = gui.add_text("Export folder", str(default))
                self.export_button = gui.add_button(
                    "Export", hint="Write the edit as an asset folder (program, params, Gaussians, splats.ply, "
                                   "mesh.glb), the same as `splat export RUN --set ...`.")
                self.export_button.on_click(lambda _: self._export_clicked())
            self.edit_status = gui.add_markdown("")

    def _add_control(self, c: ParamControl, value: Any) -> Any:
        gui = self.server.gui
        v = ui_value(c, value)
        if c.kind == "slider":
            h = gui.add_slider(c.name, min=float(c.low), max=float(c.high), step=float(c.step), initial_value=v,
                               hint=c.hint)
        elif c.kind == "int_slider":
            h = gui.add_slider(c.name, min=int(c.low), max=int(c.high), step=1, initial_value=v, hint=c.hint)
        elif c.kind == "dropdown":
            h = gui.add_dropdown(c.name, c.options, initial_value=v, hint=c.hint)
        else:
            h = gui.add_checkbox(c.name, v, hint=c.hint)
        h.on_update(lambda _event, c=c: self._on_control(c))
        return h

    # ---- updates ------------------------------------------------------------------------------------

    def _on_control(self, c: ParamControl) -> None:
        if self._muted:
            return
        h = self.controls[c.name]
        try:
            value, clamped = param_value(c, h.value)
        except SplatError:
            value, clamped = self.session.params[c.name], True
        if clamped:  # put the widget on the range (this calls back here with a valid value)
            h.value = ui_value(c, value)
            return
        self.request_update()

    def _control_values(self) -> dict[str, Any]:
        out = {}
        for name, c in self.specs.items():
            try:
                out[name] = param_value(c, self.controls[name].value)[0]
            except SplatError:
                out[name] = self.session.params[name]
        return out

    def request_update(self) -> None:
        """Apply the controls' values (in this thread, unless an update is running: then that one picks
        them up when it ends)."""
        with self._lock:
            self._dirty = True
            if self._busy:
                return
            self._busy = True
        try:
            while True:
                with self._lock:
                    if not self._dirty:
                        self._busy = False
                        return
                    self._dirty = False
                self._apply(self._control_values())
        except BaseException:
            with self._lock:
                self._busy = False
            raise

    def _apply(self, values: Mapping[str, Any]) -> None:
        t0 = time.perf_counter()
        try:
            frame = self.session.update(values)
        except SplatError as err:  # not reachable through the clamped controls; shown, never raised
            self.error = str(err)
            self.status.content = f"**error:** {err}"
            self.set_values(self.session.params, update=False)
            return
        self._push(frame)
        self.update_seconds = time.perf_counter() - t0

    def _push(self, frame: SplatFrame) -> None:
        k = self.display_scale
        self.splats.set_gaussians(frame.centers * k, frame.covariances * (k * k), frame.rgbs, frame.opacities)
        if self.show_mesh.value:
            self._draw_mesh()
        active = self.session.active()
        for name, h in self.controls.items():
            if h.disabled == active[name]:
                h.disabled = not active[name]
        s = self.session
        note = " (new Gaussians placed on untrained primitives)" if s.covered else ""
        self.status.content = (f"**{s.fitted.program.name or 'program'}**: {len(frame.centers):,} Gaussians, "
                               f"update {1000 * s.seconds:.0f} ms{note}")

    def _draw_mesh(self) -> None:
        if not self.show_mesh.value:
            if self.mesh is not None:
                self.mesh.visible = False
            return
        verts, faces = self.session.mesh()
        self.mesh = self.server.scene.add_mesh_simple(
            "/mesh", verts, faces, color=(150, 170, 200), opacity=0.45, side="double", flat_shading=True)

    def set_values(self, values: Mapping[str, Any], *, update: bool = True) -> None:
        """Put parameter values on the controls (all at once), then apply them."""
        self._muted = True
        try:
            for name, v in values.items():
                if name in self.controls:
                    self.controls[name].value = ui_value(self.specs[name], v)
        finally:
            self._muted = False
        if update:
            self.request_update()

    def reset(self) -> None:
        """Every parameter back to its fitted value."""
        self.set_values(self.session.fitted.params)
        self.edit_status.content = "Reset to the fitted values."

    def random_variant(self) -> dict[str, Any]:
        """A random sample of the ParamSpace, applied; returns it."""
        values = self.session.random_values(self._generator)
        self.set_values(values)
        self.edit_status.content = "Random variant."
        return values

    def export(self, out: str | Path | None = None) -> Sequence[Path]:
        """Write the current edit with the exporter (into ``out``, default the "Export folder" field)."""
        if self._export_fn is None:
            raise SplatError("this editor was started without an exporter", field="export")
        target = Path(out if out is not None else self.export_dir.value).expanduser()
        self.edit_status.content = f"Exporting to `{target}` ..."
        try:
            files = self._export_fn(dict(self.session.params), target)
        except SplatError as err:
            self.edit_status.content = f"**export failed:** {err}"
            raise
        self.edit_status.content = f"Exported {len(files)} files to `{target}`."
        return files

    def _export_clicked(self) -> None:
        try:
            self.export()
        except SplatError:
            pass  # shown in the "Edit" folder by export()

    # ---- lifetime -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.server.get_host()}:{self.server.get_port()}"

    def close(self) -> None:
        """Stop the server."""
        self.server.stop()
