"""Metrics: PSNR/SSIM against closed forms and a numpy/scipy reference, gradients, the fused C++ SSIM
kernel against the torch code, geometry metrics on known configurations, parameter errors over active
parameters.

Budget: < 5 s.
"""

from __future__ import annotations

import contextlib
import math
from unittest import mock

import numpy as np
import pytest
import torch
import trimesh
from scipy.signal import correlate2d

import splat.ops.ssim as fused_ssim
from splat.errors import SplatError
from splat.metrics import (
    SurfacePoints,
    chamfer_l1,
    chamfer_l2,
    fscore,
    gaussian_window,
    geometry_metrics,
    normal_consistency,
    param_errors,
    psnr,
    sample_mesh,
    ssim,
    ssim_map,
)


def rand_images(b=2, h=20, w=24, c=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((b, h, w, c), generator=g, dtype=dtype)


# -------------------------------------------------------------------------------------------------- PSNR


def test_psnr_identical_is_inf_and_constant_offset_closed_form():
    x = rand_images() * 0.8
    assert torch.isinf(psnr(x, x)).all()
    for c in (0.1, 0.05, 0.01):
        torch.testing.assert_close(psnr(x + c, x), torch.full((2,), -20 * math.log10(c), dtype=x.dtype))
    # max_val scales the peak: 8-bit range
    torch.testing.assert_close(psnr(x * 255 + 2.55, x * 255, max_val=255.0),
                               torch.full((2,), 40.0, dtype=x.dtype))


def test_psnr_mask_and_unbatched():
    x = rand_images(1)[0]
    y = x.clone()
    y[:5] += 0.5  # error only in the top rows
    mask = torch.zeros(x.shape[:2], dtype=torch.bool)
    mask[10:] = True
    assert torch.isinf(psnr(y, x, mask))
    mask[0, 0] = True  # one erroneous pixel among the kept ones
    n = int(mask.sum())
    torch.testing.assert_close(psnr(y, x, mask), torch.tensor(10 * math.log10(n / 0.25), dtype=x.dtype))
    assert psnr(y, x).ndim == 0
    assert torch.isnan(psnr(y, x, torch.zeros_like(mask)))


# -------------------------------------------------------------------------------------------------- SSIM


def ssim_reference(x: np.ndarray, y: np.ndarray, mode: str) -> np.ndarray:
    """Straightforward SSIM map: explicit 11x11 Gaussian window, scipy 2-D correlation per channel."""
    ax = np.arange(11) - 5.0
    g1 = np.exp(-(ax**2) / (2 * 1.5**2))
    win = np.outer(g1, g1)
    win /= win.sum()
    c1, c2 = 0.01**2, 0.03**2
    maps = []
    for ch in range(x.shape[-1]):
        a, b = x[..., ch], y[..., ch]

        def f(z):
            return correlate2d(z, win, mode=mode, boundary="fill", fillvalue=0.0)

        mx, my = f(a), f(b)
        sxx, syy, sxy = f(a * a) - mx**2, f(b * b) - my**2, f(a * b) - mx * my
        maps.append((2 * mx * my + c1) * (2 * sxy + c2) / ((mx**2 + my**2 + c1) * (sxx + syy + c2)))
    return np.mean(maps, axis=0)


@pytest.mark.parametrize("padding, mode", [("valid", "valid"), ("same", "same")])
def test_ssim_matches_numpy_reference(padding, mode):
    x = rand_images(2, 24, 28)
    y = (x + 0.2 * rand_images(2, 24, 28, seed=1)).clamp(0, 1)
    ours = ssim_map(x, y, padding=padding)
    for i in range(2):
        ref = ssim_reference(x[i].numpy(), y[i].numpy(), mode)
        np.testing.assert_allclose(ours[i].numpy(), ref, atol=1e-10)
        torch.testing.assert_close(ssim(x, y, padding=padding)[i], torch.tensor(ref.mean(), dtype=x.dtype))


def test_ssim_known_values():
    x = rand_images()
    torch.testing.assert_close(ssim(x, x), torch.ones(2, dtype=x.dtype))
    # Two constant images a, b: the structure term is C2/C2 = 1, the luminance term is closed form.
    a, b = 0.3, 0.6
    c1 = 0.01**2
    xa = torch.full((1, 16, 16, 3), a, dtype=torch.float64)
    xb = torch.full((1, 16, 16, 3), b, dtype=torch.float64)
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    torch.testing.assert_close(ssim(xa, xb), torch.tensor([expected], dtype=torch.float64))
    assert float(ssim(x, 1 - x).mean()) < 0.2


def test_ssim_mask_and_window():
    g = gaussian_window()
    assert g.shape == (11,) and abs(float(g.sum()) - 1) < 1e-6 and int(g.argmax()) == 5
    x = rand_images(1, 30, 30)
    y = x.clone()
    y[:, :, 20:] = 1 - y[:, :, 20:]  # damage the right part only
    mask = torch.zeros(1, 30, 30, dtype=torch.bool)
    mask[:, :, :10] = True  # window centres at columns 5..9 see only undamaged pixels
    torch.testing.assert_close(ssim(x, y, mask), torch.ones(1, dtype=x.dtype))
    assert float(ssim(x, y)) < 0.9
    smap = ssim_map(x, y)
    m = mask[:, 5:-5, 5:-5]
    torch.testing.assert_close(ssim(x, y, mask), smap[m].mean().reshape(1))


def test_ssim_gradients():
    x = rand_images(1, 7, 7, 2).requires_grad_(True)
    y = rand_images(1, 7, 7, 2, seed=3)
    for padding in ("valid", "same"):  # a 5x5 window keeps gradcheck small; the code path is the same
        assert torch.autograd.gradcheck(lambda a: ssim(a, y, window_size=5, padding=padding), (x,),
                                        eps=1e-6, atol=1e-5, fast_mode=True)
    x32 = rand_images(2, 16, 16, dtype=torch.float32).requires_grad_(True)
    (1 - ssim(x32, torch.zeros_like(x32), padding="same")).sum().backward()
    assert torch.isfinite(x32.grad).all()


def test_image_metric_bad_shapes():
    x = rand_images()
    with pytest.raises(ValueError):
        psnr(x, x[:1])
    with pytest.raises(ValueError):
        ssim(x, x, torch.ones(2, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError):
        ssim(x[:, :8, :8], x[:, :8, :8])  # smaller than the window


# ------------------------------------------------------------------------------- SSIM: fused C++ kernel


@pytest.fixture
def kernel():
    """Skip when the C++ SSIM kernel cannot be built (checked when a test needs it, not at collection)."""
    if not fused_ssim.kernel_available():
        pytest.skip("C++ SSIM kernel did not build")


@contextlib.contextmanager
def torch_path():
    """Inside, ssim_map runs its torch code (the kernel reads as unavailable): the reference."""
    with mock.patch.object(fused_ssim, "_load_kernel", lambda: None):
        yield


def through_kernel(t) -> bool:
    return "SSIMMap" in type(t.grad_fn).__name__


TOL = {torch.float32: dict(rtol=0, atol=2e-6), torch.float64: dict(rtol=0, atol=1e-12)}


def image_pair(shape, dtype, seed=5):
    """A prediction (requiring grad) and a target that resembles it, as a render and its photo do."""
    x = rand_images(*shape, seed=seed, dtype=dtype)
    y = (x + 0.3 * rand_images(*shape, seed=seed + 1, dtype=dtype) - 0.15).clamp(0, 1)
    return x.requires_grad_(True), y


def map_mean_grad(x, y, upstream_seed=7, **kw):
    """SSIM map, mean SSIM, and the gradient in x of a random weighting of the map plus the mean."""
    smap = ssim_map(x, y, **kw)
    mean = ssim(x, y, **kw)
    up = torch.randn(smap.shape, generator=torch.Generator().manual_seed(upstream_seed), dtype=smap.dtype)
    (g,) = torch.autograd.grad((smap * up).sum() + mean.sum(), x)
    return smap, mean, g


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape, padding", [
    ((1, 32, 32, 3), "same"),
    ((2, 21, 17, 3), "same"),
    ((2, 21, 17, 3), "valid"),
    ((3, 13, 11, 1), "valid"),  # odd sizes, one channel, a 3x1 map
    ((1, 7, 5, 1), "same"),  # smaller than the window
    ((2, 3, 4, 3), "same"),
    ((1, 1, 1, 3), "same"),
    ((1, 11, 40, 2), "valid"),  # one map row
])
def test_kernel_matches_torch(kernel, dtype, shape, padding):
    x, y = image_pair(shape, dtype)
    ours = map_mean_grad(x, y, padding=padding)
    with torch_path():
        ref = map_mean_grad(x, y, padding=padding)
    assert through_kernel(ours[0]) and not through_kernel(ref[0])
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, **TOL[dtype])
    with torch.no_grad():  # no gradient wanted: the kernel skips the derivative maps, same values
        assert torch.equal(ssim_map(x, y, padding=padding), ours[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_kernel_with_mask_window_and_max_val(kernel, dtype, padding):
    # as photometric_loss: the target is the detached render outside `keep`, the mean only over `keep`
    x, y = image_pair((2, 24, 30, 3), dtype)
    keep = torch.rand(2, 24, 30, generator=torch.Generator().manual_seed(3)) > 0.4
    target = torch.where(keep[..., None], y, x.detach())
    # also a transposed (non-contiguous) prediction with another window, and an 8-bit range
    for args, kw in ((lambda: (x, target, keep), dict(padding=padding)),
                     (lambda: (x.transpose(1, 2), target.transpose(1, 2), keep.transpose(1, 2)),
                      dict(padding=padding, window_size=7, sigma=1.0)),
                     (lambda: (x * 255, target * 255, keep), dict(padding=padding, max_val=255.0))):
        ours = ssim(*args(), **kw)
        (g,) = torch.autograd.grad(ours.sum(), x)
        with torch_path():
            ref = ssim(*args(), **kw)
            (g_ref,) = torch.autograd.grad(ref.sum(), x)
        torch.testing.assert_close(ours, ref, **TOL[dtype])
        scale = 255.0 if kw.get("max_val") else 1.0  # gradients in 8-bit units are 255 times smaller
        torch.testing.assert_close(g * scale, g_ref * scale, **TOL[dtype])


def test_kernel_gradcheck(kernel):
    x, y = image_pair((2, 9, 8, 2), torch.float64)
    for padding, window in (("same", 11), ("same", 5), ("valid", 5)):  # "same" 11: larger than the image
        assert through_kernel(ssim_map(x, y, window_size=window, padding=padding))
        assert torch.autograd.gradcheck(lambda a: ssim_map(a, y, window_size=window, padding=padding), (x,),
                                        eps=1e-6, atol=1e-9, rtol=1e-6)


def test_kernel_threads_and_bands_agree(kernel):
    # 200 rows of 170 x 3 values: with 3 threads the kernel cuts each image into 3 bands of rows
    x, y = image_pair((1, 200, 170, 3), torch.float32)
    before = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            runs.append([map_mean_grad(x, y, padding=p) for p in ("same", "valid")])
    finally:
        torch.set_num_threads(before)
    for one, three in zip(*runs):
        for a, b in zip(one, three):
            assert torch.equal(a, b)  # fixed summation order whatever the thread count
    with torch_path():
        ref = map_mean_grad(x, y, padding="same")
    for a, b in zip(runs[1][0], ref):
        torch.testing.assert_close(a, b, **TOL[torch.float32])


def test_ssim_falls_back_to_torch_without_the_kernel(monkeypatch):
    monkeypatch.setattr(fused_ssim, "_load_kernel", lambda: None)
    assert not fused_ssim.kernel_available()
    x, y = image_pair((1, 24, 28, 3), torch.float64)
    smap = ssim_map(x, y, padding="same")
    assert not through_kernel(smap)
    np.testing.assert_allclose(smap[0].detach().numpy(), ssim_reference(x[0].detach().numpy(), y.numpy()[0], "same"),
                               atol=1e-10)
    (1 - ssim(x, y, padding="same")).backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


def test_target_requiring_grad_takes_the_torch_path(kernel):
    x, y = image_pair((1, 16, 18, 3), torch.float64)
    y.requires_grad_(True)
    s = ssim(x, y, padding="same")
    gx, gy = torch.autograd.grad(s, (x, y))
    assert float(gy.abs().sum()) > 0  # the kernel has no target gradient: this came from torch
    (gx_kernel,) = torch.autograd.grad(ssim(x, y.detach(), padding="same"), x)
    torch.testing.assert_close(gx_kernel, gx, **TOL[torch.float64])
    with pytest.raises(ValueError, match="target"):
        fused_ssim.ssim_map(x, y, gaussian_window(dtype=torch.float64), 5, 1e-4, 9e-4)
    with torch.no_grad(), mock.patch.object(fused_ssim, "ssim_map", wraps=fused_ssim.ssim_map) as spy:
        torch.testing.assert_close(ssim(x, y, padding="same"), s.detach(), **TOL[torch.float64])
    assert spy.call_count == 1  # no gradient is being recorded: the kernel serves it


# ---------------------------------------------------------------------------------------------- geometry


def test_chamfer_mesh_with_itself_is_zero():
    box = trimesh.creation.box(extents=(1.0, 0.5, 0.3))
    m = geometry_metrics(box, box, generator=torch.Generator().manual_seed(0), num_samples=4000)
    assert m.chamfer_l1 == 0.0 and m.chamfer_l2 == 0.0
    assert all(f.fscore == 1.0 for f in m.fscores) and m.normal_consistency == pytest.approx(1.0)
    # two independent samplings of one box: small Chamfer, normals agree, F@5cm = 1
    a = sample_mesh(box, 4000, torch.Generator().manual_seed(1))
    b = sample_mesh(box, 4000, torch.Generator().manual_seed(2))
    m2 = geometry_metrics(a, b)
    assert 0 < m2.chamfer_l1 < 0.02 and m2.normal_consistency > 0.95 and m2.fscores[-1].fscore == 1.0
    # a scaled box is farther away
    big = trimesh.creation.box(extents=(1.2, 0.6, 0.36))
    m3 = geometry_metrics(big, box, generator=torch.Generator().manual_seed(0), num_samples=4000)
    assert m3.chamfer_l1 > 0.02 and m3.fscores[0].fscore < 0.5


def test_sample_mesh_seeded_on_surface():
    box = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    a = sample_mesh(box, 500, torch.Generator().manual_seed(7))
    b = sample_mesh((box.vertices, box.faces), 500, torch.Generator().manual_seed(7))
    np.testing.assert_array_equal(a.points, b.points)
    assert np.allclose(np.abs(a.points).max(1), 1.0)  # every point on a face of the cube
    np.testing.assert_allclose(np.linalg.norm(a.normals, axis=1), 1.0)


def test_chamfer_of_shifted_copy_is_shift_squared():
    g = np.stack(np.meshgrid(np.arange(10), np.arange(10), np.arange(10)), -1).reshape(-1, 3) * 0.1
    s = np.array([0.003, -0.004, 0.0])  # |s| = 5 mm, much smaller than the 10 cm spacing
    shifted = torch.as_tensor(g + s)
    assert chamfer_l2(shifted, g) == pytest.approx(0.005**2, rel=1e-9)
    assert chamfer_l1(shifted, g) == pytest.approx(0.005, rel=1e-9)


def test_fscore_thresholds():
    g = np.stack(np.meshgrid(np.arange(10), np.arange(10), [0]), -1).reshape(-1, 3) * 0.1
    shifted = g + [0.0, 0.0, 0.015]  # 1.5 cm off
    m = geometry_metrics(shifted, g)
    assert [f.fscore for f in m.fscores] == [0.0, 1.0, 1.0]  # taus 1, 2, 5 cm
    assert math.isnan(m.normal_consistency)
    # prediction covers only half of the reference: precision 1, recall 0.5
    half = g[g[:, 0] < 0.45]
    f = fscore(half, g, 0.01)
    assert (f.precision, f.recall) == (1.0, 0.5) and f.fscore == pytest.approx(2 / 3)
    # growing tau never lowers the score
    far = g + [0.0, 0.0, 0.05]
    scores = [fscore(far, g, t).fscore for t in (0.01, 0.04, 0.051, 0.2)]
    assert scores == sorted(scores) and scores[0] == 0.0 and scores[-1] == 1.0
    d = m.as_dict()
    assert d["fscore@2cm"] == 1.0 and "chamfer_l2" in d


def test_normal_consistency_perpendicular():
    p = np.random.default_rng(0).random((200, 3))
    up = np.tile([0.0, 0.0, 1.0], (200, 1))
    side = np.tile([1.0, 0.0, 0.0], (200, 1))
    assert normal_consistency(SurfacePoints(p, up), SurfacePoints(p, -up)) == pytest.approx(1.0)
    assert normal_consistency(SurfacePoints(p, up), SurfacePoints(p, side)) == pytest.approx(0.0)


def test_geometry_errors():
    box = trimesh.creation.box()
    with pytest.raises(ValueError, match="Generator"):
        geometry_metrics(box, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="non-empty"):
        chamfer_l2(np.zeros((0, 3)), np.zeros((3, 3)))


# ------------------------------------------------------------------------------------------- parameters

SPACE = {
    "Seat Height": {"type": "float", "low": 0.3, "high": 0.8, "active": True},
    "Leg Size": {"type": "float", "low": 0.0, "high": 0.1, "active": True},
    "Middle Offset": {"type": "float", "low": 0.0, "high": 1.0, "active": False},
    "Legs Type": {"type": "int", "low": 0, "high": 2, "active": True},
    "Has Back": {"type": "bool", "active": True},
}


def test_param_errors_over_active_only():
    gt = {"Seat Height": 0.5, "Leg Size": 0.05, "Middle Offset": 0.2, "Legs Type": 1, "Has Back": True}
    pred = {"Seat Height": 0.55, "Leg Size": torch.tensor(0.06), "Middle Offset": 0.9, "Legs Type": 1,
            "Has Back": False}
    e = param_errors(pred, gt, SPACE)
    # |0.05| / 0.5 = 10 %, |0.01| / 0.1 = 10 %; Middle Offset is inactive and ignored
    assert e.continuous_mae_pct == pytest.approx(10.0)
    assert (e.n_continuous, e.n_discrete) == (2, 2)
    assert e.discrete_accuracy == 0.5
    assert "Middle Offset" not in e.per_param and e.per_param["Legs Type"] == 1.0
    perfect = param_errors(gt, gt, SPACE)
    assert perfect.continuous_mae_pct == 0.0 and perfect.discrete_accuracy == 1.0


def test_param_errors_with_param_space():
    from splat.params import ParamSpace

    space = ParamSpace.from_dict({"format": "splat.params/1", "params": [
        {"name": "a", "type": "float", "range": [0.0, 2.0], "default": 1.0},
        {"name": "k", "type": "int", "range": [0, 3], "default": 0},
        {"name": "b", "type": "float", "range": [0.0, 1.0], "default": 0.5, "requires": [["k", 0]]},
    ]})
    # k = 2: b is inactive, only a (25 % of its range off) and k (right) count
    e = param_errors({"a": 1.0, "b": 0.0, "k": 2}, {"a": 1.5, "b": 1.0, "k": 2}, space)
    assert e.n_continuous == 1 and e.continuous_mae_pct == pytest.approx(25.0)
    assert e.discrete_accuracy == 1.0 and set(e.per_param) == {"a", "k"}
    # k = 0 in the ground truth: b is active (activity follows the ground truth, not the prediction)
    e0 = param_errors({"a": 1.5, "b": 0.5, "k": 1}, {"a": 1.5, "b": 1.0, "k": 0}, space)
    assert e0.n_continuous == 2 and e0.continuous_mae_pct == pytest.approx(25.0) and e0.discrete_accuracy == 0.0


def test_param_errors_bad_input():
    gt = {"Seat Height": 0.5, "Leg Size": 0.05, "Legs Type": 1, "Has Back": True}
    with pytest.raises(SplatError) as info:
        param_errors({"Seat Height": 0.5}, gt, SPACE)
    assert info.value.field == "Leg Size"
    with pytest.raises(SplatError):
        param_errors(gt, gt, {"x": {"type": "float", "low": 1.0, "high": 1.0}} | SPACE)
    only_inactive = {"m": {"type": "float", "low": 0, "high": 1, "active": False}}
    e = param_errors({}, {}, only_inactive)
    assert math.isnan(e.continuous_mae_pct) and math.isnan(e.discrete_accuracy)


def _box_scan(w, d, h, n, noise, rng, handle=True):
    """Points on the five visible faces of a w x d x h box on z = 0 (no bottom), each face a slab of
    Gaussian noise; with ``handle``, a sparse bar standing 3 cm off the -y face."""
    pts = []
    for axis, size in ((0, w), (1, d)):
        for sign in (-1, 1):
            p = rng.uniform([-w / 2, -d / 2, 0], [w / 2, d / 2, h], (n, 3))
            p[:, axis] = sign * size / 2
            pts.append(p)
    top = rng.uniform([-w / 2, -d / 2, h], [w / 2, d / 2, h], (n, 3))
    pts.append(top)
    p = np.concatenate(pts)
    p += rng.normal(0, noise, p.shape)
    if handle:
        bar = rng.uniform([-0.06, -d / 2 - 0.03, h / 2 - 0.01], [0.06, -d / 2 - 0.025, h / 2 + 0.01], (n // 40, 3))
        p = np.concatenate([p, bar])
    return p


def test_outer_size_finds_the_faces_of_a_noisy_scan_not_its_outliers():
    from splat.metrics import outer_size

    rng = np.random.default_rng(0)
    p = _box_scan(0.46, 0.81, 0.56, 20000, 0.012, rng)  # Kinect-like: 1.2 cm noise per face
    s = outer_size(p)
    assert abs(s.width - 0.46) < 0.004 and abs(s.depth - 0.81) < 0.004 and abs(s.height - 0.56) < 0.004
    lo, hi = np.percentile(p, 1, axis=0), np.percentile(p, 99, axis=0)
    assert hi[0] - lo[0] > 0.46 + 0.02  # what the extreme percentiles would have said


def test_outer_size_in_a_turned_scaled_frame_is_in_world_units():
    from splat.maths import placement_matrix
    from splat.metrics import outer_size

    rng = np.random.default_rng(1)
    p = _box_scan(0.5, 0.3, 0.7, 8000, 0.002, rng, handle=False)
    frame = placement_matrix(torch.tensor([0.4, -1.2, 0.0], dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64),
                             torch.tensor(math.log(1.3), dtype=torch.float64)).numpy()
    world = p @ frame[:3, :3].T / 1.3 + frame[:3, 3]  # the box turned and moved (not scaled) in the world
    s = outer_size(world, frame)
    assert s == pytest.approx((0.5, 0.3, 0.7), abs=0.003)
    assert outer_size(world).width != pytest.approx(0.5, abs=0.01)  # the world axes are not the box's
    assert all(math.isnan(v) for v in outer_size(np.zeros((5, 3))))
