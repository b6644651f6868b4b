"""``splat batch SCENE... --out DIR``: one training job per scene, on a local process pool or on Ray.

Batch options and scenes come first; the first option that is not a batch option (or everything after
``--``) starts the train options, applied to every scene over its preset as ``splat train`` applies them
(``splat batch chair table --out runs --workers 2 --optim.steps 500``). Writes DIR/results.jsonl and
DIR/results.md (one row per scene, with its metrics), DIR/batch.json (every resolved config) and a run
folder per scene under DIR/runs/. A rerun skips finished scenes and resumes killed ones. Exit status: the
number of scenes that failed (0: all ok; at most 100); a usage error is one error: line and status 2.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from splat.errors import SplatError

MAX_EXIT = 100
"""The exit status is the number of failed scenes, capped here."""


@dataclass(frozen=True)
class BatchArgs:
    """``splat batch``'s own options (train options follow them, see the module docstring)."""

    out: Annotated[Path, tyro.conf.arg(metavar="DIR")]
    """Output folder: results.jsonl, results.md, batch.json, runs/<scene>/run/. On a Ray cluster, a path
    every node sees."""
    scenes: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="SCENE")] = ()
    """Scenes: shipped names (chair, table, cabinet, stool) or scene folders."""
    list: Annotated[Path | None, tyro.conf.arg(metavar="FILE")] = None
    """A file of scenes, one per line (# comments); relative folders are taken beside the file."""
    engine: Literal["local", "ray"] = "local"
    """local: a process pool on this machine; ray: one Ray task per scene (the `cluster` extra)."""
    workers: int = 0
    """Scenes trained at once. 0: local, cores // threads; ray, as many as the cluster's CPUs allow."""
    threads: int = 1
    """torch and C++ kernel threads per scene (a Ray task asks for this many CPUs)."""
    program: str = ""
    """Shape program for every scene (a library name or a graph JSON path); empty: each scene's own.
    "auto" (automatic program choice) is not built yet."""
    address: str = ""
    """Ray: the cluster to connect to (e.g. ray://head:10001 or auto); empty: RAY_ADDRESS, else a local Ray."""
    retries: int = 3
    """Ray: re-runs of a scene whose worker or node was lost (it resumes from its checkpoint)."""


OWNED = {"--scene": "give scenes as SCENE... or --list", "--output-dir": "use --out",
         "--run": "the batch names the run folders", "--resume": "a rerun resumes by itself",
         "--no-resume": "a rerun resumes by itself", "--threads": "use the batch's --threads before them",
         "--program": "use the batch's --program before them"}
"""Train options the batch sets itself -> what to do instead."""


def _own_options() -> set[str]:
    names = {"-h", "--help"}
    for f in dataclasses.fields(BatchArgs):
        if f.name != "scenes":
            names.add("--" + f.name.replace("_", "-"))
    return names


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(batch options and scenes, train options): split at ``--``, else at the first option that is not
    the batch's own."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    own = _own_options()
    for i, arg in enumerate(argv):
        if arg.startswith("-") and arg.split("=", 1)[0] not in own:
            return argv[:i], argv[i:]
    return argv, []


def check_train_args(train_args: list[str]) -> None:
    for arg in train_args:
        name = arg.split("=", 1)[0].replace("_", "-")
        if name in OWNED:
            raise SplatError(f"set by splat batch: {OWNED[name]}", field=name)


def scene_configs(scenes: list[str], train_args: list[str], prog: str = "splat batch") -> list[Any]:
    """Per scene: its preset (a registered name) or the default config (any other scene folder, shipped
    or not) with the train options applied, validated; or, when the scene cannot be found, the one-line
    reason (the batch makes it an error row). Train options are parsed once per distinct preset."""
    from splat.commands.train import _option_of
    from splat.config import TrainConfig, validate_config
    from splat.presets import PRESETS, preset
    from splat.workspace import scene_dir

    progress_given = any(a.split("=", 1)[0] in ("--log.progress", "--log.no-progress") for a in train_args)
    parsed: dict[str, TrainConfig] = {}
    out: list[Any] = []
    for scene in scenes:
        if scene in PRESETS:
            key, base = scene, preset(scene)
        else:
            try:
                folder = scene_dir(scene)
            except SplatError as err:
                out.append(str(err))
                continue
            key, base = "", TrainConfig(scene=scene)
            # a folder given by path is stored absolute (workers elsewhere, reruns from another folder)
            resolved = os.path.abspath(folder) if Path(scene).is_dir() else scene
            base = dataclasses.replace(base, scene=resolved)
        if key not in parsed:
            default = base
            if not progress_given:  # the batch prints its own progress; bars of parallel jobs would mix
                default = dataclasses.replace(base, log=dataclasses.replace(base.log, progress=False))
            try:
                parsed[key] = tyro.cli(TrainConfig, default=default, args=train_args, prog=f"{prog} ... --",
                                       description="train options, applied to every scene over its preset")
            except SplatError as err:
                raise SplatError(err.message, file=err.file, field=_option_of(err.field)) from None
        cfg = dataclasses.replace(parsed[key], scene=base.scene)
        out.append(validate_config(cfg))
    return out


def main(argv: list[str] | None = None) -> Any:
    from splat.batch import EngineSettings, make_jobs, read_scene_list, run_batch

    argv = list(sys.argv[1:] if argv is None else argv)
    own, train_args = split_argv(argv)
    if any(a in ("-h", "--help") for a in train_args):  # `splat batch -- --help`: the train options
        from splat.config import TrainConfig

        return tyro.cli(TrainConfig, args=["--help"], prog="splat batch ... --",
                        description="train options, applied to every scene over its preset")
    args = tyro.cli(BatchArgs, args=own, prog="splat batch", description=__doc__.split("\n\n")[0])
    if args.program == "auto":
        raise SplatError("automatic program choice is not built yet; pass a program name or path",
                         field="--program auto")
    if args.program:
        from splat.program import load_program

        try:
            load_program(args.program)
        except SplatError as err:
            raise SplatError(err.message, file=err.file, field="--program") from None
    settings = EngineSettings(args.engine, args.workers, args.threads, args.address, args.retries)
    settings.validate()
    if args.engine == "ray" and importlib.util.find_spec("ray") is None:
        raise SplatError("needs Ray: pip install 'splat[cluster]' (ray>=2.60)", field="--engine ray")
    check_train_args(train_args)
    scenes = list(args.scenes) + (read_scene_list(args.list) if args.list is not None else [])
    if not scenes:
        raise SplatError("no scenes: give SCENE... or --list FILE", field="scenes")
    program = os.path.abspath(args.program) if args.program and Path(args.program).is_file() else args.program
    jobs = make_jobs(scenes, scene_configs(scenes, train_args), args.out, threads=args.threads, program=program)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_batch(jobs, args.out, settings, progress=progress)
    print((Path(args.out) / "results.md").read_text(encoding="utf-8"), end="")
    if result.failed:
        raise SystemExit(min(result.failed, MAX_EXIT))
    return result
