"""PLY and JSON inputs from the wild: one SplatError naming the file, never a crash, hang or huge allocation.

The readers (splat.io.read_json / parse_json / read_ply, and through read_ply both
splat.export.read_splats_ply and splat.data.read_ply_points) get hand-made bad files, then fuzzed
ones (hypothesis): random bytes, headers with random elements, properties and counts (up to 10^18)
over random or truncated bodies. Each example must end in a result or a SplatError, within seconds,
allocating at most a few MB (numpy's allocations are traced by tracemalloc).

Budget: ~15 s.
"""

from __future__ import annotations

import json
import math
import struct
import time
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splat.data import read_ply_points
from splat.errors import SplatError
from splat.export import SplatCloud, read_splats_ply, write_splats_ply
from splat.io import MAX_JSON_DEPTH, MAX_PLY_HEADER_BYTES, check_ply_header, parse_json, read_json

PEAK_BYTES = 16 * 2**20
"""Most memory one fuzzed read may allocate (the files are at most a few KB)."""
EXAMPLE_S = 10.0
FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def bounded(read, path):
    """``read(path)``: its value, or the SplatError it raised; fails on anything else, or if slow or greedy."""
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        return read(path)
    except SplatError as err:
        assert err.file is not None and str(path) in str(err)
        return err
    finally:
        seconds = time.monotonic() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert seconds < EXAMPLE_S, f"{read.__name__} took {seconds:.1f} s"
        assert peak < PEAK_BYTES, f"{read.__name__} allocated {peak / 2**20:.0f} MB"


# --- JSON ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, says", [
    ("[" * 200_000, "nested deeper than"),  # json's C parser would raise RecursionError
    ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "nested deeper than"),  # parses; walkers would not
    ("1" * 5000, "digits"),  # Python refuses int literals above 4300 digits (ValueError)
    ('{"a": 1', "malformed JSON"),
    ("", "malformed JSON"),
])
def test_bad_json_is_one_error(text, says, tmp_path):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(SplatError, match=says) as err:
        read_json(path)
    assert err.value.file == str(path)


def test_json_limits(tmp_path):
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(ok) is not None
    assert parse_json('{"psnr": NaN}')["psnr"] != parse_json('{"psnr": NaN}')["psnr"]  # written for undefined metrics
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"a": "x" * 5000}))
    with pytest.raises(SplatError, match="more than the 1000"):
        read_json(big, max_bytes=1000)  # refused before reading
    (tmp_path / "bad.json").write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(SplatError, match="cannot read"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(SplatError, match="not found"):
        read_json(tmp_path)  # a folder
    with pytest.raises(SplatError, match="--params: malformed JSON"):
        parse_json("{", field="--params")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=30)


@FUZZ
@given(data=st.binary(max_size=3000))
def test_fuzz_json_random_bytes(data, tmp_path):
    path = tmp_path / "fuzz.json"
    path.write_bytes(data)
    bounded(read_json, path)


@FUZZ
@given(value=json_values, cut=st.floats(0, 1), depth=st.integers(0, 300))
def test_fuzz_json_truncated_and_nested(value, cut, depth, tmp_path):
    text = "[" * depth + json.dumps(value) + "]" * depth
    path = tmp_path / "fuzz.json"
    path.write_text(text[: int(len(text) * cut)] if cut < 1 else text)
    out = bounded(read_json, path)
    if cut == 1 and depth + 1 <= MAX_JSON_DEPTH:
        assert not isinstance(out, SplatError)


# --- PLY -----------------------------------------------------------------------------------------------

SPLAT_PROPS = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1",
               "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
READERS = [read_splats_ply, read_ply_points]


def ply_bytes(fmt: str, elements: list, body: bytes) -> bytes:
    """A PLY file: ``elements`` = [(name, count, [(type, name) | ("list", len_type, type, name)])]."""
    lines = ["ply", f"format {fmt} 1.0"]
    for name, count, props in elements:
        lines.append(f"element {name} {count}")
        lines += ["property " + " ".join(p) for p in props]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii") + body


def splat_body(values: np.ndarray) -> bytes:  # [N, 17] -> binary little endian float32
    return values.astype("<f4").tobytes()


def good_splats(n: int = 3) -> np.ndarray:
    v = np.zeros((n, len(SPLAT_PROPS)), np.float32)
    v[:, SPLAT_PROPS.index("rot_0")] = 1.0
    return v


@pytest.mark.parametrize("name, data, says", [
    ("huge count, binary", ply_bytes("binary_little_endian", [("vertex", 10**12, [("float", p) for p in SPLAT_PROPS])],
                                     splat_body(good_splats(2))), "claims 1000000000000 'vertex' elements"),
    ("huge count, ascii", ply_bytes("ascii", [("vertex", 10**15, [("float", p) for p in "xyz"])], b"1 2 3\n"),
     "claims"),
    ("huge face list count", ply_bytes("binary_little_endian",
                                       [("vertex", 1, [("float", p) for p in "xyz"]),
                                        ("face", 10**9, [("list", "uchar", "int", "vertex_indices")])],
                                       struct.pack("<3f", 0, 0, 0) + b"\x03" + struct.pack("<3i", 0, 0, 0)), "'face'"),
    ("truncated body", ply_bytes("binary_little_endian", [("vertex", 3, [("float", p) for p in SPLAT_PROPS])],
                                 splat_body(good_splats(3))[:-5]), "claims 3 'vertex' elements"),
    ("no properties", ply_bytes("binary_little_endian", [("vertex", 10**18, [])], b""), "no properties"),
    ("no end_header", b"ply\nformat ascii 1.0\n" + b"comment " * (MAX_PLY_HEADER_BYTES // 4), "end_header"),
    ("not a PLY", b"\x00\x01 solid STL\n", "does not start with 'ply'"),
    ("unknown type", ply_bytes("ascii", [("vertex", 1, [("float128", "x")])], b"1\n"), "bad property line"),
    ("bad format", ply_bytes("binary_middle_endian", [("vertex", 0, [("float", "x")])], b""), "unknown format"),
    ("ascii garbage", ply_bytes("ascii", [("vertex", 2, [("float", p) for p in "xyz"])], b"1 2 3\n4 five 6\n"),
     "not a readable PLY file"),
])
@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
def test_bad_ply_is_one_error(name, data, says, reader, tmp_path):
    path = tmp_path / "bad.ply"
    path.write_bytes(data)
    out = bounded(reader, path)
    assert isinstance(out, SplatError), name
    assert says in str(out), str(out)


@pytest.mark.parametrize("bad, field", [(math.nan, "vertex.x/y/z"), (math.inf, "vertex.x/y/z"),
                                        (-math.inf, "vertex.opacity")])
def test_non_finite_values_are_one_error(bad, field, tmp_path):
    v = good_splats(4)
    v[2, SPLAT_PROPS.index("x" if field == "vertex.x/y/z" else "opacity")] = bad
    path = tmp_path / "nan.ply"
    path.write_bytes(ply_bytes("binary_little_endian", [("vertex", 4, [("float", p) for p in SPLAT_PROPS])],
                               splat_body(v)))
    with pytest.raises(SplatError, match="non-finite") as err:
        read_splats_ply(path)
    assert err.value.field == field
    if field == "vertex.x/y/z":
        with pytest.raises(SplatError, match="NaN or infinite"):
            read_ply_points(path)


@pytest.mark.parametrize("props, says", [
    ([("float", p) for p in SPLAT_PROPS if p != "f_dc_1"], "vertex.f_dc_1: missing property"),
    ([("float", p) for p in SPLAT_PROPS] + [("float", "f_rest_0")], "f_rest properties"),
    ([("list", "uchar", "float", "x")] + [("float", p) for p in SPLAT_PROPS[1:]], "list property"),
])
def test_wrong_property_sets_are_one_error(props, says, tmp_path):
    n = 2
    body = b""
    for _ in range(n):
        for p in props:
            body += (b"\x01" + struct.pack("<f", 0.0)) if p[0] == "list" else struct.pack("<f", 1.0)
    path = tmp_path / "props.ply"
    path.write_bytes(ply_bytes("binary_little_endian", [("vertex", n, props)], body))
    with pytest.raises(SplatError, match=says):
        read_splats_ply(path)
    if props[0][0] == "list":
        with pytest.raises(SplatError, match="list property"):
            read_ply_points(path)


def test_valid_files_still_read(tmp_path):
    cloud = SplatCloud(means=torch.zeros(5, 3), sh=torch.zeros(5, 4, 3), opacity_logits=torch.zeros(5),
                       log_scales=torch.zeros(5, 3), quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(5, 1))
    write_splats_ply(tmp_path / "s.ply", cloud)
    assert read_splats_ply(tmp_path / "s.ply").num_gaussians == 5
    write_splats_ply(tmp_path / "empty.ply", SplatCloud(*(t[:0] for t in cloud)))  # 0 Gaussians: a crash before
    assert read_splats_ply(tmp_path / "empty.ply").num_gaussians == 0
    assert read_ply_points(tmp_path / "s.ply").shape == (5, 3)
    ascii_path = tmp_path / "a.ply"
    ascii_path.write_bytes(ply_bytes("ascii", [("vertex", 2, [("float", p) for p in "xyz"])], b"1 2 3\n4 5 6\n"))
    assert read_ply_points(ascii_path).tolist() == [[1, 2, 3], [4, 5, 6]]
    check_ply_header(ascii_path)


def test_ground_truth_mesh_from_the_wild_is_one_error(tmp_path):
    from splat.evaluate import load_gt_mesh

    lying = tmp_path / "gt_mesh.ply"
    lying.write_bytes(ply_bytes("binary_little_endian", [("vertex", 10**10, [("float", p) for p in "xyz"]),
                                                          ("face", 1, [("list", "uchar", "int", "vertex_indices")])],
                                b"\x00" * 40))
    with pytest.raises(SplatError, match="claims"):
        load_gt_mesh(lying)
    junk = tmp_path / "gt_mesh.obj"
    junk.write_text("v 0 0 0\nf 1 2 3\n")  # a face naming vertices that do not exist
    with pytest.raises(SplatError, match="ground-truth mesh"):
        load_gt_mesh(junk)


# fuzzed headers: random formats, elements, properties and counts over random or real bodies
prop_types = st.sampled_from(["char", "uchar", "short", "int", "uint", "float", "double", "float32", "int8"])
scalar_prop = st.tuples(prop_types, st.sampled_from(SPLAT_PROPS + ["f_rest_0", "red", "vertex_indices"]))
list_prop = st.tuples(st.just("list"), st.sampled_from(["uchar", "int"]), prop_types,
                      st.sampled_from(["vertex_indices", "x"]))
counts = st.one_of(st.integers(0, 6), st.sampled_from([10**3, 10**6, 2**31, 10**12, 10**18]))
elements = st.lists(st.tuples(st.sampled_from(["vertex", "face", "edge"]), counts,
                              st.lists(st.one_of(scalar_prop, list_prop), max_size=6)), max_size=3)
formats = st.sampled_from(["ascii", "binary_little_endian", "binary_big_endian"])


@FUZZ
@given(fmt=formats, els=elements, body=st.binary(max_size=600))
def test_fuzz_ply_headers_and_bodies(fmt, els, body, tmp_path):
    path = tmp_path / "fuzz.ply"
    path.write_bytes(ply_bytes(fmt, els, body))
    for reader in READERS:
        bounded(reader, path)


@FUZZ
@given(n=st.integers(0, 5), cut=st.integers(0, 400), flip=st.integers(0, 10**6), value=st.sampled_from(
    [0.0, 1.0, math.nan, math.inf, -math.inf, 1e38]))
def test_fuzz_ply_real_splat_files_damaged(n, cut, flip, value, tmp_path):
    v = good_splats(n)
    if n:
        v.flat[flip % v.size] = value
    data = bytearray(ply_bytes("binary_little_endian", [("vertex", n, [("float", p) for p in SPLAT_PROPS])],
                               splat_body(v)))
    if cut and cut < len(data):
        del data[-cut:]
    path = tmp_path / "fuzz.ply"
    path.write_bytes(bytes(data))
    for reader in READERS:
        bounded(reader, path)


@FUZZ
@given(data=st.binary(max_size=2000))
def test_fuzz_ply_random_bytes(data, tmp_path):
    path = tmp_path / "fuzz.ply"
    path.write_bytes(b"ply\n" + data)
    for reader in READERS:
        bounded(reader, path)
