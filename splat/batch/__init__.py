"""Many scenes at once: one training job per scene, on a local process pool or on Ray.

:func:`run_batch` takes the jobs (:func:`make_jobs`: a resolved :class:`splat.config.TrainConfig` per
scene, or the reason none could be made) and an output folder, and leaves there::

    batch.json        the batch's settings and every job's resolved config (written before any job runs)
    results.jsonl     one row per job (schema splat.batch/1, docs/batch.md), rewritten as jobs finish
    results.md        the same as a markdown table
    runs/<scene>/run/ each job's run folder (the trainer's layout: config.json, checkpoints/, metrics.json)
    logs/<job>.txt    the traceback of an unexpected error (a bug), when there was one

Resumable: a job whose run folder holds metrics.json is done and skipped (its row is rebuilt from it); a
job killed midway resumes from its last checkpoint. Failure isolated: a job that fails (a SplatError, any
exception, its worker process dying) is an error row with a one-line message; the others go on.

Engines: ``local`` (:func:`splat.batch.local.run_local`, the default: ``workers`` processes, one fresh
process per job) and ``ray`` (:func:`splat.batch.ray_engine.run_ray`: one Ray task per job with
``num_cpus = threads``; Ray is imported only then). Each job runs with ``threads`` torch threads, which
the C++ kernels follow. The ``splat batch`` command (:mod:`splat.commands.batch`) builds the jobs from
scene names and train options.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

from splat.batch.jobs import (
    BatchJob,
    done_row,
    error_row,
    job_names,
    job_state,
    make_jobs,
    read_scene_list,
    run_job,
)
from splat.batch.results import JobRow, Progress, format_markdown, read_rows, write_results
from splat.errors import SplatError
from splat.io import write_json_atomic

__all__ = ["BatchJob", "BatchResult", "EngineSettings", "JobRow", "format_markdown", "job_names", "job_state",
           "make_jobs", "read_scene_list", "run_batch", "run_job"]

BATCH_JSON = "batch.json"


@dataclass(frozen=True)
class EngineSettings:
    """Where and how the jobs run."""

    engine: Literal["local", "ray"] = "local"
    """``local``: a process pool on this machine; ``ray``: one Ray task per job."""
    workers: int = 0
    """Jobs at once. 0: local, the machine's cores // threads; ray, as many as the cluster's CPUs allow."""
    threads: int = 1
    """torch (and C++ kernel) threads per job; a Ray task asks for this many CPUs."""
    address: str = ""
    """Ray only: the cluster to connect to ("" : RAY_ADDRESS, else a local Ray started for the batch)."""
    retries: int = 3
    """Ray only: re-runs of a task whose worker or node was lost (it resumes from its checkpoint)."""

    def validate(self) -> None:
        if self.engine not in ("local", "ray"):
            raise SplatError(f"must be local or ray, got {self.engine!r}", field="--engine")
        if self.workers < 0:
            raise SplatError(f"must be >= 0, got {self.workers}", field="--workers")
        if self.threads < 1:
            raise SplatError(f"must be >= 1, got {self.threads}", field="--threads")
        if self.retries < 0:
            raise SplatError(f"must be >= 0, got {self.retries}", field="--retries")
        if self.engine != "ray" and self.address:
            raise SplatError("is for --engine ray", field="--address")

    def local_workers(self) -> int:
        return self.workers or max(1, (os.cpu_count() or 1) // self.threads)


@dataclass(frozen=True)
class BatchResult:
    """What a batch produced: ``rows`` in job order, ``failed`` = error rows, ``seconds`` = the batch's
    wall time."""

    rows: tuple[JobRow, ...]
    failed: int
    seconds: float


def run_batch(jobs: Sequence[BatchJob], out: str | os.PathLike, settings: EngineSettings = EngineSettings(), *,
              progress: Callable[[str], None] | None = None) -> BatchResult:
    """Run every job not done yet and write the results table; see the module docstring.

    ``progress`` receives one line when the batch starts and one per finished job (done/total,
    failures, elapsed, ETA).
    """
    settings.validate()
    t0 = time.perf_counter()
    out = Path(os.path.abspath(out))
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / BATCH_JSON, {
        "format": "splat.batch/1", "engine": settings.engine, "workers": settings.workers,
        "threads": settings.threads, "jobs": [job.to_payload() for job in jobs]})
    earlier = read_rows(out / "results.jsonl")
    rows: dict[str, JobRow] = {}
    tracker = Progress(len(jobs), progress)
    order = {job.name: i for i, job in enumerate(jobs)}

    def in_order() -> list[JobRow]:
        return sorted(rows.values(), key=lambda r: order[r.job])

    def finish(row: JobRow, ran: bool = True, write: bool = True) -> None:
        rows[row.job] = row
        tracker.update(row, ran=ran)
        if write:
            write_results(out, in_order(), total=len(jobs))

    settled, to_run = [], []
    for job in jobs:
        if job.config is None:
            settled.append(error_row(job, job.error))
        elif job_state(job) == "done":
            try:
                before = earlier.get(job.name)
                settled.append(done_row(job, seconds=None if before is None else before.seconds))
            except SplatError as err:
                settled.append(error_row(job, str(err)))
        else:
            to_run.append(job)
    if progress is not None:
        workers = settings.local_workers() if settings.engine == "local" else (settings.workers or "cluster")
        threads = f"{settings.threads} thread" + ("s" if settings.threads != 1 else "")
        progress(f"batch: {len(jobs)} scenes, {len(settled)} done earlier or unusable, {len(to_run)} to run "
                 f"on {settings.engine} ({workers} workers x {threads}) -> {out}")
    for row in settled:
        finish(row, ran=False, write=False)
    write_results(out, in_order(), total=len(jobs))
    if to_run:
        if settings.engine == "local":
            from splat.batch.local import run_local

            run_local(to_run, workers=settings.local_workers(), threads=settings.threads, on_row=finish)
        else:
            from splat.batch.ray_engine import run_ray

            run_ray(to_run, workers=settings.workers, threads=settings.threads, address=settings.address,
                    retries=settings.retries, on_row=finish)
    seconds = time.perf_counter() - t0
    final = tuple(in_order())
    write_results(out, final, total=len(jobs), seconds=seconds)
    return BatchResult(final, sum(not r.ok for r in final), seconds)
