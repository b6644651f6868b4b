"""ParamSpace: formats, validation, activation, normalisation, sampling (budget: < 5 s)."""

from __future__ import annotations

import json

import pytest
import torch

from splat.errors import SplatError
from splat.params import Condition, ParamSpace
from tests.conftest import BLENDER_PROGRAMS


def own_space() -> dict:
    return {"format": "splat.params/1", "params": [
        {"name": "Legs Type", "type": "int", "range": [0, 2], "default": 1, "labels": ["a", "b", "c"]},
        {"name": "Has Middle", "type": "bool", "default": False, "requires": [["Legs Type", 0]]},
        {"name": "Offset", "type": "float", "range": [0.0, 0.5], "default": 0.1,
         "requires": [["Legs Type", 0], "Has Middle"]},
        {"name": "Height", "type": "float", "range": [0.3, 0.9], "default": 0.5},
    ]}


def test_third_party_spaces_flatten_and_default():
    s = ParamSpace.load(BLENDER_PROGRAMS / "sp_chair.json")
    assert len(s) == 20 and s["Seat Height"].group == "Seat"
    assert s["Middle Offset"].requires == (Condition("Legs Type", 0), Condition("Has Middle Support", True))
    assert s["Seat Height"].default == pytest.approx(0.6) and s["Legs Type"].default == 0
    c = ParamSpace.load(BLENDER_PROGRAMS / "sp_cabinet.json")
    assert c["Has Back"].requires == (Condition("Has Drawers", False),)
    assert c.active({"Has Drawers": True})["Number of Dividing Boards"] is False
    assert c.active({"Has Drawers": False})["Number of Dividing Boards"] is True


def test_activation_is_conjunctive_and_transitive():
    s = ParamSpace.load(BLENDER_PROGRAMS / "sp_chair.json")
    assert s.active({"Legs Type": 0, "Has Middle Support": True})["Middle Offset"]
    assert not s.active({"Legs Type": 0, "Has Middle Support": False})["Middle Offset"]
    assert not s.active({"Legs Type": 1, "Has Middle Support": True})["Middle Offset"]
    t = ParamSpace.load(BLENDER_PROGRAMS / "sp_table.json")
    # Mid Board Z Scale needs Has Mid Board, which is only active for Legs Type 2
    assert not t.active({"Legs Type": 0, "Has Mid Board": True})["Mid Board Z Scale"]
    assert t.active({"Legs Type": 2, "Has Mid Board": True})["Mid Board Z Scale"]


def test_active_batch_matches_single():
    s = ParamSpace.load(BLENDER_PROGRAMS / "sp_chair.json")
    b = s.sample(32, torch.Generator().manual_seed(0))
    ab = s.active_batch(b, 32)
    for i, row in enumerate(s.unbatch(b)):
        assert {k: bool(v[i]) for k, v in ab.items()} == s.active(row)


def test_own_format_roundtrip(tmp_path):
    s = ParamSpace.from_dict(own_space())
    assert s["Legs Type"].labels == ("a", "b", "c") and s.continuous == ("Offset", "Height")
    assert s.discrete == ("Legs Type", "Has Middle")
    (tmp_path / "p.json").write_text(json.dumps(s.to_dict()))
    assert ParamSpace.load(tmp_path / "p.json") == s


def test_validate():
    s = ParamSpace.from_dict(own_space())
    assert s.validate({"Height": 0.9}) == {"Legs Type": 1, "Has Middle": False, "Offset": 0.1, "Height": 0.9}
    assert s.validate({"Legs Type": 2.0})["Legs Type"] == 2
    cases = [({"Height": 1.0}, "Height", "outside the range"), ({"Legs Type": 3}, "Legs Type", "outside"),
             ({"Legs Type": 1.5}, "Legs Type", "integer"), ({"Has Middle": 1}, "Has Middle", "true or false"),
             ({"Height": float("nan")}, "Height", "finite"), ({"Width": 1.0}, "Width", "unknown parameter")]
    for a, fld, msg in cases:
        with pytest.raises(SplatError, match=msg) as e:
            s.validate(a, file="params.json")
        assert e.value.field == fld and e.value.file == "params.json"
    b = s.sample(4, torch.Generator().manual_seed(0))
    assert s.validate_batch(b) == 4
    with pytest.raises(SplatError, match="batch element 1"):
        s.validate_batch({"Height": torch.tensor([0.5, 2.0])})
    with pytest.raises(SplatError, match="bool tensor"):
        s.validate_batch({"Has Middle": torch.tensor([1, 0])})


@pytest.mark.parametrize("mutate,fld,msg", [
    (lambda d: d["params"][0].update(type="double"), "params[0].type", "unknown type"),
    (lambda d: d["params"][3].update(range=[1.0, 0.0]), "params[3].range", "low"),
    (lambda d: d["params"][3].update(range=[0.0]), "params[3].range", "range"),
    (lambda d: d["params"][3].update(default=2.0), "params[3].default", "outside"),
    (lambda d: d["params"][0].update(labels=["a"]), "params[0].labels", "labels"),
    (lambda d: d["params"][2].update(requires=["Ghost"]), "params[2].requires", "unknown parameter"),
    (lambda d: d["params"][2].update(requires=[["Height", 1]]), "params[2].requires", "float"),
    (lambda d: d["params"][2].update(requires=[["Has Middle", 1]]), "params[2].requires", "true/false"),
    (lambda d: d["params"][2].update(requires=[7]), "params[2].requires[0]", "bad condition"),
    (lambda d: d["params"].append(dict(d["params"][3])), "params[4].name", "duplicate"),
    (lambda d: d["params"][0].update(requires=["Has Middle"]), "params", "cycle"),
])
def test_bad_files(mutate, fld, msg):
    d = own_space()
    mutate(d)
    with pytest.raises(SplatError, match=msg) as e:
        ParamSpace.from_dict(d, file="p.json")
    assert e.value.field == fld and e.value.file == "p.json"


def test_unreadable_files(tmp_path):
    with pytest.raises(SplatError, match="cannot read"):
        ParamSpace.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SplatError, match="not valid JSON"):
        ParamSpace.load(tmp_path / "bad.json")
    with pytest.raises(SplatError, match="format"):
        ParamSpace.from_dict({"params": []})


def test_normalize_roundtrip_and_sampling():
    s = ParamSpace.from_dict(own_space())
    b1 = s.sample(500, torch.Generator().manual_seed(3))
    b2 = s.sample(500, torch.Generator().manual_seed(3))
    assert all(torch.equal(b1[k], b2[k]) for k in b1)  # the generator decides, not global state
    assert s.validate_batch(b1) == 500
    assert set(b1["Legs Type"].tolist()) == {0, 1, 2} and b1["Has Middle"].any() and not b1["Has Middle"].all()
    n = s.normalize(b1)
    assert 0.0 <= float(n["Height"].min()) and float(n["Height"].max()) <= 1.0
    back = s.denormalize(n)
    torch.testing.assert_close(back["Height"], b1["Height"])
    assert torch.equal(back["Legs Type"], b1["Legs Type"])
    assert s.normalize({"Height": torch.tensor([0.3, 0.9], dtype=torch.float64)})["Height"].tolist() == [0.0, 1.0]


def test_to_batch_and_unbatch():
    s = ParamSpace.from_dict(own_space())
    rows = [{"Legs Type": 0, "Has Middle": True}, {"Height": 0.8}]
    b = s.to_batch(rows, dtype=torch.float64)
    assert b["Legs Type"].dtype == torch.long and b["Has Middle"].dtype == torch.bool
    assert b["Height"].dtype == torch.float64
    assert s.unbatch(b)[1] == {"Legs Type": 1, "Has Middle": False, "Offset": 0.1, "Height": 0.8}


def test_fuzzed_spaces_raise_only_splat_error():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                     st.sampled_from(["float", "int", "bool", "nested", "Legs Type", "splat.params/1"]))
    js = st.recursive(leaf, lambda c: st.one_of(st.lists(c, max_size=3),
                                                st.dictionaries(st.sampled_from(
                                                    ["format", "params", "name", "type", "range", "default",
                                                     "requires", "or_dependencies", "not_dependencies", "labels",
                                                     "group", "Legs Type", "x"]), c, max_size=4)), max_leaves=12)

    @settings(max_examples=80, deadline=None)
    @given(js)
    def run(obj):
        try:
            s = ParamSpace.from_dict(obj)
        except SplatError:
            return
        s.active(s.defaults())
        s.sample(2, torch.Generator().manual_seed(0))

    run()
