"""The Ray engine: one Ray task per job, ``num_cpus = threads``, retried when its worker is lost.

Ray (the ``cluster`` extra, ``ray>=2.60``) is imported only here, only when ``--engine ray`` runs.
Where it runs: an already connected Ray (``ray.is_initialized()``, e.g. a test's
``ray.init(num_cpus=2)``) is used as it is and left running; otherwise ``address`` (``--address``) or
``RAY_ADDRESS`` names an existing cluster to connect to, and without either a local Ray starts here
(``ray.init()``, with ``num_cpus = workers * threads`` when ``workers`` is set) and stops at the end.

Each task runs with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` = ``threads``
(a task-level ``runtime_env`` ``env_vars``, merged with the job's) and its config's ``threads``, as in
the local engine. Unlike the local engine, Ray reuses a worker process for the next task (its default:
no second start-up and import of torch per scene); a job leaves no state behind that changes the next
one's results (the trainer restores torch's thread count; tests/test_batch.py compares the engines).

A task lost with its worker or node (crash, OOM kill, preemption) is re-run up to ``retries`` times by
Ray (``max_retries``; application exceptions are never retried: :func:`splat.batch.jobs.run_job`
returns them as error rows). The re-run finds the job's run folder and resumes from its last
checkpoint, so the output folder must be one path that every node sees (a shared filesystem), and every
scene path too (shipped scene names resolve on each node from its installed ``splat``).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from splat.batch.jobs import BatchJob, error_row, one_line, run_job_payload
from splat.batch.results import JobRow
from splat.batch.local import THREAD_VARS
from splat.errors import SplatError


def run_ray(jobs: Sequence[BatchJob], *, workers: int, threads: int, address: str = "", retries: int = 3,
            on_row: Callable[[JobRow], None]) -> None:
    """Run ``jobs`` as Ray tasks (at most ``workers`` in flight when > 0); ``on_row`` per finished row."""
    try:
        import ray
    except ImportError:
        raise SplatError("needs Ray: pip install 'splat[cluster]' (ray>=2.60)", field="--engine ray") from None

    started = False
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS", "")
        if target:
            try:
                ray.init(address=target)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise SplatError(f"cannot connect to the Ray cluster at {target!r}: {one_line(str(err))[:300]}",
                                 field="--address" if address else "RAY_ADDRESS") from None
        else:
            ray.init(num_cpus=workers * threads if workers else None, include_dashboard=False)
        started = True
    # the thread variables the local engine sets too (Ray itself sets only OMP_NUM_THREADS = num_cpus)
    env = {name: str(threads) for name in THREAD_VARS}
    task = ray.remote(num_cpus=threads, max_retries=retries, retry_exceptions=False,
                      runtime_env={"env_vars": env})(run_job_payload)
    pending = list(jobs)
    pending.reverse()
    in_flight: dict[Any, BatchJob] = {}
    limit = workers if workers > 0 else len(jobs)
    try:
        while pending or in_flight:
            while pending and len(in_flight) < max(1, limit):
                job = pending.pop()
                in_flight[task.remote(job.to_payload())] = job
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                job = in_flight.pop(ref)
                try:
                    row = ray.get(ref)
                except ray.exceptions.RayError as err:  # lost more often than `retries`, or cancelled
                    row = error_row(job, f"ray: {type(err).__name__}: {one_line(str(err))[:300]}")
                on_row(row)
    finally:
        if in_flight:
            for ref in in_flight:
                ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
