"""Atomic file writes (a reader never sees a half-written file, a crash never loses the old one) and
the readers of inputs from the wild (JSON, PLY) that turn every way a file can be unusable into a
:class:`SplatError`, with limits so that a hostile or damaged file costs no more than its size.

Every output of the project (scenes, checkpoints, assets, metrics) goes through these helpers: write to
a temporary name in the same folder, flush and fsync, then ``os.replace`` onto the final name. A write
that fails because the disk is full is a :class:`SplatError` naming the file, and leaves the previous
version of the file in place.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from splat.errors import SplatError

if TYPE_CHECKING:
    from plyfile import PlyData

MAX_JSON_BYTES = 64 * 2**20
"""Largest JSON input read (the shipped programs and scenes are below 100 KB)."""
MAX_JSON_DEPTH = 100
"""Deepest nesting of JSON arrays/objects accepted (the project's formats nest at most 7 deep)."""
MAX_PLY_HEADER_BYTES = 64 * 2**10
"""Largest PLY header read before ``end_header``."""
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary file keeps ``path``'s suffix, so writers that pick a format from the suffix
    (imageio, torch.save, trimesh) behave the same. On error the temporary file is removed and
    ``path`` is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as err:
        if err.errno in DISK_FULL_ERRNOS:
            raise _disk_full(path, err) from None
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the mode a plain open() would (0666 minus umask).
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException as err:
        full = _is_disk_full(err, tmp_path.parent)
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if full:
            raise _disk_full(path, err) from None
        raise


def _is_disk_full(err: BaseException, folder: Path) -> bool:
    """Did writing into ``folder`` fail because its file system is full?

    An OSError says so by its errno. Writers that wrap the OS error in their own (torch.save raises a
    RuntimeError from its zip writer) are recognised by the file system having no block left.
    """
    if isinstance(err, OSError):
        return err.errno in DISK_FULL_ERRNOS
    if not isinstance(err, Exception):  # KeyboardInterrupt, SystemExit: not a write failure
        return False
    try:
        return os.statvfs(folder).f_bavail == 0
    except (OSError, AttributeError):  # no statvfs (Windows) or the folder is gone
        return False


def _disk_full(path: Path, err: BaseException) -> SplatError:
    reason = os.strerror(err.errno) if isinstance(err, OSError) and err.errno else "no space left on device"
    return SplatError(f"cannot write ({reason.lower()}); the file is left as it was", file=path)


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


def read_json(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse the JSON file at ``path``; every way it can be unusable is a :class:`SplatError` naming it.

    Loading JSON never executes code. Files above ``max_bytes`` are refused before they are read, and
    documents nested deeper than :data:`MAX_JSON_DEPTH` after (see :func:`parse_json`). Callers
    validate the structure themselves.
    """
    path = Path(path)
    if not path.is_file():
        raise SplatError("cannot read: file not found", file=path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SplatError(f"cannot read: {size} bytes, more than the {max_bytes} a JSON input may have",
                             file=path)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SplatError(f"cannot read: {err}", file=path) from None
    return parse_json(text, file=path)


def parse_json(text: str, *, file: str | os.PathLike | None = None, field: str | None = None) -> Any:
    """Parse JSON ``text`` (a file's or a command-line argument's) into plain Python values.

    Raises :class:`SplatError` (naming ``file`` / ``field``) for malformed JSON, numbers Python refuses
    (integers of more than 4300 digits) and nesting deeper than :data:`MAX_JSON_DEPTH`, which later
    recursive code could not walk. ``NaN`` and ``Infinity`` are accepted (the project writes them for
    undefined metrics); the readers of each format reject them where they do not belong.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise SplatError(f"malformed JSON, not valid JSON at line {err.lineno} column {err.colno}: {err.msg}",
                         file=file, field=field) from None
    except RecursionError:
        raise SplatError(f"malformed JSON, nested deeper than {MAX_JSON_DEPTH} levels", file=file,
                         field=field) from None
    except (ValueError, MemoryError) as err:  # e.g. an integer literal beyond Python's digit limit
        raise SplatError(f"malformed JSON: {err}", file=file, field=field) from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise SplatError(f"malformed JSON, nested deeper than {MAX_JSON_DEPTH} levels", file=file, field=field)
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1), without recursion."""
    depth, stack = 0, [(value, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth = max(depth, d)
        if d <= MAX_JSON_DEPTH:  # deeper is already too deep: stop counting
            stack.extend((c, d + 1) for c in children)
    return depth


# --- PLY -----------------------------------------------------------------------------------------------

_PLY_SIZES = {"char": 1, "uchar": 1, "short": 2, "ushort": 2, "int": 4, "uint": 4, "float": 4, "double": 8,
              "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "float32": 4,
              "float64": 8}
_PLY_FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")


def read_ply(path: str | os.PathLike) -> "PlyData":
    """Parse the PLY file at ``path`` (plyfile) after checking its header against the file's size.

    The header must end (``end_header``) within :data:`MAX_PLY_HEADER_BYTES`, name a known format and
    property types, and its element counts must fit in the body: each element takes at least its
    scalar properties' bytes plus its lists' length prefixes (binary) or two bytes per property
    (ASCII). A header that claims more than the file can hold is refused before anything is
    allocated, so no file costs more memory than a small multiple of its size. Every other way
    plyfile fails (truncated body, malformed numbers) is a :class:`SplatError` naming the file too.
    Callers check the elements and properties they need (:func:`ply_scalar_property`).
    """
    from plyfile import PlyData

    path = Path(path)
    check_ply_header(path)
    try:
        return PlyData.read(str(path))
    except MemoryError:
        raise _bad_ply("it does not fit in memory", path) from None
    except Exception as err:  # plyfile raises several types for malformed headers and bodies
        raise _bad_ply(str(err), path) from None


def check_ply_header(path: str | os.PathLike) -> None:
    """Check the header of the PLY file at ``path`` against its size (see :func:`read_ply`), reading only it.

    For PLY files parsed by other libraries (trimesh): a header that claims more than the file holds
    is refused before they allocate for it.
    """
    path = Path(path)
    if not path.is_file():
        raise SplatError("cannot read: file not found", file=path)
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_PLY_HEADER_BYTES + 16)
        size = path.stat().st_size
    except OSError as err:
        raise SplatError(f"cannot read: {err}", file=path) from None
    _check_ply_header(head, size, path)


def _bad_ply(reason: str, path: Path, field: str | None = None) -> SplatError:
    return SplatError(f"cannot read: not a readable PLY file ({reason})", file=path, field=field)


def _check_ply_header(head: bytes, size: int, path: Path) -> None:
    if not (head.startswith(b"ply\n") or head.startswith(b"ply\r\n")):
        raise _bad_ply("it does not start with 'ply'", path)
    end = head.find(b"end_header")
    if end < 0 or end > MAX_PLY_HEADER_BYTES:
        raise _bad_ply(f"no 'end_header' in its first {MAX_PLY_HEADER_BYTES} bytes", path)
    body_start = head.find(b"\n", end)
    body = size - (body_start + 1 if body_start >= 0 else len(head))
    try:
        lines = head[:end].decode("ascii").splitlines()[1:]
    except UnicodeDecodeError:
        raise _bad_ply("its header is not ASCII", path) from None
    fmt = None
    elements: list[list] = []  # [name, count, min bytes per element (binary), number of properties]
    for line in lines:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            if len(words) != 3 or words[1] not in _PLY_FORMATS:
                raise _bad_ply(f"unknown format line {line.strip()!r}", path, "format")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise _bad_ply(f"bad element line {line.strip()!r}", path, "element")
            elements.append([words[1], int(words[2]), 0, 0])
        elif words[0] == "property":
            if not elements:
                raise _bad_ply("a property before any element", path)
            el = elements[-1]
            if len(words) == 5 and words[1] == "list" and words[2] in _PLY_SIZES and words[3] in _PLY_SIZES:
                el[2] += _PLY_SIZES[words[2]]  # at least the length prefix (an empty list)
            elif len(words) == 3 and words[1] in _PLY_SIZES:
                el[2] += _PLY_SIZES[words[1]]
            else:
                raise _bad_ply(f"bad property line {line.strip()!r}", path, el[0])
            el[3] += 1
        else:
            raise _bad_ply(f"unknown header line {line.strip()!r}", path)
    if fmt is None:
        raise _bad_ply("no format line", path, "format")
    need = 0
    for name, count, min_bytes, n_props in elements:
        if count and not n_props:  # plyfile would loop over the entries for ever, reading no bytes
            raise _bad_ply(f"element '{name}' has {count} entries but no properties", path, name)
        per = min_bytes if fmt != "ascii" else 2 * n_props  # ASCII "0 0 0\n": a digit and a separator each
        need += count * per
        if need > body:
            raise SplatError(f"cannot read: the header claims {count} '{name}' elements, which need at least "
                             f"{count * per} bytes, but the file holds {body} bytes after its header (truncated?)",
                             file=path, field=name)


def ply_scalar_property(ply: "PlyData", element: str, name: str, path: str | os.PathLike):
    """The values of scalar property ``name`` of ``element`` as a numpy array (SplatError if absent or a list)."""
    import numpy as np

    if element not in [e.name for e in ply.elements]:
        raise SplatError(f"no '{element}' element", file=path, field=element)
    data = ply[element].data
    if name not in (data.dtype.names or ()):
        raise SplatError("missing property", file=path, field=f"{element}.{name}")
    values = data[name]
    if values.dtype == object:
        raise SplatError("is a list property, expected a number per element", file=path, field=f"{element}.{name}")
    return np.asarray(values)
