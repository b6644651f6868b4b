"""Benchmark: one batched evaluation of 64 chairs (incl. realize) vs 64 single evaluations.

Run: ``python bench/bench_program.py [--program chair] [--repeats 5]``. Prints absolute times and the
ratio measured side by side in one process. Other work on the machine makes timings noisy.
"""

from __future__ import annotations

import argparse
import time

import torch

from splat.program import load_program


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--program", default="chair")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    prog = load_program(args.program)
    batch = prog.space.sample(args.batch, torch.Generator().manual_seed(0), dtype=torch.float32)
    singles = [{k: v[i:i + 1] for k, v in batch.items()} for i in range(args.batch)]

    def batched():
        return prog.evaluate(batch).realize()

    def one_by_one():
        return [prog.evaluate(s).realize() for s in singles]

    def batched_grad():
        leaves = {k: batch[k].clone().requires_grad_(True) for k in prog.space.continuous}
        m = prog.evaluate({**batch, **leaves}).realize()
        (m.verts * m.vert_active[..., None]).sum().backward()

    tb = _time(batched, args.repeats)
    ts = _time(one_by_one, args.repeats)
    tg = _time(batched_grad, args.repeats)
    parts = len(prog.evaluate(batch).parts)
    print(f"program={args.program} B={args.batch} parts(batched)={parts} threads={torch.get_num_threads()} "
          "(timings are best of repeats; other processes on the machine add noise)")
    print(f"batched evaluate+realize        : {tb * 1e3:8.2f} ms")
    print(f"batched evaluate+realize+backward: {tg * 1e3:8.2f} ms")
    print(f"{args.batch} single evaluate+realize  : {ts * 1e3:8.2f} ms")
    print(f"speed-up (single / batched)      : {ts / tb:8.2f}x")


if __name__ == "__main__":
    main()
