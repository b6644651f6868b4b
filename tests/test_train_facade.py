"""The facade check (splat.train.facade): the photos lay out a program's front, which the depth cannot.

Uses the synthetic cabinet of tests/test_train_edges.py (drawer fronts alternately shaded, black
handles, exact depth). Budget: ~10 s.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from splat.library import facade_params
from splat.maths import placement_matrix
from splat.search import SearchSettings
from splat.search.refine import RefineSettings
from splat.train.facade import Facade, candidates, facade_check
from test_train_edges import TRUE_YAW, TRUTH, _scene

F64 = torch.float64


@pytest.fixture(scope="module")
def cabinet_scene():
    return _scene(n=16)


def _placement():
    return placement_matrix(torch.zeros(3, dtype=F64), torch.tensor(TRUE_YAW, dtype=F64), torch.tensor(0.0, dtype=F64))


def _settings():
    s = dataclasses.replace(SearchSettings(), polish=RefineSettings(steps=5, lr=0.01, samples=512),
                            compare_samples=2048, final_target_points=2048)
    return dataclasses.replace(s, placement=dataclasses.replace(s.placement, floor=0.0))


def test_library_declares_the_fronts_of_storage_programs():
    assert facade_params("cabinet") == ("Interior", "Has Doors", "Drawer Count", "Top Drawer Ratio", "Handle Height")
    assert "Drawer Rows" in facade_params("sideboard")
    assert facade_params("chair") == () and facade_params("not a program") == ()


def test_candidates_enumerate_each_layout_once(cabinet_scene):
    program, _ = cabinet_scene
    cands = candidates(program, program.space.validate(TRUTH), list(facade_params("cabinet")))
    # shelves: doors or not (drawer parameters inactive); drawers: 6 counts x 6 ratios x 6 handle heights
    assert len(cands) == 2 + 6 * 6 * 6
    assert sum(c["Interior"] == 0 for c in cands) == 2
    assert all(c["Width"] == TRUTH["Width"] for c in cands)  # only the front's parameters move


def test_facade_check_counts_the_drawers_the_photos_show(cabinet_scene):
    program, data = cabinet_scene
    wrong = {**TRUTH, "Drawer Count": 1}  # what a depth-only search returns: one front, flush
    chosen, info = facade_check(program, wrong, _placement(), data, _settings(), names=list(facade_params("cabinet")))
    assert info["views"] >= 3
    assert chosen["Interior"] == 1 and chosen["Drawer Count"] == TRUTH["Drawer Count"], info
    assert info["score"] > info["winner_score"] + 0.05
    # the truth's own layout scores at least as well as any other count
    facade = Facade(program, program.space.validate(TRUTH), _placement(), data)
    truth = facade.score(facade.predicted(program, program.space.validate({**TRUTH, "Handle Height": 0.5})))
    for n in (1, 2, 3, 5, 6):
        other = facade.score(facade.predicted(program, program.space.validate({**TRUTH, "Drawer Count": n})))
        assert truth > other, (n, truth, other)


def test_a_front_the_photos_do_not_show_keeps_the_winner(cabinet_scene):
    program, data = cabinet_scene
    flat = dataclasses.replace(data, images=torch.full_like(data.images, 0.5))  # one colour everywhere
    wrong = {**TRUTH, "Drawer Count": 1}
    chosen, info = facade_check(program, wrong, _placement(), flat, _settings(), names=list(facade_params("cabinet")))
    assert info["chosen"] == "winner" and chosen == program.space.validate(wrong)


def test_too_few_views_facing_the_front_skip_the_check(cabinet_scene):
    program, data = cabinet_scene
    wrong = {**TRUTH, "Drawer Count": 1}
    chosen, info = facade_check(program, wrong, _placement(), data, _settings(), names=list(facade_params("cabinet")),
                                min_views=50)
    assert info["chosen"].startswith("winner (skipped") and chosen["Drawer Count"] == 1
