"""The ``splat`` command as a user meets it: ``python -m splat ...`` in a fresh interpreter.

Every subcommand of :data:`splat.commands.COMMANDS` answers ``--help`` (exit 0) and turns a bad input into
exactly one ``error:`` line on stderr with exit status 2 (:func:`splat.cli.run_cli`). Each subprocess runs
in a temporary folder, not the repository, so nothing may depend on the working directory.

Budget: ~20 s on 4 cores (about twenty interpreter starts, most importing torch, four at a time).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import HAS_BPY

from splat.commands import COMMANDS

TIMEOUT = 180


def splat(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "splat", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=TIMEOUT)


def many(argvs: dict[str, list], cwd) -> dict[str, subprocess.CompletedProcess]:
    """Run several ``splat`` command lines, four at a time (each is mostly interpreter start-up)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(splat, *argv, cwd=cwd) for name, argv in argvs.items()}
        return {name: f.result() for name, f in futures.items()}


def assert_one_error_line(res: subprocess.CompletedProcess, what: str) -> str:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, f"{what}: exit {res.returncode}\n{res.stderr}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: stderr is not one error line:\n{res.stderr}"
    assert "Traceback" not in res.stderr
    return lines[0]


def test_top_level_help_lists_every_command(tmp_path):
    for flag in ("--help", "-h"):
        res = splat(flag, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        listed = {line.split()[0] for line in res.stdout.split("commands:")[1].strip().splitlines()}
        assert listed == set(COMMANDS), res.stdout


def test_unknown_command_is_one_error_line(tmp_path):
    res = splat("nosuch", cwd=tmp_path)
    line = assert_one_error_line(res, "splat nosuch")
    assert "nosuch" in line and "train" in line


@pytest.mark.slow
def test_every_command_answers_help(tmp_path):
    argvs = {name: [name, "--help"] for name in COMMANDS}
    argvs["blender import"] = ["blender", "import", "--help"]
    argvs["blender export"] = ["blender", "export", "--help"]
    for name, res in many(argvs, cwd=tmp_path).items():
        assert res.returncode == 0, f"splat {name} --help: exit {res.returncode}\n{res.stderr}"
        assert f"usage: splat {name}" in res.stdout, res.stdout
        if name.split()[0] in ("search", "data", "blender"):  # formerly `python -m splat.<name>` (argparse)
            assert "python -m splat." not in res.stdout, res.stdout
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


BAD_INPUTS = {
    "train": (["--scene", "/nonexistent/scene"], "/nonexistent/scene"),
    "render": (["/nonexistent/run"], "/nonexistent/run"),
    "export": (["/nonexistent/run"], "/nonexistent/run"),
    "evaluate": (["/nonexistent/run"], "/nonexistent/run"),
    "search": (["--program", "chair", "--points", "missing.ply", "--out", "best.json"], "missing.ply"),
    "data": (["missing_dir"], "missing_dir"),
    "make-scene": (["--program", "chair", "--all"], "--program"),
    "import": (["tum", "missing_capture", "--out", "scene"], "missing_capture"),
    # a bad scene inside a batch is an error row (the batch goes on); a missing scene list is a user error
    "batch": (["--list", "missing_list.txt", "--out", "runs"], "missing_list.txt"),
    # Without bpy the same command fails earlier, on the missing `blender` extra: still one line, exit 2.
    "blender": (["import", "missing.blend", "--out", "x"], "missing.blend" if HAS_BPY else "blender"),
    # Without viser (the `viewer` extra) it fails on that first: still one line, exit 2.
    "programs": (["sample", "no_such_program", "--out", "variants"], "no_such_program"),
    "view": (["/nonexistent/run"], "/nonexistent/run" if importlib.util.find_spec("viser") else "viewer"),
}
"""Command -> (arguments that must fail as a user error, text the error line must contain).
``build`` has no user input to get wrong (its failure is a missing compiler)."""


def test_bad_input_table_covers_every_command():
    assert set(BAD_INPUTS) | {"build"} == set(COMMANDS)


@pytest.mark.slow
def test_every_command_reports_bad_input_in_one_line(tmp_path):
    results = many({name: [name, *argv] for name, (argv, _) in BAD_INPUTS.items()}, cwd=tmp_path)
    for name, res in results.items():
        line = assert_one_error_line(res, f"splat {name}")
        assert BAD_INPUTS[name][1] in line, f"splat {name}: {line}"
    assert list(tmp_path.iterdir()) == []  # a failed command leaves nothing behind
