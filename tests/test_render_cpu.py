"""The C++ CPU kernel against the pure-PyTorch twin: images and every input gradient.

Budget: ~40 s including the first JIT build of the extension when torch's cache is warm (~1-2 min cold,
once per machine); the 50k-Gaussian forward case is marked slow.
"""

from __future__ import annotations

import pytest
import torch

from render_fixtures import cameras, gaussians
from splat.render import RasterSettings, rasterize
from splat.render.cpu import kernel_available, rasterize_to_pixels



@pytest.fixture(autouse=True, scope="module")
def _kernel():
    # Built (first time on a machine, ~1 min) or loaded here rather than at collection time.
    if not kernel_available():
        pytest.skip("C++ extension could not be built")


def _close(actual, expected, name, rtol=2e-4, atol_rel=2e-4):
    scale = max(1.0, float(expected.detach().abs().max())) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol_rel * scale, msg=lambda m: f"{name}: {m}")


def _run(backend, params, n_cam, width, height, *, mode="RGB", bg=False, covars=False, sh_degree=None,
         antialiased=False, seed=0):
    vms, ks = cameras(n_cam, width, height)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    vms = vms.clone().requires_grad_(True)
    kw = {}
    if covars:
        from splat.maths import covariances_from_scales_quats

        cov = covariances_from_scales_quats(params["scales"], params["quats"]).detach().requires_grad_(True)
        leaves = {k: v for k, v in leaves.items() if k not in ("quats", "scales")}
        leaves["covars"] = cov
        kw["covars"] = cov
    else:
        kw["quats"], kw["scales"] = leaves["quats"], leaves["scales"]
    d = 3
    background = None
    if bg:
        background = (0.2 + 0.6 * torch.rand(n_cam, d, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
        leaves["backgrounds"] = background
    leaves["viewmats"] = vms
    res = rasterize(leaves["means"], leaves["opacities"], leaves["colors"], vms, ks, width, height,
                    sh_degree=sh_degree, backgrounds=background,
                    settings=RasterSettings(render_mode=mode, backend=backend, antialiased=antialiased), **kw)
    assert res.backend == backend
    g = torch.Generator().manual_seed(seed + 7)
    w_c = torch.randn(res.colors.shape, generator=g)
    w_a = torch.randn(res.alphas.shape, generator=g)
    res.means2d.retain_grad()
    ((res.colors * w_c).sum() + (res.alphas * w_a).sum()).backward()
    grads = {k: v.grad for k, v in leaves.items()}
    grads["means2d"] = res.means2d.grad
    return res, grads


def _compare(params, n_cam, width, height, **kw):
    ref, g_ref = _run("torch", params, n_cam, width, height, **kw)
    out, g_out = _run("cpu", params, n_cam, width, height, **kw)
    _close(out.colors, ref.colors, "colors", atol_rel=1e-5)
    _close(out.alphas, ref.alphas, "alphas", atol_rel=1e-5)
    torch.testing.assert_close(out.radii, ref.radii)
    assert out.n_invalid == ref.n_invalid
    for k in g_ref:
        if g_ref[k] is None:
            assert g_out[k] is None, k
            continue
        assert torch.isfinite(g_out[k]).all(), k
        _close(g_out[k], g_ref[k], f"grad {k}")
    return out


CASES = [
    # kind, N, cameras, width, height, extra settings
    ("random", 1, 1, 37, 53, {}),
    ("random", 300, 3, 37, 53, {"bg": True}),
    ("anisotropic", 300, 2, 48, 32, {"covars": True}),
    ("flat", 200, 2, 33, 20, {"covars": True}),
    ("needle", 150, 1, 40, 40, {"covars": True, "bg": True}),
    ("huge_tiny", 200, 2, 37, 53, {"mode": "RGB+ED"}),
    ("opacity_extremes", 400, 2, 37, 53, {"mode": "RGB+D", "bg": True}),
    ("near_far", 300, 3, 50, 30, {"mode": "D"}),
    ("random", 300, 1, 29, 17, {"mode": "ED"}),
    ("random", 250, 2, 37, 53, {"antialiased": True, "bg": True}),
]


@pytest.mark.parametrize("kind,n,n_cam,width,height,extra", CASES, ids=[f"{c[0]}-{c[1]}-{c[5]}" for c in CASES])
def test_cpu_matches_torch_twin(kind, n, n_cam, width, height, extra):
    params = gaussians(n, seed=n + len(kind), kind=kind)
    out = _compare(params, n_cam, width, height, **extra)
    assert out.colors.shape[:3] == (n_cam, height, width)


def test_sh_colors_match_twin():
    params = gaussians(200, seed=3, sh_degree=3)
    _compare(params, 2, 37, 41, sh_degree=3, bg=True)


def test_dense_scene_saturates_and_matches():
    # Many opaque overlapping Gaussians: most pixels hit the transmittance stop.
    params = gaussians(1500, seed=11)
    params["opacities"] = torch.full_like(params["opacities"], 0.97)
    params["scales"] = params["scales"] * 2
    out = _compare(params, 1, 32, 32)
    assert float((out.alphas > 0.999).float().mean()) > 0.3


def test_gradcheck_kernel_float64():
    g = torch.Generator().manual_seed(0)
    n, w, h = 4, 20, 18
    means2d = (torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([w, h])).requires_grad_(True)
    conics = torch.tensor([[0.09, 0.02, 0.05], [0.2, -0.05, 0.1], [0.04, 0.0, 0.3], [0.15, 0.03, 0.06]],
                          dtype=torch.float64, requires_grad=True)
    colors = torch.rand(n, 2, generator=g, dtype=torch.float64).requires_grad_(True)
    opac = torch.tensor([0.7, 0.5, 0.9, 0.6], dtype=torch.float64, requires_grad=True)
    bg = torch.tensor([0.3, 0.8], dtype=torch.float64, requires_grad=True)
    radii = torch.full((n, 2), 12, dtype=torch.int32)
    depths = torch.arange(n, dtype=torch.float64) + 1.0

    def f(m, c, col, o, b):
        img, alpha = rasterize_to_pixels(m, c, col, o, radii, depths, w, h, b)
        return img, alpha

    args = (means2d, conics, colors, opac, bg)
    nondet = 0.0  # the backward is bitwise reproducible (static tile order per thread)
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True, nondet_tol=nondet)
    # Full Jacobian on a crop small enough to be quick (one output row per pixel and channel).
    w, h = 8, 7
    with torch.no_grad():
        means2d[:, 0] = torch.tensor([2.0, 6.5, 4.2, 7.7], dtype=torch.float64)
        means2d[:, 1] = torch.tensor([3.1, 2.2, 5.9, 4.4], dtype=torch.float64)
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5, rtol=1e-4, nondet_tol=nondet)


def test_gradcheck_full_pipeline_float64():
    p = gaussians(3, seed=5, dtype=torch.float64)
    vms, ks = cameras(1, 19, 15, dtype=torch.float64, radius=2.0)
    p["scales"] = p["scales"] * 4
    p["opacities"] = torch.tensor([0.6, 0.8, 0.5], dtype=torch.float64)
    leaves = [p["means"], p["quats"], p["scales"], p["opacities"], p["colors"]]
    leaves = [x.clone().requires_grad_(True) for x in leaves]

    def f(means, quats, scales, opac, colors):
        r = rasterize(means, opac, colors, vms, ks, 19, 15, quats=quats, scales=scales,
                      settings=RasterSettings(backend="cpu", render_mode="RGB+ED"))
        return r.colors, r.alphas

    assert torch.autograd.gradcheck(f, tuple(leaves), eps=1e-6, atol=1e-4, rtol=1e-3, fast_mode=True)


def test_float64_matches_float32():
    p = gaussians(200, seed=2)
    vms, ks = cameras(1, 37, 53)
    r32 = rasterize(p["means"], p["opacities"], p["colors"], vms, ks, 37, 53, quats=p["quats"], scales=p["scales"],
                    settings=RasterSettings(backend="cpu"))
    p64 = {k: v.double() for k, v in p.items()}
    r64 = rasterize(p64["means"], p64["opacities"], p64["colors"], vms.double(), ks.double(), 37, 53,
                    quats=p64["quats"], scales=p64["scales"], settings=RasterSettings(backend="cpu"))
    torch.testing.assert_close(r64.colors.float(), r32.colors, atol=2e-4, rtol=1e-3)


@pytest.mark.slow
def test_50k_gaussians_forward_matches_twin():
    p = gaussians(50_000, seed=9)
    p["scales"] = p["scales"] * 0.5
    vms, ks = cameras(1, 40, 36)
    with torch.no_grad():
        kw = dict(quats=p["quats"], scales=p["scales"])
        a = rasterize(p["means"], p["opacities"], p["colors"], vms, ks, 40, 36, **kw,
                      settings=RasterSettings(backend="cpu", render_mode="RGB+ED"))
        b = rasterize(p["means"], p["opacities"], p["colors"], vms, ks, 40, 36, **kw,
                      settings=RasterSettings(backend="torch", render_mode="RGB+ED"))
    _close(a.colors, b.colors, "colors", atol_rel=1e-5)
    _close(a.alphas, b.alphas, "alphas", atol_rel=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_backward_is_bitwise_reproducible_for_a_thread_count(threads):
    p = gaussians(3000, seed=4)
    vms, ks = cameras(1, 96, 80)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        grads = []
        for _ in range(3):
            leaves = {k: v.clone().requires_grad_(True) for k, v in p.items()}
            r = rasterize(leaves["means"], leaves["opacities"], leaves["colors"], vms, ks, 96, 80,
                          quats=leaves["quats"], scales=leaves["scales"], settings=RasterSettings(backend="cpu"))
            (r.colors * torch.linspace(0, 1, 3)).sum().backward()
            grads.append({k: v.grad for k, v in leaves.items()})
    finally:
        torch.set_num_threads(before)
    for g in grads[1:]:
        for k in g:
            assert torch.equal(g[k], grads[0][k]), k
