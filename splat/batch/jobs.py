"""One training job per scene: names, run folders, state on disk, and the job itself.

A job is a scene with its resolved :class:`splat.config.TrainConfig` (or, when no config could be made
for it, the one-line reason). Its run folder is ``<out>/runs/<scene folder name>/run`` (the trainer's
``<output_dir>/<scene>/<run>`` layout with ``output_dir = <out>/runs``); two scenes whose folders share
a name get ``run-<6 hex digits of their path's hash>`` instead, so every job has its own folder, named
the same on every rerun.

What is on disk says what a job still needs (:func:`job_state`): ``metrics.json`` (the trainer's last
write) means done; ``config.json`` without it means started and killed (resume from its last checkpoint,
or from scratch when it died before the first one); nothing means new. :func:`run_job` reads the state
itself, so it is safe to run twice (a Ray task retried after its worker was lost resumes).

A job never raises: a :class:`splat.errors.SplatError` (a bad scene, a missing program) or any other
exception becomes an error row with a one-line message, so one bad scene does not stop the others.
Rows are :class:`splat.batch.results.JobRow` (schema ``splat.batch/1``, docs/batch.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from splat.batch.results import JobRow
from splat.config import TrainConfig, config_from_dict, config_to_dict
from splat.errors import SplatError
from splat.io import read_json, write_text_atomic
from splat.runs import RunDir, scene_label

RUNS = "runs"
"""Folder of the run folders inside the batch's output folder."""
LOGS = "logs"
"""Folder of the tracebacks of unexpected errors (bugs), one ``<job>.txt`` each."""

JobState = Literal["done", "partial", "new"]


@dataclass(frozen=True)
class BatchJob:
    """One scene of a batch.

    ``name`` is unique within the batch (the scene folder's name, plus a hash of its path when two
    scenes share it); ``scene`` is the scene as given (a shipped name or a path); ``config`` is the
    resolved config the job trains (``output_dir``, ``run``, ``threads`` set by the batch), or None when
    none could be made, ``error`` then saying why in one line.
    """

    name: str
    scene: str
    config: TrainConfig | None
    error: str = ""

    @property
    def run_dir(self) -> Path | None:
        """The job's run folder (None for a job without a config)."""
        if self.config is None:
            return None
        return Path(self.config.output_dir) / scene_label(self.config.scene) / self.config.run

    def to_payload(self) -> dict[str, Any]:
        """A plain JSON-able dict (what worker processes and Ray tasks receive; also batch.json's entry)."""
        return {"job": self.name, "scene": self.scene,
                "run": None if self.run_dir is None else str(self.run_dir),
                "config": None if self.config is None else config_to_dict(self.config),
                "error": self.error or None}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> "BatchJob":
        config = None if data["config"] is None else config_from_dict(TrainConfig, data["config"])
        return cls(data["job"], data["scene"], config, data["error"] or "")


def one_line(message: str) -> str:
    """``message`` on one line (a row's error field, a progress line)."""
    return " ".join(str(message).split())


def job_names(scenes: Sequence[str]) -> list[str]:
    """A unique, stable name per scene: its folder's name, or ``<name>-<hash>`` when several share it.

    The hash (6 hex digits of SHA-1) is of the scene as given, so a rerun with the same list gets the
    same names (and finds its run folders) whatever the order.
    """
    labels = [scene_label(s) for s in scenes]
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    names = [label if counts[label] == 1 else f"{label}-{_digest(s)}" for s, label in zip(scenes, labels)]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise SplatError(f"scenes listed twice: {', '.join(dup)}", field="scenes")
    return names


def _digest(scene: str) -> str:
    return hashlib.sha1(scene.encode("utf-8")).hexdigest()[:6]


def make_jobs(scenes: Sequence[str], configs: Sequence[TrainConfig | str], out: str | os.PathLike, *,
              threads: int, program: str = "") -> list[BatchJob]:
    """The batch's jobs: ``configs[i]`` is scene i's config (preset + train options), or the one-line
    reason none could be made (the job is then an error row and never runs).

    Each config gets ``output_dir = <out>/runs`` (absolute), its run name, ``threads`` and, when given,
    ``program``; ``resume`` is decided per job when it runs (:func:`run_job`).
    """
    if len(scenes) != len(configs):
        raise ValueError("one config (or error) per scene")
    if threads < 1:
        raise SplatError(f"must be >= 1, got {threads}", field="--threads")
    runs = Path(os.path.abspath(out)) / RUNS
    names = job_names(scenes)
    labels = [scene_label(s) for s in scenes]
    jobs = []
    for scene, cfg, name, label in zip(scenes, configs, names, labels):
        if isinstance(cfg, str):
            jobs.append(BatchJob(name, scene, None, one_line(cfg)))
            continue
        run = "run" if name == label else f"run-{name[len(label) + 1:]}"
        cfg = dataclasses.replace(cfg, output_dir=runs, run=run, threads=threads, resume=False,
                                  program=program or cfg.program)
        jobs.append(BatchJob(name, scene, cfg))
    return jobs


def read_scene_list(path: str | os.PathLike) -> list[str]:
    """Scenes of a list file: one per line (a shipped name or a folder); blank lines and ``#`` comments
    are skipped. A relative folder is taken relative to the list file when it exists there, else as
    given (relative to the working directory, or a shipped name)."""
    path = Path(path)
    if not path.is_file():
        raise SplatError("no such scene list file", file=path, field="--list")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SplatError(f"cannot read: {err}", file=path, field="--list") from None
    scenes = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        beside = path.parent / entry
        scenes.append(os.path.abspath(beside) if not Path(entry).is_absolute() and beside.is_dir() else entry)
    return scenes


def job_state(job: BatchJob) -> JobState:
    """``done`` (metrics.json written), ``partial`` (config.json only: killed midway) or ``new``."""
    rd = job.run_dir
    if rd is None:
        return "new"
    run = RunDir(rd)
    if run.metrics.is_file():
        return "done"
    if run.config.is_file():
        return "partial"
    return "new"


def done_row(job: BatchJob, *, seconds: float | None = None, skipped: bool = True,
             resumed_from: int | None = None) -> JobRow:
    """The row of a job whose run folder holds its metrics.json."""
    metrics = read_json(RunDir(job.run_dir).metrics)
    return JobRow(job.name, job.scene, "ok", program=metrics.get("program"), run=str(job.run_dir),
                  skipped=skipped, resumed_from=resumed_from, seconds=seconds, metrics=metrics)


def error_row(job: BatchJob, message: str, *, seconds: float | None = None,
              resumed_from: int | None = None) -> JobRow:
    """The row of a job that failed (message on one line)."""
    program = None if job.config is None else (job.config.program or None)
    return JobRow(job.name, job.scene, "error", program=program,
                  run=None if job.run_dir is None else str(job.run_dir), resumed_from=resumed_from,
                  seconds=seconds, error=one_line(message))


def run_job(job: BatchJob) -> JobRow:
    """Train one job (or resume it, or skip it when done) and return its row; never raises.

    A SplatError is the scene's fault (its message is the row's); any other exception is a bug: its
    message goes in the row as ``<Type>: <message>`` and its traceback to ``<out>/logs/<job>.txt``.
    """
    t0 = time.perf_counter()
    if job.config is None:
        return error_row(job, job.error)
    cfg, resumed_from = job.config, None
    try:
        state = job_state(job)
        if state == "done":  # finished by an earlier batch (or by this task's lost first attempt)
            return done_row(job)
        if state == "partial":
            from splat.runs import load_checkpoint

            cfg = dataclasses.replace(cfg, resume=True)
            ckpt = load_checkpoint(RunDir(job.run_dir).checkpoints)
            resumed_from = None if ckpt is None else int(ckpt["step"])
        from splat.train import train

        train(cfg)
        return done_row(job, seconds=time.perf_counter() - t0, skipped=False, resumed_from=resumed_from)
    except SplatError as err:
        return error_row(job, str(err), seconds=time.perf_counter() - t0, resumed_from=resumed_from)
    except Exception as err:  # a bug: isolated to this job, its traceback kept
        log = Path(job.config.output_dir).parent / LOGS / f"{job.name}.txt"
        try:
            write_text_atomic(log, traceback.format_exc())
            where = f" (traceback: {log})"
        except OSError:
            where = ""
        return error_row(job, f"{type(err).__name__}: {err}{where}", seconds=time.perf_counter() - t0,
                         resumed_from=resumed_from)


def run_job_payload(payload: dict[str, Any]) -> JobRow:
    """:func:`run_job` on :meth:`BatchJob.to_payload`'s dict (the entry point of workers and Ray tasks)."""
    return run_job(BatchJob.from_payload(payload))
