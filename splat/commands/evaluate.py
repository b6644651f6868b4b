"""``splat evaluate RUN``: held-out metrics of a trained run, in the schema of the trainer's metrics.json.

Writes ``RUN/eval_metrics.json`` (or ``--out``) atomically and prints a summary table. Same run, same
options -> the same numbers as the trainer's own ``metrics.json`` (see :mod:`splat.evaluate` and
docs/evaluation.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import tyro

from splat.errors import SplatError
from splat.evaluate import EvalReport, EvalSettings, evaluate_run, format_table


def main(argv: list[str] | None = None) -> EvalReport:
    from splat.io import write_json_atomic

    argv = list(sys.argv[1:] if argv is None else argv)
    s = tyro.cli(EvalSettings, args=argv, prog="splat evaluate", description=__doc__.split("\n\n")[0])
    if s.surface_samples is not None and s.surface_samples < 16:
        raise SplatError(f"must be >= 16, got {s.surface_samples}", field="--surface-samples")
    if not Path(s.run).exists():
        raise SplatError("no such run folder", file=s.run)
    report = evaluate_run(s)
    if s.out is not None:
        out = s.out
    elif report.run is not None:
        out = Path(report.run) / "eval_metrics.json"
    else:
        raise SplatError("cannot tell the run folder to write eval_metrics.json into; pass --out", field="--out")
    write_json_atomic(out, report.as_dict())
    print(format_table(report))
    print(f"wrote {out}")
    return report
