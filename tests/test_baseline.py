"""The unconstrained 3DGS baseline (splat.train.baseline) on the tiny synthetic stool scene.

It trains through JointTrainer with one identity pseudo-primitive, needs no program, stays within the
Gaussian budget, lowers its loss, and is scored on the test split by the procedural evaluation's own
image-scoring function. Budget: ~30 s on 2 cores.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from splat import presets
from splat.config import TrainConfig
from splat.gaussians import InitSettings, init_point_gaussians
from splat.train.baseline import baseline_config, train_baseline, world_frame_program
from train_fixtures import make_stool_scene

BUDGET = 420


@pytest.fixture(scope="module")
def bare_stool(tmp_path_factory):
    """The stool scene without its program file: the procedural trainer cannot run on it."""
    root = tmp_path_factory.mktemp("stool_bare")
    make_stool_scene(root, n_train=5, n_test=2, size=32, num_gaussians=1500)
    (root / "stool.json").unlink()
    return root


def _cfg(scene, **kw) -> TrainConfig:
    base = presets.smoke(TrainConfig(scene=str(scene), threads=1))
    r = dataclasses.replace
    cfg = r(base, optim=r(base.optim, steps=60),
            # a low threshold so densification wants more than the budget allows
            densify=r(base.densify, start=5, stop=50, every=5, grad_threshold=1e-6, max_gaussians=BUDGET),
            eval=r(base.eval, save_renders=True))
    return r(cfg, **kw)


@pytest.fixture(scope="module")
def baseline_run(bare_stool, tmp_path_factory):
    import splat.evaluate as ev

    calls = []
    original = ev._image_scores

    def spy(world, scene, view_settings, renders_dir):
        out = original(world, scene, view_settings, renders_dir)
        calls.append((world, scene, out))
        return out

    steps = []
    out = tmp_path_factory.mktemp("baseline_out")
    mp = pytest.MonkeyPatch()
    mp.setattr(ev, "_image_scores", spy)
    try:
        res = train_baseline(_cfg(bare_stool), out_dir=out, on_step=lambda tr, s: steps.append((tr, s)))
    finally:
        mp.undo()
    return res, calls, steps, out


def test_program_for_the_bare_scene_is_an_error(bare_stool):
    """The fixture really has no program: the procedural path cannot resolve one."""
    from splat.data import load_scene
    from splat.errors import SplatError
    from splat.workspace import program_for

    with pytest.raises(SplatError):
        program_for(load_scene(bare_stool))


def test_baseline_trains_without_a_program_and_lowers_its_loss(baseline_run):
    res, _, steps, out = baseline_run
    assert res.steps == 60 and len(steps) == 60
    assert math.isfinite(res.first_loss) and res.last_loss < 0.7 * res.first_loss
    for _, s in steps:  # no program terms
        assert s.chamfer == 0.0 and s.surface == 0.0
    trainer = steps[-1][0]
    assert trainer.cfg.optim.lr_program == 0.0 and trainer.cfg.loss.chamfer == 0.0
    assert trainer.fit.program.name == "world_frame" and trainer.fit.float_names == ()
    # one identity part: the world Gaussians are the canonical ones
    g = trainer.gaussians
    world = g.pushforward(trainer.fit.geometry())
    torch.testing.assert_close(world.means, g.params["means"])
    torch.testing.assert_close(world.covars, g.canonical_covars())
    m = json.loads((out / "baseline_metrics.json").read_text())
    assert m["format"] == "splat.baseline/1" and m["num_gaussians"] == res.num_gaussians


def test_baseline_keeps_the_gaussian_budget(baseline_run):
    res, _, steps, _ = baseline_run
    counts = [s.num_gaussians for _, s in steps]
    assert res.num_init <= 300  # gaussians.num_init of the smoke config
    assert max(counts) <= BUDGET and res.num_gaussians <= BUDGET
    assert max(counts) > res.num_init  # densification ran and was stopped by the budget, not idle


def test_baseline_is_scored_on_the_test_split_by_the_evaluation_function(baseline_run, bare_stool):
    res, calls, _, out = baseline_run
    assert len(calls) == 1
    world, scene, scores = calls[0]
    assert scores is res.test  # the very ImageScores of splat.evaluate, nothing recomputed here
    test_names = [scene.names[i] for i in scene.split["test"]]
    assert list(res.test.per_view) == test_names and res.test.num_views == 2
    train_names = {scene.names[i] for i in scene.split["train"]}
    assert not train_names & set(res.test.per_view)
    assert np.isfinite(res.test.psnr) and res.test.psnr > 15.0
    assert len(world.means) == res.num_gaussians
    assert sorted(p.name for p in (out / "renders").iterdir()) == sorted(
        [f"{n}.png" for n in test_names] + [f"{n}_target.png" for n in test_names])


def test_baseline_config_changes_only_the_program_terms():
    cfg = presets.preset("tum_cabinet")
    b = baseline_config(cfg)
    assert (b.optim.lr_program, b.optim.lr_placement, b.loss.chamfer, b.loss.surface) == (0.0, 0.0, 0.0, 0.0)
    r = dataclasses.replace
    back = r(b, optim=r(b.optim, lr_program=cfg.optim.lr_program, lr_placement=cfg.optim.lr_placement),
             loss=r(b.loss, chamfer=cfg.loss.chamfer, surface=cfg.loss.surface))
    assert back == cfg
    assert b.optim.lr_exposure == cfg.optim.lr_exposure > 0 and b.loss.photometric_region == "mask"


def test_point_init_is_3dgs_like():
    """A grid of spacing h: interior points have their 3 nearest neighbours at h, so sigma = h."""
    h = 0.02
    ax = torch.arange(6, dtype=torch.float64) * h
    pts = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    key = world_frame_program().evaluate({}).parts[0].key
    g = init_point_gaussians(pts, key, InitSettings(init_opacity=0.1, sh_degree=1))
    assert len(g) == pts.shape[0] and g.keys == (key,) and bool((g.prim == 0).all())
    torch.testing.assert_close(g.params["log_scales"].exp(), torch.full((216, 3), h, dtype=torch.float32))
    torch.testing.assert_close(torch.sigmoid(g.params["opacity_logits"]), torch.full((216,), 0.1))
    assert g.params["shN"].shape == (216, 3, 3) and not g.params["shN"].any()
    with pytest.raises(ValueError, match="points"):
        init_point_gaussians(pts[:1], key, InitSettings())
