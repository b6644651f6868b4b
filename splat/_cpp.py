"""Building and loading the project's C++ CPU kernels (one loader for all of them).

Each kernel is compiled from its source file (staged as a copy in its build folder, so that every copy of
the package using the same torch install, e.g. two clones in one virtual environment, shares one cached
build; each torch install has its own folder, see :func:`build_directory`) on first use with ``torch.utils.cpp_extension.load``
(``-O3 -march=native``, threads are plain std::threads) and cached in torch's extension folder
(``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions/py311_cpu/env-<torch install>``), one
build folder per kernel; later processes load the cached build in well under a second. If the build fails, one warning
names what falls back to what, and the loader returns None (once per process and kernel).

What the user sees on stderr (nothing at all when the cached build loads):

* ``splat: building <what> (first use, about 30 s; cached in <build folder>)`` -- one line, only
  when a build will really run. torch itself re-runs ninja in every new process and ninja decides, so
  "a build is needed" is decided the same way: the built library ``<name>.so`` is missing, or the stamp
  file ``splat-build.stamp`` written after the last successful load does not match (a hash of the
  source, the flags, torch's and Python's versions: a changed source or flag rewrites ``build.ninja``),
  or ``ninja -n`` (a dry run on the existing ``build.ninja``) has work to do (a touched source, new
  torch headers).
* ``splat: waiting for another process building <what> ...`` -- when another live process is building
  the same kernel (printed after 2 s of waiting, so that two processes loading a cached build at the
  same time print nothing).
* ``splat: removing a stale build lock ...`` -- see below.

Stale locks. torch guards a build folder with ``<build folder>/lock`` (its ``FileBaton``: a file
created with O_EXCL, removed when the build ends); a build killed midway (SIGKILL, OOM, a closed
container) leaves it, and every later ``load`` then spins on it forever. The decision rule here:

1. Every load of every kernel goes through this module and holds an ``flock`` on
   ``<build folder>/splat-build.flock`` while it checks, builds and loads. The kernel releases an
   flock when its holder dies, so holding it proves that no other process using this loader is
   building. The flock file itself is never deleted (deleting a lock file races with its next taker).
2. Holding the flock, a ``lock`` file is stale only if also (a) no process has the build folder as
   its working directory -- torch runs ninja, and ninja the compiler, in that folder, and ninja
   outlives a SIGKILLed Python parent, which does not pass its flock on to it; this also covers a
   builder that calls torch directly -- and (b) the file is at least 5 s old (torch creates it a
   moment before it starts ninja). A stale file is removed, with one line saying so, and the
   build proceeds under the flock; otherwise this process waits for it to go away (one line).
   Without /proc (not Linux) check (a) is skipped; without fcntl (Windows) the flock is skipped and a
   ``lock`` file is taken as stale after 10 minutes.

So a dead builder costs at most a few seconds, a live one is waited for, and two processes never run
ninja in the same folder at once.

There is no ``build_all`` here: each kernel names its source in its own module (splat.render.cpu,
splat.ops.mesh_distance), and building "all" means importing those and calling their loaders.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

CFLAGS = ["-O3", "-march=native", "-fno-math-errno", "-std=c++17"]
LDFLAGS = ["-pthread"]
STAMP = "splat-build.stamp"  # hash of what the last successful build was built from
FLOCK = "splat-build.flock"  # held by the process checking / building / loading this folder
MIN_STALE_AGE_S = 5.0  # a torch lock file younger than this may belong to a builder just starting
NO_FLOCK_STALE_AGE_S = 600.0  # without fcntl nothing tells a live builder from a dead one but age
SAY_WAIT_AFTER_S = 2.0  # a cached load holds the flock well under this: no "waiting" line for it
POLL_S = 0.2


@functools.cache
def load_extension(name: str, source: Path, what: str, fallback: str):
    """The built extension module ``name`` from ``source``, or None with one warning if it cannot be built.

    ``what`` and ``fallback`` complete the messages: "building <what> ...", "could not build <what>
    (...); using <fallback>".
    """
    try:
        return _build_and_load(name, Path(source), what)
    except Exception as err:  # any compiler / toolchain failure
        msg = str(err).strip().splitlines()
        warnings.warn(f"splat: could not build {what} ({msg[-1] if msg else type(err).__name__}); using {fallback}",
                      RuntimeWarning, stacklevel=3)
        return None


def build_directory(name: str) -> Path:
    """Where extension ``name`` is built and cached (created if missing).

    With ``TORCH_EXTENSIONS_DIR`` set: ``<it>/<name>``, torch's own rule. Otherwise torch's default root
    (``~/.cache/torch_extensions/py311_cpu``) plus one folder per torch install, ``env-<hash of its
    path>/<name>``: torch writes its include paths into ``build.ninja``, so two virtual environments
    sharing one folder would rebuild each other's kernel every time they take turns.
    """
    from torch.utils import cpp_extension

    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(cpp_extension._get_build_directory(name, verbose=False))
    import torch

    tag = hashlib.sha256(os.path.dirname(os.path.abspath(torch.__file__)).encode()).hexdigest()[:10]
    folder = (Path(cpp_extension.get_default_build_root()) / f"py{sys.version_info[0]}{sys.version_info[1]}_cpu"
              / f"env-{tag}" / name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _build_and_load(name: str, source: Path, what: str):
    from torch.utils import cpp_extension  # attribute access below: tests monkeypatch cpp_extension.load

    build_dir = build_directory(name)
    wait = _WaitNotice(f"splat: waiting for another process building {what} ({build_dir})")
    with _builder_lock(build_dir, wait) as have_flock, _our_ninja():
        _clear_stale_lock(build_dir, what, have_flock, wait)
        source = _stage_source(build_dir, name, source)
        stamp = _stamp(name, source)
        reason = _build_reason(name, build_dir, stamp)
        if reason:
            _say(f"splat: building {what} ({reason}, about 30 s; cached in {build_dir})")
        # copies: torch appends its own flags to the lists it is given
        module = cpp_extension.load(name=name, sources=[os.fspath(source)], extra_cflags=list(CFLAGS),
                                    extra_ldflags=list(LDFLAGS), build_directory=os.fspath(build_dir), verbose=False)
        if _read(build_dir / STAMP) != stamp:
            tmp = build_dir / f"{STAMP}.{os.getpid()}"
            tmp.write_text(stamp)
            os.replace(tmp, build_dir / STAMP)
        return module


@contextlib.contextmanager
def _our_ninja():
    """Run the build with the ``ninja`` installed beside this Python (our ``ninja`` dependency, in the
    virtual environment's scripts folder), whatever ``PATH`` says.

    torch runs plain ``ninja`` from ``PATH``. ``.venv/bin/python train.py`` (no activated environment)
    finds the system's ninja, ``splat`` from an activated one finds the environment's; two ninja versions
    hash a command line differently (1.11 and 1.13 do), so each took the other's build as stale and every
    switch between the two ways of running recompiled all kernels. ``PATH`` is restored afterwards.
    """
    import sysconfig

    scripts = sysconfig.get_path("scripts")
    exe = "ninja.exe" if os.name == "nt" else "ninja"
    path = os.environ.get("PATH", "")
    if not scripts or not os.path.isfile(os.path.join(scripts, exe)) or path.split(os.pathsep)[:1] == [scripts]:
        yield
        return
    os.environ["PATH"] = scripts + os.pathsep + path
    try:
        yield
    finally:
        os.environ["PATH"] = path


def _stage_source(build_dir: Path, name: str, source: Path) -> Path:
    """The source as compiled: a copy in the build folder, rewritten only when its content differs.

    Building from a fixed path makes ``build.ninja`` the same for every copy of the package that uses
    the same torch install (two clones, or an editable checkout and a wheel, in one virtual environment),
    so they share one cached build instead of rebuilding each other's; an unchanged copy keeps its mtime,
    so ninja has nothing to do. Another torch install builds in its own folder (its include paths are in
    ``build.ninja``).
    """
    staged = build_dir / f"{name}.cpp"
    text = Path(source).read_bytes()
    if not staged.is_file() or staged.read_bytes() != text:
        build_dir.mkdir(parents=True, exist_ok=True)
        tmp = build_dir / f"{name}.cpp.{os.getpid()}"
        tmp.write_bytes(text)
        os.replace(tmp, staged)
    return staged


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


class _WaitNotice:
    """The one "waiting" line of a load, said once it has waited SAY_WAIT_AFTER_S (for the flock or the lock)."""

    def __init__(self, line: str):
        self.line, self.start, self.said = line, time.monotonic(), False

    def tick(self, detail: str = "") -> None:
        if not self.said and time.monotonic() - self.start > SAY_WAIT_AFTER_S:
            _say(self.line + detail)
            self.said = True
        time.sleep(POLL_S)


def _stamp(name: str, source: Path) -> str:
    """Hash of everything that goes into build.ninja and the compiled code, besides the headers."""
    import torch

    h = hashlib.sha256()
    for part in (name, os.path.abspath(source), *CFLAGS, "|", *LDFLAGS, torch.__version__, sys.version):
        h.update(part.encode() + b"\0")
    h.update(source.read_bytes())
    return h.hexdigest()


def _build_reason(name: str, build_dir: Path, stamp: str) -> str:
    """Why ``load`` will compile (empty when it will only load the cached library)."""
    from torch.utils.cpp_extension import LIB_EXT

    if not (build_dir / f"{name}{LIB_EXT}").is_file():
        return "first use"
    old = _read(build_dir / STAMP)
    if old is not None and old != stamp:
        return "its source or build flags changed"
    # Same source and flags (or a build from before the stamps): the build.ninja on disk is the one torch
    # is about to write again, so ninja's dry run says whether torch's ninja run will compile.
    try:
        dry = subprocess.run(["ninja", "-n", f"{name}{LIB_EXT}"], cwd=build_dir, capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "first use"  # no ninja: torch's load fails too, and the warning says why
    if dry.returncode != 0 or "no work to do" not in dry.stdout:
        return "its source or the torch headers changed"
    return ""


@contextlib.contextmanager
def _builder_lock(build_dir: Path, wait: _WaitNotice):
    """Hold the flock of ``build_dir``; yields whether flock is available on this platform."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield False
        return
    fd = os.open(build_dir / FLOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                wait.tick()
        yield True
    finally:
        os.close(fd)  # releases the flock


def _clear_stale_lock(build_dir: Path, what: str, have_flock: bool, wait: _WaitNotice) -> None:
    """Remove torch's ``lock`` left by a dead build; wait while a live process may still own it."""
    lock = build_dir / "lock"
    min_age = MIN_STALE_AGE_S if have_flock else NO_FLOCK_STALE_AGE_S
    while True:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return  # released by its owner (or never there)
        busy = _processes_in(build_dir)
        if age >= min_age and not busy:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            _say(f"splat: removing a stale build lock left by an interrupted build of {what} ({lock})")
            return
        if busy or not have_flock:  # a live builder (or, without flock, maybe one)
            wait.tick(f" (pid {', '.join(map(str, busy))} working in it)" if busy else "")
        else:  # only the age guard: a dead build's lock, or a builder of a few ms ago; no line for that
            time.sleep(POLL_S)


def _processes_in(build_dir: Path) -> list[int]:
    """Other processes whose working directory is ``build_dir`` (ninja, the compiler); [] without /proc."""
    target = os.path.realpath(build_dir)
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") == target:
                found.append(int(entry))
        except OSError:  # gone, or another user's
            continue
    return found
