"""The ``splat`` command: one console entry point, one subcommand per task, all parsed by tyro.

    splat train --scene chair            fit a program + Gaussians to a scene (python train.py is the same)
    splat render RUN                     orbit video, held-out views, edits (python render.py is the same)
    splat export RUN                     editable assets, 3DGS PLY, GLB, .blend
    splat evaluate RUN                   held-out metrics of a run
    splat search --program chair ...     structure search of a program against a scan
    splat data SCENE                     check and summarise a scene folder, fuse its depth
    splat make-scene ...                 render a ground-truth scene with Blender Cycles
    splat blender import|export ...      .blend programs in and out
    splat programs [sample NAME]         the program library and its parameters; random variants of a program
    splat build                          build the C++ kernels now (otherwise: on first use)

Each subcommand lives in its own module here (``splat.commands.<name>``) with ``main(argv)``; the
dispatcher imports only the one asked for, so ``splat render`` never pays for Blender or the trainer.
Errors follow :func:`splat.cli.run_cli`: one ``error:`` line, exit status 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from splat.errors import SplatError

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("splat.commands.train", "fit a shape program and its Gaussians to a scene"),
    "render": ("splat.commands.render", "render, edit and sweep a trained run (orbit video, held-out views)"),
    "export": ("splat.commands.export", "write a run's editable assets: program/params JSON, 3DGS PLY, GLB, .blend"),
    "evaluate": ("splat.commands.evaluate", "held-out PSNR/SSIM, geometry and parameter errors of a run"),
    "search": ("splat.commands.search", "structure search of a shape program against a scan"),
    "data": ("splat.commands.data", "check and summarise a scene folder; fuse its depth maps"),
    "import": ("splat.commands.import_", "import an RGB-D capture (tum, scannet, nerfstudio) as a scene: floor, object, masks"),
    "make-scene": ("splat.commands.make_scene", "render a ground-truth scene with Blender Cycles (blender extra)"),
    "blender": ("splat.commands.blender", "import a .blend program / export a program to .blend (blender extra)"),
    "batch": ("splat.commands.batch", "train many scenes at once: local process pool or Ray (cluster extra)"),
    "programs": ("splat.commands.programs", "the program library: parameter catalogues (table/JSON), random variants"),
    "build": ("splat.commands.build", "build the C++ kernels now instead of on first use"),
    "view": ("splat.commands.view", "edit a run in the browser: a control per parameter, live Gaussians (viewer extra)"),
}
"""Subcommand -> (module with ``main(argv)``, one-line help)."""


def usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: splat COMMAND [options]   (splat COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {n:<{width}}  {h}" for n, (_, h) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Any:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return None
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        raise SplatError(f"unknown command {name!r} (commands: {', '.join(COMMANDS)})", field="command")
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest)


def console() -> None:
    """``[project.scripts] splat``."""
    from splat.cli import run_cli

    run_cli(main)
