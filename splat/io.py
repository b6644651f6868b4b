"""Atomic file writes (a reader never sees a half-written file, a crash never loses the old one) and
the one JSON reader that turns a missing, unreadable or malformed file into a :class:`SplatError`.

Every output of the project (scenes, checkpoints, assets, metrics) goes through these helpers: write to
a temporary name in the same folder, flush and fsync, then ``os.replace`` onto the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from splat.errors import SplatError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary file keeps ``path``'s suffix, so writers that pick a format from the suffix
    (imageio, torch.save, trimesh) behave the same. On error the temporary file is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the mode a plain open() would (0666 minus umask).
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Parse the JSON file at ``path``; every way it can be unusable is a :class:`SplatError` naming it.

    Loading JSON never executes code. Callers validate the structure themselves.
    """
    path = Path(path)
    if not path.is_file():
        raise SplatError("cannot read: file not found", file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SplatError(f"cannot read: {err}", file=path) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SplatError(f"malformed JSON, not valid JSON at line {err.lineno} column {err.colno}: {err.msg}",
                         file=path) from None
