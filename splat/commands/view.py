"""``splat view RUN``: edit a trained run in the browser (a viser app; needs the ``viewer`` extra).

Starts a viser server on 127.0.0.1 (``--port``, default 8080; the next free port when taken) and prints
its URL. The page shows the run's Gaussians, with the program's mesh and the training cameras as
toggles, and one control per program parameter, grouped as the program's ParamSpace groups them:
floats as sliders over their ranges, enums as dropdowns, other ints as integer sliders, bools as
checkboxes (disabled while their ``requires`` are not met). Every change re-evaluates the program and
moves the Gaussians with their primitives (primitives the run never trained get new Gaussians, as
``render.py --set`` does). "Reset to fitted", "Random variant", and "Export", which writes the edit as
``splat export RUN --set ...`` would (default ``<run>/edited``). Ctrl-C stops it.

RUN is a run folder, its ``assets/`` folder or a checkpoint, as for ``splat render``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import tyro

from splat.commands.export import ExportConfig, Format, export
from splat.errors import SplatError


@dataclass(frozen=True)
class ViewConfig:
    """``splat view RUN``: edit a trained run in the browser."""

    run: tyro.conf.Positional[Path]
    """Run folder (outputs/<scene>/<run>), its assets/ folder, or a checkpoint."""
    port: int = 8080
    """Port of the page (the next free one when taken; 0: any free port)."""
    host: str = "127.0.0.1"
    """Interface to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface)."""
    scene: Optional[Path] = None
    """Scene folder for the training cameras. Default: the scene named in the run's config.json."""
    mesh: bool = False
    """Show the program's mesh at start."""
    cameras: bool = True
    """Show the training cameras at start."""
    seed: int = 0
    """Seed of the "Random variant" samples."""
    export_formats: tuple[Format, ...] = ("assets", "ply", "glb", "blend")
    """What "Export" writes (as splat export --formats)."""
    threads: int = 1
    """Torch threads for the updates (1 is fastest on a shared machine; 0: torch's default)."""


def exporter(run: Path, fitted: Mapping[str, Any], formats: Sequence[str]):
    """The editor's "Export": ``splat export RUN --set NAME=VALUE ... --out OUT`` with every value that
    differs from the fitted one, so the folder is exactly what that command writes."""

    def write(params: Mapping[str, Any], out: Path) -> tuple[Path, ...]:
        sets = tuple(f"{name}={_text(v)}" for name, v in params.items() if v != fitted.get(name))
        return export(ExportConfig(run=run, out=Path(out), set=sets, formats=tuple(formats))).files

    return write


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(float(value)) if isinstance(value, float) else str(value)


def start(cfg: ViewConfig):
    """Load the run and start the editor (not blocking); returns the :class:`splat.viewer.EditorApp`."""
    from splat.viewer import EditorApp, ViewerSettings, require_viser

    if not 0 <= cfg.port <= 65535:
        raise SplatError(f"must be in [0, 65535], got {cfg.port}", field="--port")
    if not cfg.export_formats:
        raise SplatError("give at least one format", field="--export-formats")
    require_viser()
    from splat.workspace import load_run

    asset = load_run(cfg.run)
    cameras, images = _train_views(asset, cfg.scene)
    settings = ViewerSettings(host=cfg.host, port=cfg.port, seed=cfg.seed, show_mesh=cfg.mesh,
                              show_cameras=cfg.cameras)
    return EditorApp(asset, settings, cameras=cameras, images=images,
                     export=exporter(cfg.run, asset.params, cfg.export_formats))


def _train_views(asset: Any, scene: Optional[Path]) -> tuple[tuple, Optional[list]]:
    """The training cameras and images of the run's scene; none (with a note) when it is not found."""
    from splat.data import load_scene
    from splat.workspace import run_scene_dir

    folder = run_scene_dir(asset, scene, required=False)
    if folder is None:
        print("note: the run's scene was not found (pass --scene); no training cameras shown")
        return (), None
    try:
        sc = load_scene(folder)
    except SplatError as err:
        if scene is not None:
            raise
        print(f"note: the run's scene could not be read ({err}); no training cameras shown")
        return (), None
    idx = sc.train_indices
    return tuple(sc.cameras[i] for i in idx), [sc.images[i] for i in idx]


def main(argv: Optional[list[str]] = None) -> None:
    cfg = tyro.cli(ViewConfig, args=argv, prog="splat view", description=__doc__.split("\n\n")[0])
    if cfg.threads < 0:
        raise SplatError(f"must be >= 0, got {cfg.threads}", field="--threads")
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    app = start(cfg)
    print(f"splat view: {app.url}  (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
