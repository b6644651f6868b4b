"""Resume with per-copy residuals ends exactly like an uninterrupted run (docs/reliability.md).

With ``gaussians.per_copy_residuals`` on, tests/test_reliability_resume.py's arbitrary-moment kill failed
1 time in 4. The trained state was never the cause: a run resumed from any of its checkpoints (before
and right after densification, which resizes the residuals and their Adam state) ends with bit-identical
tensors. The metrics differed in the last digit of ``psnr_masked_cc``: its affine colour fit used
``torch.linalg.lstsq``'s CPU default driver ``gelsy``, which torch hands an uninitialised pivot array,
so the fit depended on stale heap memory. It is now solved with ``gelsd`` (splat/evaluate.py).

Budget: ~1 s for the colour fit; ~20 s on 2 cores for the resumes (the kill tests' 32x32 stool scene).
"""

from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import pytest
import torch

from reliability_train_child import kill_config
from splat.evaluate import colour_corrected
from train_fixtures import make_stool_scene


def _dirty_heap() -> None:
    """Leave freed small blocks of non-zero int32s behind (what a LAPACK integer workspace that is not
    initialised would then read)."""
    junk = [torch.full((n,), 7, dtype=torch.int32) for n in (1, 2, 3, 4, 4, 4, 8, 16)]
    del junk


def test_colour_fit_does_not_depend_on_stale_memory():
    g = torch.Generator().manual_seed(1)
    # a grey render (r = g = b): the 4-column fit [r g b 1] has rank 2, where a pivoting solver that
    # reads stale pivots both varies and misses the least-squares optimum
    pred = torch.rand(16, 16, 1, generator=g, dtype=torch.float64).expand(16, 16, 3).clone()
    target = torch.rand(16, 16, 3, generator=g, dtype=torch.float64)
    mask = torch.ones(16, 16, dtype=torch.bool)
    outs = []
    for _ in range(20):
        _dirty_heap()
        outs.append(colour_corrected(pred, target, mask))
    assert all(torch.equal(o, outs[0]) for o in outs)
    X = torch.cat([pred.reshape(-1, 3), torch.ones(256, 1, dtype=torch.float64)], 1)
    best = (X @ (torch.linalg.pinv(X) @ target.reshape(-1, 3))).clamp(0, 1).reshape(pred.shape)
    torch.testing.assert_close(outs[0], best, atol=1e-10, rtol=0)

    # full rank (a coloured render) as well
    pred = torch.rand(16, 16, 3, generator=g, dtype=torch.float64)
    outs = []
    for _ in range(20):
        _dirty_heap()
        outs.append(colour_corrected(pred, target, mask))
    assert all(torch.equal(o, outs[0]) for o in outs)


# --- resume with per-copy residuals -------------------------------------------------------------------


VOLATILE = ("run", "seconds")


def _config(scene: Path, out: Path):
    cfg = kill_config(scene, out)  # 4 joint steps, densification after step 1, a checkpoint after each
    return dataclasses.replace(cfg, gaussians=dataclasses.replace(cfg.gaussians, per_copy_residuals=True))


def _train_capturing(cfg, monkeypatch) -> tuple[object, list[bytes]]:
    """Train ``cfg``; returns the result and every checkpoint it wrote (serialised, in order)."""
    import splat.train.trainer as trainer_mod
    from splat.train import train

    real = trainer_mod.save_checkpoint
    saved: list[bytes] = []

    def capture(folder, state):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        saved.append(buffer.getvalue())
        return real(folder, state)

    with monkeypatch.context() as m:
        m.setattr(trainer_mod, "save_checkpoint", capture)
        return train(cfg), saved


def _flat(x, prefix=""):
    if isinstance(x, dict):
        return {k: v for key, val in x.items() for k, v in _flat(val, f"{prefix}/{key}").items()}
    if isinstance(x, (list, tuple)):
        return {k: v for i, val in enumerate(x) for k, v in _flat(val, f"{prefix}[{i}]").items()}
    return {prefix: x}


def _differences(a: dict, b: dict) -> list[str]:
    fa, fb = _flat(a), _flat(b)
    out = []
    for k in sorted(set(fa) | set(fb)):
        x, y = fa.get(k), fb.get(k)
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x, y):
                out.append(k)
        elif x != y:
            out.append(k)
    return out


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stool_scene")
    make_stool_scene(root, n_train=5, n_test=2, size=32, num_gaussians=1500)
    return root


@pytest.mark.slow  # ~20 s: one uninterrupted run and two resumed ones
def test_resume_with_per_copy_residuals_ends_like_an_uninterrupted_run(scene, tmp_path, monkeypatch):
    ref, saved = _train_capturing(_config(scene, tmp_path / "ref"), monkeypatch)
    final = torch.load(io.BytesIO(saved[-1]), weights_only=True)
    assert final["joint"]["gaussians"]["params"]["residuals"].shape[1] == 2  # the stool's two legs
    assert final["joint"]["optimizers"]["residuals"]["state"], "the residuals never trained"
    steps = [torch.load(io.BytesIO(b), weights_only=True)["step"] for b in saved]
    assert steps == [0, 1, 2, 3, 4, 4]
    rows = [torch.load(io.BytesIO(b), weights_only=True)["joint"]["gaussians"]["prim"].shape[0] for b in saved]
    assert rows[1] < rows[2], rows  # densification after step 1 grew the set (and the residuals' Adam state)
    reference = {k: v for k, v in ref.metrics.items() if k not in VOLATILE}
    # after step 1 (statistics gathered, nothing resized yet) and after step 2 (just densified: the
    # residuals and their Adam moments resized)
    for i in (1, 2):
        out = tmp_path / f"resumed{i}"
        rd = out / ref.run_dir.root.parent.name / ref.run_dir.root.name
        (rd / "checkpoints").mkdir(parents=True)
        shutil.copy(ref.run_dir.config, rd / "config.json")
        (rd / "checkpoints" / "latest.pt").write_bytes(saved[i])
        res, resaved = _train_capturing(dataclasses.replace(_config(scene, out), resume=True), monkeypatch)
        assert _differences(final, torch.load(io.BytesIO(resaved[-1]), weights_only=True)) == [], f"from step {i}"
        assert {k: v for k, v in res.metrics.items() if k not in VOLATILE} == reference, f"from step {i}"
