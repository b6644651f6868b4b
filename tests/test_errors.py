import pickle
import subprocess
import sys

import pytest

from splat.cli import run_cli
from splat.errors import SplatError
from splat.io import atomic_path, write_json_atomic


def test_message_names_file_and_field():
    err = SplatError("must be positive", file="scene/transforms.json", field="frames[2].w")
    assert str(err) == "scene/transforms.json: frames[2].w: must be positive"
    assert err.file == "scene/transforms.json" and err.field == "frames[2].w"
    assert str(SplatError("bad")) == "bad"


def test_pickle_keeps_fields():
    err = pickle.loads(pickle.dumps(SplatError("x", file="a", field="b")))
    assert (err.file, err.field, err.message) == ("a", "b", "x")


def test_run_cli_exits_2_with_one_line(capsys):
    def main():
        raise SplatError("no such scene", file="scenes/nope", field="--scene")

    with pytest.raises(SystemExit) as exc:
        run_cli(main)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: scenes/nope: --scene: no such scene\n"


def test_run_cli_subprocess_has_no_traceback():
    code = (
        "from splat.cli import run_cli\n"
        "from splat.errors import SplatError\n"
        "def main():\n    raise SplatError('boom', file='f.json', field='k')\n"
        "run_cli(main)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: f.json: k: boom"]


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_write_uses_normal_file_mode(tmp_path):
    import os

    target = tmp_path / "m.json"
    write_json_atomic(target, {})
    mask = os.umask(0)
    os.umask(mask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~mask)


def test_read_json_errors_name_the_file(tmp_path):
    from splat.io import read_json

    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json(good) == {"a": [1, 2]}
    with pytest.raises(SplatError, match="file not found") as e:
        read_json(tmp_path / "missing.json")
    assert e.value.file == str(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,\n oops}')
    with pytest.raises(SplatError, match="malformed JSON.*line 2") as e:
        read_json(bad)
    assert e.value.file == str(bad)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SplatError, match="cannot read"):
        read_json(binary)
