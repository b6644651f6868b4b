"""The training run that tests/test_reliability_resume.py kills: the tiny stool scene, SIGKILLed at a point.

``python reliability_train_child.py SCENE OUT POINT`` trains :func:`kill_config` (one thread, a fixed
seed) and sends itself SIGKILL (no cleanup, no atexit, no finally: what the OOM killer or ``kill -9``
does) at ``POINT``:

    search          the structure search has found its winner, nothing is saved yet
    checkpoint      the 3rd checkpoint's temporary file holds half its bytes, not yet renamed
    joint           after joint step 2 (its checkpoint written)
    assets          program.json and params.json written, gaussians.pt and splats.ply not
    evaluation      the assets are written, the evaluation has started, metrics.json not written
    none            not killed (the parent kills it at a time of its choosing)
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

POINTS = ("search", "checkpoint", "joint", "assets", "evaluation")


def kill_config(scene: str | os.PathLike, out: str | os.PathLike):
    """The run every kill test makes: presets.smoke, 4 joint steps, a checkpoint after each."""
    from splat import presets
    from splat.config import LogConfig
    from splat.train import TrainConfig

    cfg = presets.smoke(TrainConfig(scene=str(scene), output_dir=Path(out), run="r", threads=1, seed=3))
    return dataclasses.replace(
        cfg, optim=dataclasses.replace(cfg.optim, steps=4),
        log=LogConfig(every=1, image_every=2, checkpoint_every=1, progress=False))


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str):
    """Install the hook that kills this process at ``point``; returns the ``on_step`` callback to pass."""
    import splat.evaluate
    import splat.search

    if point == "search":
        real_search = splat.search.search

        def search_then_die(*args, **kwargs):
            real_search(*args, **kwargs)
            _die()

        splat.search.search = search_then_die
    elif point in ("checkpoint", "assets"):
        real_replace = os.replace
        seen = {"latest.pt": 0}

        def replace(src, dst, *args, **kwargs):
            name = Path(dst).name
            if point == "checkpoint" and name == "latest.pt":
                seen[name] += 1
                if seen[name] == 3:
                    data = Path(src).read_bytes()
                    Path(src).write_bytes(data[: len(data) // 2])
                    _die()
            real_replace(src, dst, *args, **kwargs)
            if point == "assets" and name == "params.json" and Path(dst).parent.name == "assets":
                _die()

        os.replace = replace
    elif point == "evaluation":
        real_evaluate = splat.evaluate.evaluate_asset

        def evaluate_then_die(*args, **kwargs):
            real_evaluate(*args, **kwargs)
            _die()

        splat.evaluate.evaluate_asset = evaluate_then_die
    elif point == "joint":
        return lambda trainer, stats: _die() if trainer.step == 2 else None
    elif point != "none":
        raise SystemExit(f"unknown kill point {point!r}; one of {POINTS} or none")
    return None


def main(scene: str, out: str, point: str) -> None:
    from splat.cli import run_cli
    from splat.train import train

    on_step = arm(point)
    run_cli(lambda: train(kill_config(scene, out), on_step=on_step))


if __name__ == "__main__":
    main(*sys.argv[1:4])
