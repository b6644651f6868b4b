"""The batch's results: one :class:`JobRow` per job, ``results.jsonl`` + ``results.md``, progress lines.

``results.jsonl`` holds one row per job in the batch's order (schema ``splat.batch/1``, docs/batch.md):
the job, its scene and run folder, ``status`` ``ok`` or ``error``, the one-line error, whether it was
skipped (done by an earlier batch) or resumed (from which checkpoint step), its wall time and the run's
whole evaluation report (``metrics``: the run's metrics.json, schema ``splat.eval/1``,
docs/evaluation.md). Both files are rewritten atomically each time a job finishes, so a batch killed
midway leaves the rows it had.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from splat.io import write_text_atomic

ROW_FORMAT = "splat.batch/1"
RESULTS_JSONL = "results.jsonl"
RESULTS_MD = "results.md"


@dataclass(frozen=True)
class JobRow:
    """One job's line of the results table (a JSON object of ``results.jsonl``, schema splat.batch/1)."""

    job: str
    """The job's name, unique in the batch."""
    scene: str
    """The scene as given (a folder given by path made absolute)."""
    status: Literal["ok", "error"]
    program: str | None = None
    """The program fitted (from the metrics), or the one configured; None when unknown."""
    run: str | None = None
    """The run folder, absolute; None when no config could be made."""
    skipped: bool = False
    """Done by an earlier batch, not run now."""
    resumed_from: int | None = None
    """The checkpoint step the job resumed from (a job killed midway), else None."""
    seconds: float | None = None
    """The job's wall time in the batch that ran it (kept for a skipped job when known)."""
    error: str | None = None
    """The one-line error of a failed job."""
    metrics: dict[str, Any] | None = None
    """The run's metrics.json (a ``splat.eval/1`` report, docs/evaluation.md); None for an error."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def metric(self, *keys: str) -> Any:
        """A value of the metrics by its key path (``row.metric("test", "psnr")``), None when absent."""
        value: Any = self.metrics
        for key in keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    def as_dict(self) -> dict[str, Any]:
        return {"format": ROW_FORMAT, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobRow":
        """A row read back (unknown keys ignored; a missing ``job``/``scene``/``status`` is a KeyError)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def read_rows(path: str | os.PathLike) -> dict[str, JobRow]:
    """Rows of an earlier results.jsonl by job name ({} when missing; unreadable lines are skipped)."""
    path = Path(path)
    rows: dict[str, JobRow] = {}
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = JobRow.from_dict(json.loads(line))
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError):
            continue
        rows[row.job] = row
    return rows


def write_results(out: str | os.PathLike, rows: Sequence[JobRow], *, total: int,
                  seconds: float | None = None) -> None:
    """Write ``<out>/results.jsonl`` and ``<out>/results.md`` (atomically) from the rows so far."""
    out = Path(out)
    write_text_atomic(out / RESULTS_JSONL, "".join(json.dumps(r.as_dict()) + "\n" for r in rows))
    write_text_atomic(out / RESULTS_MD, format_markdown(rows, total=total, seconds=seconds))


def _num(value: Any, fmt: str, scale: float = 1.0) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return format(value * scale, fmt)


COLUMNS = ("job", "status", "program", "PSNR dB", "SSIM", "CD-L2 mm^2 (GT mesh)", "F@1cm (GT mesh)",
           "CD-L2 mm^2 (scan)", "param MAE %", "discrete acc", "wall s", "note")


def table_cells(row: JobRow) -> list[str]:
    """The markdown cells of one row, in :data:`COLUMNS` order."""
    if row.ok:
        if row.skipped:
            note = "done earlier, skipped"
        elif row.resumed_from is not None:
            note = f"resumed from step {row.resumed_from}"
        else:
            note = ""
    else:
        note = row.error or ""
    return [
        row.job, row.status, row.program or "-",
        _num(row.metric("test", "psnr"), ".2f"), _num(row.metric("test", "ssim"), ".4f"),
        _num(row.metric("geometry_vs_gt_mesh", "chamfer_l2"), ".1f", 1e6),
        _num(row.metric("geometry_vs_gt_mesh", "fscore@1cm"), ".3f"),
        _num(row.metric("geometry_vs_scan", "chamfer_l2"), ".1f", 1e6),
        _num(row.metric("param_errors", "continuous_mae_pct"), ".2f"),
        _num(row.metric("param_errors", "discrete_accuracy"), ".3f"),
        _num(row.seconds, ".0f"), note.replace("|", "\\|"),
    ]


def summary(rows: Sequence[JobRow], total: int) -> str:
    ok = sum(r.ok for r in rows)
    skipped = sum(r.skipped for r in rows)
    failed = len(rows) - ok
    pending = total - len(rows)
    text = f"{total} scenes: {ok} ok ({skipped} done earlier), {failed} failed"
    return text + (f", {pending} not finished" if pending else "")


def format_markdown(rows: Sequence[JobRow], *, total: int | None = None, seconds: float | None = None) -> str:
    """The results as a markdown table, with a summary line above it."""
    total = len(rows) if total is None else total
    head = summary(rows, total) + ("" if seconds is None else f"; batch wall time {seconds:.0f} s")
    lines = ["# splat batch results", "", head, "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(table_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Progress lines of a running batch: ``[done/total] job status ... | failed | elapsed | ETA``.

    Jobs settled before the batch starts (done by an earlier batch, or with no usable config) count as
    done at once and do not enter the rate; the ETA is the mean wall time per finished job of this
    batch times the jobs left (jobs run concurrently, so it is the batch's own throughput, not one
    job's time).
    """

    def __init__(self, total: int, emit: Callable[[str], None] | None, *,
                 clock: Callable[[], float] = time.perf_counter):
        self.total = total
        self.emit = emit
        self.clock = clock
        self.start = clock()
        self.done = 0
        self.failed = 0
        self.ran = 0

    def eta(self) -> float | None:
        left = self.total - self.done
        if left == 0:
            return 0.0
        if self.ran == 0:
            return None
        return (self.clock() - self.start) / self.ran * left

    def update(self, row: JobRow, *, ran: bool = True) -> str:
        """Count a finished row (``ran``: it ran in this batch, so it enters the rate) and emit its line."""
        self.done += 1
        self.failed += not row.ok
        self.ran += ran
        if row.skipped:
            what = "done earlier, skipped"
        elif row.ok:
            psnr = row.metric("test", "psnr")
            what = f"ok {_num(row.seconds, '.1f')} s" + (f", PSNR {psnr:.2f} dB" if psnr is not None else "")
            if row.resumed_from is not None:
                what += f", resumed from step {row.resumed_from}"
        else:
            what = f"error: {row.error}"
        eta = self.eta()
        line = (f"[{self.done}/{self.total}] {row.job}: {what} | {self.failed} failed | elapsed "
                f"{_clock(self.clock() - self.start)} | ETA {'?' if eta is None else _clock(eta)}")
        if self.emit is not None:
            self.emit(line)
        return line
