"""The C++ kernel loader (splat/_cpp.py): one line when it builds, silence when cached, stale locks, fallback.

A tiny extension written against the plain Python C API (no torch headers: it compiles in about a
second) is built in a temporary TORCH_EXTENSIONS_DIR. Processes are real subprocesses where the point
is "a later process" or "another process".

Budget: < 30 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest

from splat import _cpp

REPO = Path(__file__).resolve().parents[1]
WHAT = "the tiny test kernel"

TINY = r"""
#include <Python.h>
#define SPLAT_CAT2(a, b) a##b
#define SPLAT_CAT(a, b) SPLAT_CAT2(a, b)
static PyObject* answer(PyObject*, PyObject*) { return PyLong_FromLong(ANSWER); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, nullptr}, {nullptr, nullptr, 0, nullptr}};
static PyModuleDef def = {PyModuleDef_HEAD_INIT, "tiny", nullptr, -1, methods};
PyMODINIT_FUNC SPLAT_CAT(PyInit_, TORCH_EXTENSION_NAME)(void) { return PyModule_Create(&def); }
"""

LOAD = """
import sys
from splat._cpp import load_extension
m = load_extension(sys.argv[1], sys.argv[2], {what!r}, "nothing")
print(m.answer())
""".format(what=WHAT)


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """(name, source, build folder) of a fresh tiny kernel in a private extensions folder."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    source = tmp_path / "tiny.cpp"
    source.write_text(TINY.replace("ANSWER", "42"))
    name = f"splat_test_{uuid.uuid4().hex[:10]}"  # torch versions extensions by name within a process
    return name, source, tmp_path / "ext" / name


def load(name, source):
    return _cpp.load_extension.__wrapped__(name, source, WHAT, "nothing")  # uncached


def spawn(name, source, **kw):
    return subprocess.Popen([sys.executable, "-c", LOAD, name, str(source)], cwd=REPO, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def run(name, source):
    """(stdout, stderr) of loading the kernel in a new process."""
    proc = spawn(name, source)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out.strip(), err


def lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


@pytest.mark.timeout(120)
def test_first_load_says_one_line_and_cached_loads_say_nothing(kernel, capfd):
    name, source, build_dir = kernel
    assert load(name, source).answer() == 42
    err = lines(capfd.readouterr().err)
    assert len(err) == 1, err
    assert err[0] == f"splat: building {WHAT} (first use, about 30 s; cached in {build_dir})"

    assert load(name, source).answer() == 42  # same process, cached build
    assert capfd.readouterr().err == ""
    assert run(name, source) == ("42", "")  # a later process
    assert capfd.readouterr().err == ""  # (the subprocess's stderr was piped, not ours)

    # the source is staged in the build folder: a touched but unchanged source (or the same source in
    # another copy of the package) reuses the build, silently
    os.utime(source)
    assert run(name, source) == ("42", "")
    other = source.parent / "elsewhere" / source.name
    other.parent.mkdir()
    other.write_text(source.read_text())
    assert run(name, other) == ("42", "")
    # but a touched staged copy (what ninja compares) is announced and rebuilt
    os.utime(build_dir / f"{name}.cpp")
    out, err = run(name, source)
    assert out == "42" and len(lines(err)) == 1 and lines(err)[0].startswith(f"splat: building {WHAT} (its source")

    # an edited source: announced, rebuilt, and the new code is what loads
    source.write_text(TINY.replace("ANSWER", "43"))
    out, err = run(name, source)
    assert out == "43" and len(lines(err)) == 1 and "its source or build flags changed" in err


@pytest.mark.timeout(60)
def test_stale_lock_of_a_killed_build_is_removed(kernel, capfd):
    name, source, build_dir = kernel
    build_dir.mkdir(parents=True)
    lock = build_dir / "lock"
    lock.touch()  # what torch's FileBaton leaves behind when its process is killed mid-build
    old = time.time() - 60
    os.utime(lock, (old, old))
    assert load(name, source).answer() == 42
    err = lines(capfd.readouterr().err)
    assert len(err) == 2, err
    assert err[0].startswith(f"splat: removing a stale build lock left by an interrupted build of {WHAT}")
    assert err[1].startswith(f"splat: building {WHAT} (first use")
    assert not lock.exists()


@pytest.mark.timeout(60)
def test_a_fresh_lock_without_a_live_builder_is_removed_after_a_few_seconds(kernel, capfd, monkeypatch):
    name, source, build_dir = kernel
    monkeypatch.setattr(_cpp, "MIN_STALE_AGE_S", 1.0)
    build_dir.mkdir(parents=True)
    (build_dir / "lock").touch()
    t0 = time.monotonic()
    assert load(name, source).answer() == 42
    assert time.monotonic() - t0 >= 0.9
    err = lines(capfd.readouterr().err)
    assert len(err) == 2 and "stale build lock" in err[0], err  # no "waiting" line: nobody was building


@pytest.mark.timeout(60)
def test_lock_of_a_live_orphaned_ninja_is_waited_for(kernel, capfd, monkeypatch):
    """A SIGKILLed Python leaves its lock and flock behind, but ninja may still be compiling in the folder."""
    name, source, build_dir = kernel
    monkeypatch.setattr(_cpp, "SAY_WAIT_AFTER_S", 0.5)
    build_dir.mkdir(parents=True)
    lock = build_dir / "lock"
    lock.touch()
    old = time.time() - 60
    os.utime(lock, (old, old))
    orphan = subprocess.Popen(["sleep", "3"], cwd=build_dir)  # stands for the orphaned ninja
    try:
        t0 = time.monotonic()
        assert load(name, source).answer() == 42
        assert time.monotonic() - t0 > 2.0
        assert orphan.poll() is not None  # it ended before the lock was taken over
    finally:
        orphan.kill()
        orphan.wait()
    err = lines(capfd.readouterr().err)
    assert len(err) == 3, err
    assert err[0].startswith(f"splat: waiting for another process building {WHAT}") and str(orphan.pid) in err[0]
    assert "stale build lock" in err[1] and err[2].startswith(f"splat: building {WHAT}")


HOLD = """
import fcntl, os, sys, time
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
fd = os.open(os.path.join(d, "splat-build.flock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
open(os.path.join(d, "lock"), "w").close()
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
os.remove(os.path.join(d, "lock"))
"""


@pytest.mark.timeout(60)
def test_a_live_builder_is_waited_for_and_its_lock_left_alone(kernel, capfd, monkeypatch):
    name, source, build_dir = kernel
    monkeypatch.setattr(_cpp, "SAY_WAIT_AFTER_S", 0.5)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(build_dir), "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert load(name, source).answer() == 42
        assert holder.wait(timeout=30) == 0  # its lock was still there for it to remove
    finally:
        holder.kill()
        holder.wait()
    err = lines(capfd.readouterr().err)
    assert len(err) == 2, err
    assert err[0] == f"splat: waiting for another process building {WHAT} ({build_dir})"
    assert err[1].startswith(f"splat: building {WHAT} (first use")


@pytest.mark.timeout(120)
def test_concurrent_first_loads_build_once(kernel):
    name, source, _ = kernel
    procs = [spawn(name, source) for _ in range(3)]
    results = [p.communicate(timeout=100) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    assert [out.strip() for out, _ in results] == ["42"] * 3
    said = [ln for _, err in results for ln in lines(err)]
    assert sum(ln.startswith(f"splat: building {WHAT}") for ln in said) == 1, said
    assert all(ln.startswith(f"splat: building {WHAT}") or "waiting for another process" in ln for ln in said), said


@pytest.mark.timeout(60)
def test_broken_source_warns_once_and_returns_none(kernel, capfd):
    name, source, _ = kernel
    source.write_text("this is not C++\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load(name, source) is None
    assert len(caught) == 1 and caught[0].category is RuntimeWarning
    msg = str(caught[0].message)
    assert msg.startswith(f"splat: could not build {WHAT} (") and msg.endswith("; using nothing")
    err = lines(capfd.readouterr().err)
    assert len(err) == 1 and err[0].startswith(f"splat: building {WHAT}"), err


def test_each_torch_install_has_its_own_build_folder(tmp_path, monkeypatch):
    """torch writes its include paths into build.ninja: two environments sharing a folder would rebuild each
    other's kernel whenever they take turns (a fresh clone's venv and the everyday one did)."""
    import torch
    from torch.utils import cpp_extension

    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    monkeypatch.setattr(cpp_extension, "get_default_build_root", lambda: str(tmp_path / "root"))
    here = _cpp.build_directory("splat_x")
    assert here.is_dir() and here.name == "splat_x" and here.parent.name.startswith("env-")
    assert here.is_relative_to(tmp_path / "root")
    assert _cpp.build_directory("splat_x") == here  # stable
    monkeypatch.setattr(torch, "__file__", str(tmp_path / "other_venv" / "torch" / "__init__.py"))
    other = _cpp.build_directory("splat_x")
    assert other != here and other.parent.parent == here.parent.parent
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    assert _cpp.build_directory("splat_x") == tmp_path / "ext" / "splat_x"  # torch's own rule when set


def test_the_build_uses_the_ninja_beside_this_python(tmp_path, monkeypatch):
    """Two ninja versions hash command lines differently, so a build by the system's ninja (PATH without
    the virtual environment: ``.venv/bin/python train.py``) and one by the environment's (``splat`` from an
    activated one) took each other's builds as stale: the build always runs the environment's ninja."""
    import sysconfig

    scripts = tmp_path / "venv_bin"
    scripts.mkdir()
    (scripts / "ninja").write_text("#!/bin/sh\n")
    monkeypatch.setattr(sysconfig, "get_path", lambda name, *a, **k: str(scripts) if name == "scripts" else None)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with _cpp._our_ninja():
        assert os.environ["PATH"].split(os.pathsep) == [str(scripts), "/usr/bin", "/bin"]
    assert os.environ["PATH"] == "/usr/bin:/bin"  # restored
    (scripts / "ninja").unlink()  # no ninja beside this Python: PATH decides, untouched
    with _cpp._our_ninja():
        assert os.environ["PATH"] == "/usr/bin:/bin"
