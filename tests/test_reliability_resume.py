"""Killed runs and full disks (docs/reliability.md).

A run SIGKILLed at any stage (tests/reliability_train_child.py: search, a checkpoint half written,
joint training, asset writing, evaluation; and at an arbitrary moment) resumes with ``--resume`` and
ends with exactly the metrics of an uninterrupted run of the same seed and thread count. A full disk
(simulated ENOSPC at a checkpoint and at the assets; a real small tmpfs where mounting is allowed)
stops the run with one ``error:`` line, keeps the last good checkpoint readable, and the run then
resumes to the same metrics.

Budget: ~30 s on 2 cores (a 32x32 synthetic scene, 4 joint steps; five killed children, two at a time),
plus ~15 s for the two slow tests (an arbitrary kill with the CLI's --resume; the real tmpfs).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import REPO
from reliability_train_child import POINTS, kill_config
from splat.errors import SplatError
from splat.io import read_json
from splat.runs import load_checkpoint
from splat.train import train
from train_fixtures import make_stool_scene

CHILD = Path(__file__).resolve().parent / "reliability_train_child.py"
VOLATILE = ("run", "seconds")  # the run folder's path and the evaluation's wall time


def comparable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in VOLATILE}


def run_dir(out: Path) -> Path:
    """``<out>/<scene folder name>/r``, the run folder of :func:`kill_config`."""
    found = sorted(Path(out).glob("*/r"))
    assert len(found) == 1, found
    return found[0]


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.tmp*"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stool_scene")
    make_stool_scene(root, n_train=5, n_test=2, size=32, num_gaussians=1500)
    return root


@pytest.fixture(scope="module")
def uninterrupted(scene, tmp_path_factory):
    """The run nothing interrupts (in this process)."""
    return train(kill_config(scene, tmp_path_factory.mktemp("uninterrupted")))


@pytest.fixture(scope="module")
def reference(uninterrupted) -> dict:
    return comparable(uninterrupted.metrics)


def resume(scene, out):
    return train(dataclasses.replace(kill_config(scene, out), resume=True))


def child(scene, out, point, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(CHILD), str(scene), str(out), point], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def killed(scene, tmp_path_factory) -> dict[str, tuple[Path, int, str]]:
    """Each kill point's run folder parent, exit status and stderr (children two at a time)."""
    def one(point):
        out = tmp_path_factory.mktemp(f"killed_{point}")
        proc = child(scene, out, point)
        _, err = proc.communicate(timeout=300)
        return point, (out, proc.returncode, err)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, POINTS))


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_then_resume_ends_like_an_uninterrupted_run(point, killed, scene, reference):
    out, status, err = killed[point]
    assert status == -signal.SIGKILL, err[-1500:]
    rd = run_dir(out)
    assert not (rd / "metrics.json").exists()
    before = load_checkpoint(rd / "checkpoints")  # readable whatever the kill interrupted
    if point == "search":
        assert before is None
    elif point == "checkpoint":
        assert before["step"] == 1  # the 3rd write (after the search's and step 1's) never landed
    resumed = resume(scene, out)
    assert comparable(resumed.metrics) == reference
    assert comparable(read_json(rd / "metrics.json")) == reference
    from splat.export import load_asset

    assert load_asset(rd).params == load_asset(rd / "assets").params


@pytest.mark.slow  # ~8 s: two more processes
def test_sigkill_at_an_arbitrary_moment_then_cli_resume(scene, reference, tmp_path):
    proc = child(scene, tmp_path, "none")
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*/r/config.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # somewhere in the search or joint training on this machine; any moment must do
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    res = subprocess.run([sys.executable, "-m", "splat", "train", "--scene", str(scene), "--output-dir",
                          str(tmp_path), "--run", "r", "--resume"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert comparable(read_json(run_dir(tmp_path) / "metrics.json")) == reference


# --- full disk ----------------------------------------------------------------------------------------


def _fail_writes(monkeypatch, name_prefix: str, after: int = 0):
    """Make ``Path.write_bytes`` raise ENOSPC for temporaries of ``name_prefix`` after ``after`` successes."""
    real = pathlib.Path.write_bytes
    count = {"n": 0}

    def write_bytes(self, data):
        if self.name.startswith(f".{name_prefix}."):
            count["n"] += 1
            if count["n"] > after:
                real(self, bytes(data)[: len(data) // 3])  # a partial write, as a full disk leaves it
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)


@pytest.mark.parametrize("prefix, after, stage", [("latest", 2, "joint"), ("splats", 0, "done")])
def test_disk_full_simulated_is_one_error_and_keeps_the_last_checkpoint(prefix, after, stage, scene, reference,
                                                                          tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        _fail_writes(m, prefix, after)
        with pytest.raises(SplatError, match="no space left on device") as err:
            train(kill_config(scene, tmp_path))
    rd = run_dir(tmp_path)
    assert Path(err.value.file).name == {"latest": "latest.pt", "splats": "splats.ply"}[prefix]
    ckpt = load_checkpoint(rd / "checkpoints")
    assert ckpt["stage"] == stage
    assert temporaries(rd) == []  # the partial temporary file is gone, nothing half-written remains
    assert comparable(resume(scene, tmp_path).metrics) == reference


def test_disk_full_inside_a_writer_that_hides_the_os_error(tmp_path, monkeypatch):
    # torch.save on a full disk raises RuntimeError("... unexpected pos ..."), not OSError: a write that
    # fails while the file system has no block left is still reported as a full disk
    from splat import io

    class Full:
        f_bavail = 0

    monkeypatch.setattr(io.os, "statvfs", lambda folder: Full())
    with pytest.raises(SplatError, match="no space left on device"):
        with io.atomic_path(tmp_path / "g.pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 640 vs 534")
    Full.f_bavail = 1000  # space left: the writer's own error is a bug and stays what it is
    with pytest.raises(RuntimeError, match="unexpected pos"):
        with io.atomic_path(tmp_path / "g.pt"):
            raise RuntimeError("unexpected pos 640 vs 534")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_from_a_writer_thread_is_one_cli_line(capsys):
    # TensorBoard writes from a thread and re-raises the OSError in the trainer: one line, exit 2
    from splat.cli import run_cli

    def full():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "run/tb/events.out.tfevents.1")

    with pytest.raises(SystemExit) as exit_:
        run_cli(full)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: run/tb/events.out.tfevents.1: cannot write (no space left on device)"]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A mounted tmpfs of 4 KiB pages we may resize (root and mount rights needed; else skip)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")

    def resize(kib: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kib}k", str(mnt)], check=True, capture_output=True)

    try:
        yield mnt, resize
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow  # ~6 s: one more process
def test_disk_full_on_a_real_small_tmpfs(small_tmpfs, scene, uninterrupted, reference):
    mnt, resize = small_tmpfs
    # sized from the uninterrupted run: the first checkpoint fits, the final one beside the one before it
    # cannot (a checkpoint is written to a temporary file beside the previous one)
    final_ckpt = (uninterrupted.run_dir.checkpoints / "latest.pt").stat().st_size
    resize(int(1.5 * final_ckpt) // 1024 + 8)
    res = subprocess.run([sys.executable, str(CHILD), str(scene), str(mnt), "none"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no space left on device" in lines[0] and "Traceback" not in res.stderr, res.stderr
    ckpt = load_checkpoint(run_dir(mnt) / "checkpoints")
    assert ckpt is not None and ckpt["stage"] in ("joint", "done")
    assert temporaries(run_dir(mnt)) == []
    resize(4096)  # space again: the run resumes to the uninterrupted run's metrics
    assert comparable(resume(scene, mnt).metrics) == reference
