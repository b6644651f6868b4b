"""The fused C++ projection and SH colours (splat/render/cpu/project.cpp) against the PyTorch code they replace.

Reference: ``_projection.project`` / ``_sh.sh_to_color`` and torch autograd through them. Checked:
forward outputs and exact radii, gradients w.r.t. means / covariances (built as F F^T, raw, or Cov6
entries) / opacities / viewmats (and SH coefficients), gradcheck, Gaussians behind the near plane,
beyond the far plane, off-screen, degenerate (det <= 0) and with NaN/Inf inputs, the input report and
the errors ``rasterize`` raises from it, and the fallback to torch when the kernel cannot be built.

Budget: < 10 s once the extension is cached (its first build takes ~45 s, once per machine).
"""

from __future__ import annotations


import pytest
import torch

from render_fixtures import cameras, failed_build_warnings, gaussians
from splat.errors import SplatError
from splat.maths import covariances_from_scales_quats, quat_scale_components
from splat.render import RasterSettings, rasterize
from splat.render._projection import camera_centers, project
from splat.render._sh import sh_to_color
from splat.render.cpu import SH_MAX_DEGREE, project_fused, projection_available, sh_colors_fused

W, H = 37, 53
NEAR, FAR = 0.2, 1e3


@pytest.fixture(autouse=True, scope="module")
def _kernel():
    if not projection_available():
        pytest.skip("the C++ projection could not be built")


def _world(vm, cam_points):
    """World points of camera-space points [K, 3] for the world->camera matrix vm [4, 4]."""
    rot, t = vm[:3, :3], vm[:3, 3]
    return (cam_points - t) @ rot


def _scene(n, kind, dtype, n_cam=3, seed=4):
    """Random Gaussians plus, for camera 0, ones behind the camera, between it and the near plane, beyond the
    far plane, far off-screen (x/z beyond the Jacobian clamp) and just off the image edge."""
    p = gaussians(n, seed=seed, kind=kind, dtype=dtype)
    vms, ks = cameras(n_cam, W, H, dtype=dtype)
    f = float(ks[0, 0, 0])
    special = torch.tensor([[0.1, 0.0, -1.0], [0.0, 0.1, 0.5 * NEAR], [0.2, -0.1, 2 * FAR], [30.0, 1.0, 2.0],
                            [-1.0, 40.0, 1.5], [(W + 6) / f * 2.0, 0.0, 2.0]], dtype=dtype)
    means = torch.cat([p["means"], _world(vms[0], special)])
    quats = torch.cat([p["quats"], p["quats"][: len(special)]])
    scales = torch.cat([p["scales"], p["scales"][: len(special)]])
    opac = torch.cat([p["opacities"], torch.full((len(special),), 0.8, dtype=dtype)])
    colors = torch.cat([p["colors"], p["colors"][: len(special)]])
    return means, quats, scales, opac, colors, vms, ks


def _kw(antialiased, eps2d=0.3):
    return dict(near_plane=NEAR, far_plane=FAR, eps2d=eps2d, antialiased=antialiased)


def _outputs(proj, antialiased):
    outs = [proj.means2d, proj.conics, proj.depths, proj.opacities]
    return outs + [proj.compensations] if antialiased else outs


def _fused(*args, **kw):
    return project_fused(*args, **kw)[0]


@pytest.mark.parametrize("antialiased", [False, True])
@pytest.mark.parametrize("form", ["matrix", "entries"])
@pytest.mark.parametrize("kind", ["random", "anisotropic", "flat", "needle", "near_far", "huge_tiny",
                                  "opacity_extremes"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_forward_matches_torch_projection(dtype, kind, form, antialiased):
    means, quats, scales, opac, _, vms, ks = _scene(400, kind, dtype)
    cov = covariances_from_scales_quats(scales, quats) if form == "matrix" else quat_scale_components(quats, scales)
    ref = project(means, cov, opac, vms, ks, W, H, **_kw(antialiased))
    out = _fused(means, cov, opac, vms, ks, W, H, **_kw(antialiased))
    assert torch.equal(out.radii, ref.radii)
    assert out.radii.dtype == torch.int32 and (out.radii[0, -6:] == 0).all()  # the special ones are culled
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    for name in ("means2d", "conics", "depths"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), rtol=rtol, atol=0, msg=name)
    if antialiased:
        # comp = sqrt(det ratio): rank-deficient (flat, needle) Gaussians have a ratio of pure rounding
        # noise, which the sqrt amplifies; compare the squares (as test_render_projection does).
        atol = 1e-12 if dtype == torch.float64 else 5e-5
        torch.testing.assert_close(out.compensations**2, ref.compensations**2, rtol=rtol, atol=atol)
        torch.testing.assert_close(out.opacities**2, ref.opacities**2, rtol=rtol, atol=atol)
    else:
        assert out.compensations is None
        torch.testing.assert_close(out.opacities, ref.opacities, rtol=0, atol=0)


def _grads(fn, means, cov_leaf, make_cov, opac, vms, ks, antialiased, eps2d=0.3, use=None):
    """Gradients of a fixed random weighting of the outputs (those in ``use``, default all) w.r.t. means,
    the covariance leaf, opacities and viewmats; None ones (unused) as zeros."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (means, cov_leaf, opac, vms)]
    proj = fn(leaves[0], make_cov(leaves[1]), leaves[2], leaves[3], ks, W, H, **_kw(antialiased, eps2d))
    outs = _outputs(proj, antialiased)
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in outs]
    use = range(len(outs)) if use is None else use
    loss = sum((outs[i] * weights[i]).sum() for i in use)
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [torch.zeros_like(x) if gr is None else gr for gr, x in zip(grads, leaves)]


def _assert_grads_close(ours, ref, rtol=1e-10):
    for name, a, b in zip(("means", "covars", "opacities", "viewmats"), ours, ref):
        assert torch.isfinite(a).all(), name
        scale = max(float(b.abs().max()), 1e-30)
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * scale, msg=lambda m: f"grad {name}: {m}")


COV_FORMS = {
    # leaf -> covariance passed to the projection
    "F_Ft": (lambda p: 0.05 * torch.randn(p[0].shape[0], 3, 3, dtype=torch.float64,
                                          generator=torch.Generator().manual_seed(1)),
             lambda f: f @ f.transpose(-1, -2)),
    "matrix": (lambda p: covariances_from_scales_quats(p[2], p[1]), lambda c: c),
    "entries": (lambda p: torch.cat([p[1], p[2]], -1), lambda qs: quat_scale_components(qs[:, :4], qs[:, 4:])),
}


@pytest.mark.parametrize("antialiased", [False, True])
@pytest.mark.parametrize("form", list(COV_FORMS))
@pytest.mark.parametrize("kind", ["random", "anisotropic", "flat", "near_far", "huge_tiny"])
def test_gradients_match_torch_autograd(kind, form, antialiased):
    scene = _scene(300, kind, torch.float64)
    means, quats, scales, opac, _, vms, ks = scene
    leaf, make_cov = COV_FORMS[form]
    cov_leaf = leaf((means, quats, scales))
    ref = _grads(project, means, cov_leaf, make_cov, opac, vms, ks, antialiased)
    ours = _grads(_fused, means, cov_leaf, make_cov, opac, vms, ks, antialiased)
    _assert_grads_close(ours, ref)
    assert ours[3][:, 3].abs().sum() == 0 and ours[3][:, :3].abs().sum() > 0


@pytest.mark.parametrize("use", [(0,), (1,), (2,), (3,), (1, 3), (4,)], ids=["means2d", "conics", "depths",
                                                                            "opacities", "conics+opac", "comp"])
def test_gradients_of_some_outputs_only(use):
    # Outputs that the loss does not use reach the kernel as None (no zero tensors are made for them).
    means, quats, scales, opac, _, vms, ks = _scene(200, "random", torch.float64, n_cam=2)
    cov = covariances_from_scales_quats(scales, quats)
    ref = _grads(project, means, cov, lambda c: c, opac, vms, ks, True, use=use)
    ours = _grads(_fused, means, cov, lambda c: c, opac, vms, ks, True, use=use)
    _assert_grads_close(ours, ref)


def test_degenerate_covariances():
    # eps2d = 0 with zero covariances (det = 0) and indefinite ones (det < 0): conics without the division,
    # no gradient through the determinant, radius 0, as in the torch code.
    means, quats, scales, opac, _, vms, ks = _scene(60, "random", torch.float64, n_cam=2)
    cov = covariances_from_scales_quats(scales, quats).clone()
    cov[:10] = 0.0
    cov[10:20] = torch.diag(torch.tensor([0.01, -0.02, 0.01], dtype=torch.float64))
    kw = _kw(False, eps2d=0.0)
    ref = project(means, cov, opac, vms, ks, W, H, **kw)
    out = _fused(means, cov, opac, vms, ks, W, H, **kw)
    assert torch.equal(out.radii, ref.radii) and (out.radii[:, :20] == 0).all()
    torch.testing.assert_close(out.conics, ref.conics, rtol=1e-12, atol=0)
    ref_g = _grads(project, means, cov, lambda c: c, opac, vms, ks, False, eps2d=0.0)
    ours_g = _grads(_fused, means, cov, lambda c: c, opac, vms, ks, False, eps2d=0.0)
    _assert_grads_close(ours_g, ref_g)
    # Antialiased: torch's sqrt backward at a zero det ratio gives NaN; the kernel passes no gradient
    # through the compensation there, and matches torch on every Gaussian where torch is finite.
    ref_g = _grads(project, means, cov, lambda c: c, opac, vms, ks, True, eps2d=0.0)
    ours_g = _grads(_fused, means, cov, lambda c: c, opac, vms, ks, True, eps2d=0.0)
    for a, b in zip(ours_g[:3], ref_g[:3]):
        assert torch.isfinite(a).all()
        rows = torch.isfinite(b.reshape(len(b), -1)).all(-1)  # False for the zero covariances' means, covars
        assert rows[10:].all()
        torch.testing.assert_close(a[rows], b[rows], rtol=1e-10, atol=1e-10 * float(b[rows].abs().max()))
    assert torch.isfinite(ours_g[3]).all()


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(3)
    means = torch.tensor([[0.1, -0.2, 0.3], [-0.3, 0.1, 0.0], [0.2, 0.25, -0.1]], dtype=torch.float64)
    f = 0.1 * torch.randn(3, 3, 3, generator=g, dtype=torch.float64) + 0.05 * torch.eye(3, dtype=torch.float64)
    cov = f @ f.transpose(-1, -2)
    opac = torch.tensor([0.7, 0.4, 0.9], dtype=torch.float64)
    vms, ks = cameras(2, 20, 16, dtype=torch.float64)

    def fn(means, cov, opac, vms):
        r = _fused(means, cov, opac, vms, ks, 20, 16, **_kw(True))
        return r.means2d, r.conics, r.depths, r.opacities, r.compensations

    def fn6(means, cov6, opac, vms):
        return fn(means, cov6.unbind(-1), opac, vms)

    leaves = [t.clone().requires_grad_(True) for t in (means, cov, opac, vms)]
    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6, rtol=1e-5)
    cov6 = torch.stack([cov[:, 0, 0], cov[:, 0, 1], cov[:, 0, 2], cov[:, 1, 1], cov[:, 1, 2], cov[:, 2, 2]], -1)
    leaves[1] = cov6.requires_grad_(True)
    assert torch.autograd.gradcheck(fn6, leaves, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_bitwise_same_for_any_thread_count():
    means, quats, scales, opac, _, vms, ks = _scene(3000, "random", torch.float32, n_cam=2)  # 3 chunks
    cov = covariances_from_scales_quats(scales, quats)
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            proj = _fused(means, cov, opac, vms, ks, W, H, **_kw(True))
            runs.append(_outputs(proj, True) + _grads(_fused, means, cov, lambda c: c, opac, vms, ks, True))
    finally:
        torch.set_num_threads(threads)
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))


def test_input_report_counts():
    n = 20
    means, quats, scales, opac, colors, vms, ks = _scene(n, "random", torch.float64, n_cam=1)
    cov = covariances_from_scales_quats(scales, quats).clone()
    opac = opac.clone()
    means, colors = means.clone(), colors.clone()
    means[3, 1] = float("nan")
    colors[5, 2] = float("inf")
    cov[7, 2, 1] = float("nan")
    opac[2] = 1.5  # out of range
    opac[5] = -0.1  # out of range, but its row is non-finite (colors): not counted as such
    cov[4] = -torch.eye(3, dtype=torch.float64)  # not PSD
    cov[9, 0, 1] += 1.0  # not symmetric
    cov[3] = -torch.eye(3, dtype=torch.float64)  # not PSD, but its row is non-finite (means)
    _, report = project_fused(means, cov, opac, vms, ks, W, H, checks=(colors,), **_kw(False))
    assert tuple(report) == (3, 1, 2, 4)
    _, report = project_fused(means, quat_scale_components(quats, scales), opac, vms, ks, W, H, **_kw(False))
    assert tuple(report) == (1, 2, 0, -1)  # Cov6 entries are not checked; no colours given


def _rasterize(backend, covars, opac, means, colors, vms, ks, **kw):
    return rasterize(means, opac, colors, vms, ks, W, H, covars=covars,
                     settings=RasterSettings(backend=backend, near_plane=NEAR, far_plane=FAR), **kw)


def test_rasterize_raises_the_same_errors():
    means, quats, scales, opac, colors, vms, ks = _scene(30, "random", torch.float32, n_cam=1)
    cov = covariances_from_scales_quats(scales, quats).clone()
    cov[[6, 11, 17]] = -torch.eye(3)
    messages = set()
    for backend in ("cpu", "torch"):
        with pytest.raises(SplatError) as err:
            _rasterize(backend, cov, opac, means, colors, vms, ks)
        assert err.value.field == "covars"
        messages.add(str(err.value))
    assert len(messages) == 1 and "Gaussian 6 " in messages.pop() and "(3 such)" in str(err.value)
    bad_opac = opac.clone()
    bad_opac[4] = 1.2
    for backend in ("cpu", "torch"):
        with pytest.raises(SplatError) as err:
            _rasterize(backend, cov, bad_opac, means, colors, vms, ks)
        assert err.value.field == "opacities"  # checked before the covariances, as on the torch path


@pytest.mark.parametrize("sh_degree", [None, 3])
def test_rasterize_culls_non_finite_rows_like_torch(sh_degree):
    means, quats, scales, opac, _, vms, ks = _scene(80, "random", torch.float64, n_cam=2)
    n = len(means)
    colors = gaussians(n, seed=2, dtype=torch.float64, sh_degree=sh_degree)["colors"]
    cov = covariances_from_scales_quats(scales, quats)
    means, opac, colors, cov = means.clone(), opac.clone(), colors.clone(), cov.clone()
    means[1, 0] = float("nan")
    opac[2] = float("nan")
    colors[3].view(-1)[1] = float("inf")
    cov[4, 1, 2] = float("nan")
    results = []
    for backend in ("cpu", "torch"):
        leaves = [t.clone().requires_grad_(True) for t in (cov, opac, means, colors, vms)]
        res = _rasterize(backend, *leaves[:4], leaves[4], ks, sh_degree=sh_degree)
        assert res.backend == backend and res.n_invalid == 4
        res.means2d.retain_grad()
        w = torch.randn(res.colors.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        (res.colors * w).sum().backward()
        grads = [x.grad for x in leaves] + [res.means2d.grad]
        for gr in grads:
            assert torch.isfinite(gr).all()
        assert all((gr[1:5] == 0).all() for gr in grads[:4])
        results.append((res, grads))
    (a, ga), (b, gb) = results
    torch.testing.assert_close(a.colors, b.colors)
    assert torch.equal(a.radii, b.radii) and (a.radii[:, 1:5] == 0).all()
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-7, atol=1e-9 * float(y.abs().max()))


def test_fallback_to_torch_projection_when_the_build_fails(monkeypatch):
    from splat.render.cpu import _project

    caught = failed_build_warnings(monkeypatch, _project._KERNEL)
    assert len(caught) == 1 and "PyTorch projection" in str(caught[0].message)
    means, quats, scales, opac, colors, vms, ks = _scene(50, "random", torch.float32, n_cam=2)
    cov = covariances_from_scales_quats(scales, quats)
    fused = _rasterize("cpu", cov, opac, means, colors, vms, ks)
    monkeypatch.setattr(_project, "load_project_kernel", lambda: None)
    assert not projection_available()
    plain = _rasterize("cpu", cov, opac, means, colors, vms, ks)
    assert plain.backend == "cpu"
    torch.testing.assert_close(plain.colors, fused.colors)
    assert torch.equal(plain.radii, fused.radii)


def _sh_case(dtype, n=300, seed=0):
    """Means, SH coefficients [N, 16, 3] (large enough that some colours clamp at 0) and 3 cameras, the
    last one axis-aligned with Gaussian 0 exactly at its centre (a zero view direction)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype)
    coeffs = 0.5 * torch.randn(n, 16, 3, generator=g, dtype=dtype)
    vms, _ = cameras(2, 20, 20, dtype=dtype)
    still = torch.eye(4, dtype=dtype)
    still[:3, 3] = torch.tensor([0.5, -0.25, 3.0], dtype=dtype)
    means[0] = -still[:3, 3]
    return means, coeffs, torch.cat([vms, still[None]])


def _sh_run(fn, degree, means, coeffs, vms):
    leaves = [t.clone().requires_grad_(True) for t in (means, coeffs, vms)]
    colors = fn(degree, *leaves)
    w = torch.randn(colors.shape, generator=torch.Generator().manual_seed(1), dtype=colors.dtype)
    grads = torch.autograd.grad((colors * w).sum(), leaves, allow_unused=True)
    return [colors] + [torch.zeros_like(x) if gr is None else gr for gr, x in zip(grads, leaves)]


def _sh_torch(degree, means, coeffs, vms):
    dirs = means[None] - camera_centers(vms)[:, None]
    return sh_to_color(degree, dirs, coeffs[None].expand(len(vms), -1, -1, -1))


@pytest.mark.parametrize("degree", range(SH_MAX_DEGREE + 1))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sh_colors_match_torch(dtype, degree):
    means, coeffs, vms = _sh_case(dtype)
    ref = _sh_run(_sh_torch, degree, means, coeffs, vms)
    ours = _sh_run(sh_colors_fused, degree, means, coeffs, vms)
    assert (ref[0] == 0).any() or degree == 0  # some colours are clamped
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    for name, a, b in zip(("colors", "means", "coeffs", "viewmats"), ours, ref):
        assert torch.isfinite(a).all(), name
        # per row (Gaussian, or camera): the Gaussian at camera 2's centre has a gradient of ~1e12
        # (1 / the clamped length), which would hide errors elsewhere
        rows = b.reshape(len(b), -1)
        scale = rows.abs().amax(-1, keepdim=True).clamp_min(1e-30).expand_as(rows)
        got = a.reshape(rows.shape)
        assert ((got - rows).abs() <= rtol * scale).all(), name
    assert (ours[2][:, (degree + 1) ** 2:] == 0).all()


def test_sh_gradcheck_float64():
    means, coeffs, vms = _sh_case(torch.float64, n=4)
    means[0] += 0.3  # away from the camera centre, where the function is smooth
    coeffs = 0.1 * coeffs  # no colour at the clamp

    def fn(means, coeffs, vms):
        return sh_colors_fused(3, means, coeffs, vms)

    leaves = [t.clone().requires_grad_(True) for t in (means, coeffs, vms)]
    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("sh_degree", [1, 4])  # 4: above SH_MAX_DEGREE, the torch sh_to_color on the cpu path
def test_rasterize_sh_matches_torch_backend(sh_degree):
    means, quats, scales, opac, _, vms, ks = _scene(120, "random", torch.float64, n_cam=2)
    coeffs = gaussians(len(means), seed=7, dtype=torch.float64, sh_degree=sh_degree)["colors"]
    cov = covariances_from_scales_quats(scales, quats)
    results = []
    for backend in ("cpu", "torch"):
        leaves = [t.clone().requires_grad_(True) for t in (cov, opac, means, coeffs, vms)]
        res = _rasterize(backend, *leaves, ks, sh_degree=sh_degree)
        w = torch.randn(res.colors.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        (res.colors * w).sum().backward()
        results.append((res.colors, [x.grad for x in leaves]))
    (a, ga), (b, gb) = results
    torch.testing.assert_close(a, b)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-7, atol=1e-9 * float(y.abs().max()))
