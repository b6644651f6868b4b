"""The trainer against capture-like photos: masked photometric loss, occlusions, robust depth and Chamfer,
per-image colour corrections (auto-exposure / white balance that change from frame to frame)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from splat import presets
from splat.config import TrainConfig
from splat.train.losses import chamfer_loss, depth_loss, mask_loss, occluded_pixels, photometric_loss
from train_fixtures import make_stool_scene


def test_photometric_loss_ignores_pixels_outside_keep():
    g = torch.Generator().manual_seed(0)
    render = torch.rand(32, 32, 3, generator=g, requires_grad=True)
    target = torch.rand(32, 32, 3, generator=g)
    keep = torch.zeros(32, 32, dtype=torch.bool)
    keep[12:20, 12:20] = True
    loss, l1 = photometric_loss(render, target, 0.0, keep)
    loss.backward()
    assert render.grad[~keep].abs().max() == 0  # L1: no gradient from the background at all
    assert render.grad[keep].abs().min() > 0
    torch.testing.assert_close(l1, (render - target)[keep].abs().mean())
    render.grad = None
    loss, _ = photometric_loss(render, target, 0.2, keep)
    loss.backward()
    # D-SSIM: only pixels within the 11x11 window (radius 5) of a kept pixel get gradient (elsewhere the
    # windows compare the render with itself: SSIM's maximum, zero up to float32 rounding)
    near = torch.zeros(32, 32, dtype=torch.bool)
    near[7:25, 7:25] = True
    assert render.grad[~near].abs().max() < 1e-3 * render.grad[keep].abs().max()
    # the target outside keep does not matter
    other = torch.where(keep[..., None], target, torch.rand(32, 32, 3, generator=g))
    torch.testing.assert_close(photometric_loss(render, other, 0.2, keep)[0], loss)
    # without keep it is the plain loss
    plain, _ = photometric_loss(render, target, 0.0)
    torch.testing.assert_close(plain, (render - target).abs().mean())


def test_depth_loss_trims_outliers_and_occlusions_are_found():
    ed = torch.full((8, 8), 2.0)
    depth = torch.full((8, 8), 2.01)
    depth[0, 0] = 5.0  # a flying pixel
    depth[1, 1] = 0.0  # a hole
    assert float(depth_loss(ed, depth, None)) > 0.04
    torch.testing.assert_close(depth_loss(ed, depth, None, max_residual=0.1), torch.tensor(0.01), atol=1e-6, rtol=0)
    alpha = torch.ones(8, 8)
    alpha[7] = 0.0
    depth[3, 3] = 1.2  # something in front of the object
    depth[7, 3] = 1.2  # in front, but where the object is not rendered: not an occlusion of it
    occ = occluded_pixels(ed, alpha, depth, 0.1)
    assert occ.sum() == 1 and occ[3, 3]
    mask = torch.ones(8, 8, dtype=torch.bool)
    mask[3, 3] = False  # the mask of a capture misses the occluded pixel
    assert float(mask_loss(alpha[:7], mask[:7])) > 0
    assert float(mask_loss(alpha[:7], mask[:7], ~occ[:7])) == 0.0


def test_trimmed_chamfer_ignores_clutter_points():
    g = torch.Generator().manual_seed(1)
    surface = torch.rand(500, 3, generator=g)
    scan = surface[:400].clone()
    clutter = torch.rand(20, 3, generator=g) + 3.0  # 5% of the scan far away
    full = torch.cat([scan, clutter])
    assert float(chamfer_loss(surface, full, 1.0)) > 0.3
    assert float(chamfer_loss(surface, full, 1.0, trim=0.1)) < 1e-9


GAINS = (0.7, 1.25, 0.85, 1.1, 0.95, 1.2, 1.0, 1.0)  # per view (views 1 and 5 are the test views)


@pytest.fixture(scope="module")
def exposure_scene(tmp_path_factory) -> Path:
    """The stool scene with every view's colours scaled by its own gain (auto-exposure)."""
    import imageio.v3 as iio

    from splat.data import load_scene

    root = tmp_path_factory.mktemp("exposure_scene")
    make_stool_scene(root, n_train=6, n_test=2, size=32, num_gaussians=1500)
    for cam, gain in zip(load_scene(root).cameras, GAINS):
        path = root / "images" / f"{cam.name}.png"
        img = iio.imread(path).astype(np.float32) / 255 * gain
        iio.imwrite(path, (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    return root


def _train_views_psnr(trainer, poses: bool = True) -> np.ndarray:
    from splat.train.joint import apply_exposure, corrected_viewmat

    out = []
    with torch.no_grad():
        for v in range(trainer.data.num_views):
            viewmat = trainer.data.viewmats[v]
            if poses and trainer.pose is not None:
                viewmat = corrected_viewmat(viewmat, trainer.pose[v])
            res, _ = trainer.render(viewmat, trainer.data.Ks[v])
            rgb = res.colors[0, ..., :3]
            if trainer.exposure is not None:
                rgb = apply_exposure(rgb, trainer.exposure[v])
            out.append(float(-10 * torch.log10(((rgb - trainer.data.images[v]) ** 2).mean())))
    return np.array(out)


def _fit(scene: Path, out: Path, **loss_optim) -> object:
    """Train 150 joint steps (structure fixed by a tiny search; no densification); return the trainer."""
    import splat.train.joint as joint
    from splat.train import train

    base = presets.smoke(TrainConfig(scene=str(scene), output_dir=out, run="r", threads=1))
    optim = dataclasses.replace(base.optim, steps=150, program_start=0, lr_program=0.0, lr_placement=0.0,
                                lr_exposure=loss_optim.pop("lr_exposure", 0.0),
                                lr_pose=loss_optim.pop("lr_pose", 0.0))
    cfg = dataclasses.replace(base, optim=optim, loss=dataclasses.replace(base.loss, **loss_optim),
                              densify=dataclasses.replace(base.densify, enabled=False))
    seen = []
    train(cfg, on_step=lambda trainer, stats: seen.append(trainer) if trainer.step == cfg.optim.steps else None)
    assert seen and isinstance(seen[0], joint.JointTrainer)
    return seen[0]


def test_per_image_colour_correction_absorbs_exposure_changes(exposure_scene, tmp_path):
    plain = _fit(exposure_scene, tmp_path / "plain")
    corrected = _fit(exposure_scene, tmp_path / "corrected", lr_exposure=0.03)
    assert plain.exposure is None
    p0, p1 = _train_views_psnr(plain), _train_views_psnr(corrected)
    # without corrections the darkest view (gain 0.7) cannot be matched by Gaussians shared with the others
    assert p1.mean() > p0.mean() + 3.0, (p0, p1)
    assert p1.min() > p0.min() + 8.0, (p0, p1)
    # the learned corrections order the train views as their gains do (white through each correction)
    white = corrected.exposure.detach()[:, :, :3].sum(-1).mean(-1) + corrected.exposure.detach()[:, :, 3].mean(-1)
    train_gains = torch.tensor([GAINS[i] for i in (0, 2, 3, 4, 6, 7)])
    assert int(white.argmin()) == int(train_gains.argmin())
    assert float(np.corrcoef(white.numpy(), train_gains.numpy())[0, 1]) > 0.8


PERTURBED = {1: (0.0, 3.0, 0.0), 3: (2.5, 0.0, 1.5)}  # train view index -> camera-side rotation, degrees


@pytest.fixture(scope="module")
def pose_noise_scene(tmp_path_factory) -> Path:
    """The stool scene with two train views' written poses rotated by ~3 degrees (SLAM pose errors)."""
    import json

    from splat.maths import rotvec_to_rotmat

    root = tmp_path_factory.mktemp("pose_noise_scene")
    make_stool_scene(root, n_train=6, n_test=2, size=32, num_gaussians=1500)
    meta = json.loads((root / "transforms.json").read_text())
    train = sorted(meta["split"]["train"]) if isinstance(meta.get("split"), dict) else None
    frames = meta["frames"]
    names = [f["file_path"].split("/")[-1].rsplit(".", 1)[0] for f in frames]
    train_names = [n for n in names if train is None or n in train]
    for i, deg in PERTURBED.items():
        f = frames[names.index(train_names[i])]
        c2w = torch.tensor(f["transform_matrix"], dtype=torch.float64)
        rot = rotvec_to_rotmat(torch.tensor(deg, dtype=torch.float64) * (np.pi / 180))
        c2w[:3, :3] = c2w[:3, :3] @ rot
        f["transform_matrix"] = c2w.tolist()
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


@pytest.mark.slow
def test_pose_refinement_corrects_the_views_whose_poses_are_off(pose_noise_scene, tmp_path):
    plain = _fit(pose_noise_scene, tmp_path / "plain")
    refined = _fit(pose_noise_scene, tmp_path / "refined", lr_pose=2e-3)
    assert plain.pose is None
    p0, p1 = _train_views_psnr(plain, poses=False), _train_views_psnr(refined)
    bad = list(PERTURBED)
    good = [i for i in range(len(p0)) if i not in PERTURBED]
    # every view gains (the Gaussians no longer average two wrong views in), the wrong ones the most
    gain = p1 - p0
    assert gain[bad].min() > gain[good].max() + 2.0, (p0, p1)
    # the corrections undo the errors: R_cv = diag(1, -1, -1) R_gl diag(1, -1, -1) (OpenGL -> OpenCV
    # camera axes), and the stored pose c2w R means the render needs R on the camera side
    rot = refined.pose.detach()[:, :3].double() * 180 / np.pi
    for i, deg in PERTURBED.items():
        want = torch.tensor(deg, dtype=torch.float64) * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
        cos = float(rot[i] @ want / (rot[i].norm() * want.norm()))
        assert cos > 0.8, (i, rot[i], want)
        assert float(rot[i].norm()) > float(rot[good].norm(dim=1).mean()), rot
    import json

    (summary,) = (tmp_path / "refined").rglob("corrections.json")
    doc = json.loads(summary.read_text())
    assert doc["pose"]["max_rotation_deg"] == pytest.approx(float(rot.norm(dim=1).max()), rel=1e-4)
    assert len(doc["frames"]) == 6 and all("translation_cm" in f for f in doc["frames"].values())


def test_rotvec_to_rotmat_is_a_rotation_with_the_right_axis_and_angle():
    from splat.maths import rotvec_to_rotmat

    gen = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(64, 3, generator=gen, dtype=torch.float64), dim=1)
    w = axis * torch.logspace(-9, math.log10(3.0), 64, dtype=torch.float64)[:, None]  # angles up to 3 rad < pi
    R = rotvec_to_rotmat(w)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(64, 3, 3),
                               atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(64, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close((R @ w[..., None])[..., 0], w, atol=1e-12, rtol=0)  # the axis is fixed
    angle = torch.arccos(((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1))
    big = w.norm(dim=1) > 1e-3
    torch.testing.assert_close(angle[big], w.norm(dim=1)[big], atol=1e-7, rtol=0)
    z = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rotvec_to_rotmat, (z,)) and torch.autograd.gradcheck(
        rotvec_to_rotmat, (torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True),))


def test_capture_losses_train_and_resume_with_corrections(exposure_scene, tmp_path):
    """Masked photometric loss, occlusion margin, trimmed depth and Chamfer, colour corrections: a run
    trains, checkpoints the corrections and resumes to the same state."""
    from splat.config import LogConfig
    from splat.runs import load_checkpoint
    from splat.train import train

    base = presets.smoke(TrainConfig(scene=str(exposure_scene), output_dir=tmp_path, run="r", threads=1))
    cfg = dataclasses.replace(
        base,
        optim=dataclasses.replace(base.optim, steps=4, lr_exposure=0.03),
        loss=dataclasses.replace(base.loss, photometric_region="mask", occlusion_margin=0.05,
                                 depth_max_residual=0.1, chamfer_trim=0.05),
        log=LogConfig(every=1, image_every=0, checkpoint_every=2, progress=False))
    full = train(cfg)
    ckpt = load_checkpoint(full.run_dir.checkpoints)
    assert ckpt["joint"]["exposure"].shape == (6, 3, 4)

    class Stop(Exception):
        pass

    def stop(trainer, stats):
        if trainer.step == 3:
            raise Stop

    with pytest.raises(Stop):
        train(dataclasses.replace(cfg, run="b"), on_step=stop)
    resumed = train(dataclasses.replace(cfg, run="b", resume=True))
    a = load_checkpoint(full.run_dir.checkpoints)["joint"]["exposure"]
    b = load_checkpoint(resumed.run_dir.checkpoints)["joint"]["exposure"]
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_erode_mask_shrinks_by_pixels_and_treats_the_border_as_outside():
    from splat.train.losses import erode_mask

    m = torch.zeros(10, 10, dtype=torch.bool)
    m[2:8, 3:10] = True  # touches the right border
    e = erode_mask(m, 1)
    expected = torch.zeros(10, 10, dtype=torch.bool)
    expected[3:7, 4:9] = True
    assert torch.equal(e, expected)
    assert torch.equal(erode_mask(m, 0), m)
    assert not erode_mask(m, 3).any()
