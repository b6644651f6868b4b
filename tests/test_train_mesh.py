"""The joint stage refines the program from the program mesh's silhouette and depth (splat.ops.mesh_raster),
and the Gaussians' own losses do not reach the geometry unless asked (loss.gaussian_geometry_grad)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from splat import presets
from splat.config import TrainConfig
from splat.data import load_scene
from splat.gaussians import TrainViews, init_gaussians
from splat.program import ProgramFit, ShapeProgram
from splat.ops.mesh_raster import render_mesh
from splat.train.data import train_data
from splat.train.joint import JointTrainer
from train_fixtures import STOOL_PARAMS, make_stool_scene, stool_program_dict


@pytest.fixture(scope="module")
def stool(tmp_path_factory):
    root = tmp_path_factory.mktemp("mesh_stool")
    make_stool_scene(root, n_train=6, n_test=1, size=64, num_gaussians=3000)
    return root


def _trainer(scene_root, width: float, steps: int, **loss) -> JointTrainer:
    r = dataclasses.replace
    cfg = presets.smoke(TrainConfig(scene=str(scene_root), threads=1))
    cfg = r(cfg, optim=r(cfg.optim, steps=steps, program_start=0, lr_program=0.02, lr_placement=0.0,
                         lr_program_final_ratio=1.0),
            densify=r(cfg.densify, enabled=False),
            loss=r(cfg.loss, chamfer=0.0, **loss))
    g = torch.Generator().manual_seed(0)
    data = train_data(load_scene(scene_root), max_scan_points=2000, generator=g)
    program = ShapeProgram.from_dict(stool_program_dict())
    # the scene's masks and depths come from its Gaussians, whose blur reaches ~1 cm past the faces: take
    # the true program mesh's own coverage and depth, so that the truth is exactly STOOL_PARAMS
    rm = program.evaluate(dict(STOOL_PARAMS), dtype=torch.float64).realize()
    masks, depths = [], []
    for v in range(data.num_views):
        mv = render_mesh(rm.verts[0], rm.faces, rm.vert_part, rm.face_part, data.viewmats[v].double(),
                         data.Ks[v].double(), data.width, data.height, rm.face_active[0])
        masks.append(mv.face >= 0)
        depths.append(mv.depth.detach().to(data.depths.dtype))
    data = r(data, masks=torch.stack(masks), depths=torch.stack(depths))
    fit = ProgramFit(program, dict(STOOL_PARAMS, Width=width), torch.eye(4, dtype=torch.float64))
    views = TrainViews(data.images, data.viewmats, data.Ks, data.depths, data.masks)
    gaussians = init_gaussians(fit.geometry(), r(cfg.gaussians, num_init=1500), g, views)
    return JointTrainer(cfg, data, fit, gaussians, g)


def test_the_gaussians_losses_reach_the_geometry_only_when_asked(stool):
    still = _trainer(stool, 0.56, 5, mesh_silhouette=0.0, mesh_depth=0.0, gaussian_geometry_grad=False)
    still.run()
    assert still.fit.assignment()["Width"] == pytest.approx(0.56, abs=1e-6)
    moved = _trainer(stool, 0.56, 5, mesh_silhouette=0.0, mesh_depth=0.0, gaussian_geometry_grad=True)
    moved.run()
    assert abs(moved.fit.assignment()["Width"] - 0.56) > 1e-4


def test_the_mesh_silhouette_and_depth_pull_a_wrong_width_to_the_truth(stool):
    truth = STOOL_PARAMS["Width"]
    trainer = _trainer(stool, truth + 0.06, 60)  # 15% of the range too wide
    stats = trainer.run()
    assert stats.mesh_silhouette > 0 and stats.mesh_depth > 0
    err = abs(trainer.fit.assignment()["Width"] - truth)
    # 64 px views: a pixel is ~1 cm at the stool; the fit ends well inside one
    assert err < 0.004, trainer.fit.assignment()
    assert abs(trainer.fit.assignment()["Height"] - STOOL_PARAMS["Height"]) < 0.004
