"""``splat evaluate RUN``: held-out metrics of a trained run (see :mod:`splat.evaluate`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import tyro

from splat.errors import SplatError
from splat.evaluate import EvalSettings, evaluate_run, format_table


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from splat.io import write_json_atomic

    argv = list(sys.argv[1:] if argv is None else argv)
    s = tyro.cli(EvalSettings, args=argv, prog="splat evaluate", description=__doc__.split("\n\n")[0])
    if s.surface_samples < 16:
        raise SplatError(f"must be >= 16, got {s.surface_samples}", field="--surface-samples")
    if not Path(s.run).exists():
        raise SplatError("no such run folder", file=s.run)
    metrics = evaluate_run(s)
    out = s.out if s.out is not None else Path(metrics["run"]) / "eval_metrics.json"
    write_json_atomic(out, metrics)
    print(format_table(metrics))
    print(f"wrote {out}")
    return metrics
