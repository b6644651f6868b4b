"""`splat data`: the summary, the fused PLY output and the exit-2 path, by subprocess.

Budget: < 6 s (two interpreter starts importing torch; the option checks in-process).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from splat.data import read_ply_points
from splat.data.synthetic import write_plane_scene


def run(*args):
    return subprocess.run([sys.executable, "-m", "splat", "data", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_summary_and_fused_ply(tmp_path):
    write_plane_scene(tmp_path / "s")
    out = tmp_path / "out" / "fused.ply"
    res = run(tmp_path / "s", "--fuse-out", out, "--voxel", "0.05")
    assert res.returncode == 0, res.stderr
    assert "frames     3  (train: 2, test: 1)" in res.stdout
    assert "32x24" in res.stdout and "bbox" in res.stdout and "program    plane" in res.stdout
    n = int(res.stdout.split("\nfused")[1].split()[0])
    assert n > 0 and len(read_ply_points(out)) == n


def test_user_error_exits_2_with_one_line(tmp_path):
    write_plane_scene(tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "transforms.json").read_text())
    meta["frames"][0]["file_path"] = "../../etc/passwd"
    (tmp_path / "s" / "transforms.json").write_text(json.dumps(meta))
    res = run(tmp_path / "s")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "frames[0].file_path" in lines[0]
    assert "Traceback" not in res.stderr


def test_no_masks_and_bad_voxel_in_process(tmp_path, capsys):
    from splat.cli import run_cli
    from splat.commands.data import main

    write_plane_scene(tmp_path / "s")
    run_cli(lambda: main([str(tmp_path / "s"), "--no-masks", "--voxel", "0.05"]))
    assert "fused      " in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: main([str(tmp_path / "s"), "--voxel", "0"]))
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: --voxel: must be > 0") and err.count("\n") == 1
