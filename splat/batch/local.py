"""The local engine: a pool of ``workers`` worker processes on this machine, one fresh process per job.

A fresh process per job (spawned, not forked: the parent may hold torch's thread pools) gives each job
its own thread settings and memory, and confines a crash (a segfault, the kernel's OOM killer) to its
own job: a worker that dies without sending its row becomes an error row, and the pool goes on. Each
process runs with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` = ``threads``
(read when the libraries load) and the job's config has ``threads`` (the trainer sets
``torch.set_num_threads``, which the C++ kernels read through ``torch.get_num_threads()``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
from collections import deque
from typing import Any, Callable, Iterator, Sequence

from splat.batch.jobs import BatchJob, error_row
from splat.batch.results import JobRow

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _child(payload: dict[str, Any], conn: multiprocessing.connection.Connection) -> None:
    from splat.batch.jobs import run_job_payload

    row = run_job_payload(payload)
    conn.send(row)
    conn.close()


@contextlib.contextmanager
def _thread_env(threads: int) -> Iterator[None]:
    """Set the thread variables while a child is spawned (it copies the environment), then restore."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: str(threads) for k in THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Running:
    def __init__(self, job: BatchJob, process: Any, conn: multiprocessing.connection.Connection):
        self.job, self.process, self.conn = job, process, conn
        self.row: JobRow | None = None
        self.conn_open = True


def run_local(jobs: Sequence[BatchJob], *, workers: int, threads: int,
              on_row: Callable[[JobRow], None]) -> None:
    """Run ``jobs`` on ``workers`` processes at a time; call ``on_row`` with each row as it finishes.

    On an exception in the parent (Ctrl-C included) the running workers are terminated; their run
    folders keep their last checkpoints, so a rerun resumes them.
    """
    ctx = multiprocessing.get_context("spawn")
    pending = deque(jobs)
    running: list[_Running] = []
    try:
        while pending or running:
            while pending and len(running) < max(1, workers):
                job = pending.popleft()
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(job.to_payload(), send), name=f"splat-batch:{job.name}")
                with _thread_env(threads):
                    proc.start()
                send.close()
                running.append(_Running(job, proc, recv))
            waitables = [r.process.sentinel for r in running] + [r.conn for r in running if r.conn_open]
            ready = set(multiprocessing.connection.wait(waitables))
            for r in list(running):
                if r.conn_open and r.conn in ready:
                    _receive(r)  # before the sentinel: a large row must be read for the child to exit
                if r.process.sentinel in ready:
                    r.process.join()
                    if r.conn_open:
                        _receive(r)
                    r.conn.close()
                    running.remove(r)
                    on_row(r.row if r.row is not None else error_row(
                        r.job, f"worker process died (exit status {r.process.exitcode}) before it "
                               f"reported; rerun the batch to resume from the last checkpoint"))
    finally:
        for r in running:
            r.process.terminate()
        for r in running:
            r.process.join()
            r.conn.close()


def _receive(r: _Running) -> None:
    try:
        if r.conn.poll():
            r.row = r.conn.recv()
            r.conn_open = False
    except (EOFError, OSError):
        r.conn_open = False
