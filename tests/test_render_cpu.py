"""The C++ CPU kernel against the pure-PyTorch twin: images and every input gradient.

Budget: ~40 s including the first JIT build of the extension when torch's cache is warm (~1-2 min cold,
once per machine); the 50k-Gaussian forward case is marked slow.
"""

from __future__ import annotations

import math

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
    nondet = 0.0  # the backward is bitwise reproducible (per-pair rows summed in list order)
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


def test_backward_is_bitwise_reproducible_for_any_thread_count():
    # Each tile-Gaussian pair writes its own gradient row and rows are summed per Gaussian in list order,
    # so neither the (dynamic) tile order nor the thread count changes a bit.
    p = gaussians(3000, seed=4)
    vms, ks = cameras(1, 96, 80)
    before = torch.get_num_threads()
    grads = []
    try:
        for threads in (1, 2, 1, 2, 3):
            torch.set_num_threads(threads)
            leaves = {k: v.clone().requires_grad_(True) for k, v in p.items()}
            bg = torch.tensor([0.3, 0.6, 0.9], requires_grad=True)
            r = rasterize(leaves["means"], leaves["opacities"], leaves["colors"], vms, ks, 96, 80, backgrounds=bg,
                          quats=leaves["quats"], scales=leaves["scales"], settings=RasterSettings(backend="cpu"))
            ((r.colors * torch.linspace(0, 1, 3)).sum() + r.alphas.square().sum()).backward()
            grads.append({**{k: v.grad for k, v in leaves.items()}, "background": bg.grad})
    finally:
        torch.set_num_threads(before)
    for g in grads[1:]:
        for k in g:
            assert torch.equal(g[k], grads[0][k]), k


# ---- The kernel on hand-made screen-space Gaussians, against the twin's rasterize_to_pixels directly. ----


def _screen_gaussians(n, width, height, seed, *, aniso=8.0, opacity=(0.1, 0.95), centre=None, spread=None,
                      dtype=torch.float32):
    """n screen-space Gaussians: means, conics of rotated ellipses (axis ratio up to ``aniso``), colors,
    opacities, box radii from the covariance (3.33 sigma, as the projection) and distinct depths."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    if centre is None:
        means = rand(n, 2) * torch.tensor([width + 8.0, height + 8.0], dtype=torch.float64) - 4
    else:
        means = torch.tensor(centre, dtype=torch.float64) + (rand(n, 2) - 0.5) * spread
    sx = 0.7 + 4 * rand(n)
    sy = sx / (1 + (aniso - 1) * rand(n))
    th = rand(n) * math.pi
    c, s = torch.cos(th), torch.sin(th)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    cov = rot @ torch.diag_embed(torch.stack([sx, sy], -1) ** 2) @ rot.transpose(-1, -2)
    inv = torch.linalg.inv(cov)
    conics = torch.stack([inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 1]], -1)
    radii = torch.ceil(3.33 * torch.sqrt(torch.stack([cov[:, 0, 0], cov[:, 1, 1]], -1))).to(torch.int32)
    lo, hi = opacity
    opac = lo + (hi - lo) * rand(n)
    colors = rand(n, 3)
    depths = 1 + rand(n)
    return [x.to(dtype) for x in (means, conics, colors, opac)] + [radii, depths.to(dtype)]


def _compare_screen(inputs, width, height, *, bg=True, seed=0, atol_img=1e-5):
    from splat.render._reference import rasterize_to_pixels as twin

    means2d, conics, colors, opac, radii, depths = inputs
    background = torch.tensor([0.2, 0.5, 0.8], dtype=means2d.dtype) if bg else None
    outs = {}
    for name, fn in (("cpu", rasterize_to_pixels), ("torch", twin)):
        leaves = [x.clone().requires_grad_(True) for x in (means2d, conics, colors, opac)]
        b = None if background is None else background.clone().requires_grad_(True)
        img, alpha = fn(*leaves, radii, depths, width, height, b)
        g = torch.Generator().manual_seed(seed + 3)
        w_i = torch.randn(img.shape, generator=g, dtype=img.dtype)
        w_a = torch.randn(alpha.shape, generator=g, dtype=img.dtype)
        ((img * w_i).sum() + (alpha * w_a).sum()).backward()
        outs[name] = (img.detach(), alpha.detach(), [x.grad for x in leaves] + ([b.grad] if bg else []))
    (img, alpha, grads), (img_r, alpha_r, grads_r) = outs["cpu"], outs["torch"]
    _close(img, img_r, "image", atol_rel=atol_img)
    _close(alpha, alpha_r, "alpha", atol_rel=atol_img)
    for name, a, b in zip(("means2d", "conics", "colors", "opacities", "background"), grads, grads_r):
        if b is None:  # no Gaussians: the twin's image does not depend on them
            assert a is None or a.numel() == 0, name
            continue
        assert torch.isfinite(a).all(), name
        _close(a, b, f"grad {name}")
    return img, alpha


@pytest.mark.parametrize("width,height", [(25, 19), (16, 16), (9, 40), (41, 7), (1, 1)])
def test_image_borders_not_multiples_of_the_tile(width, height):
    # Tail tiles whose last columns fill part of one 8-pixel half (25: 9 columns; 41: 9; 9: 9) or none of
    # the second half (19 rows: 3 in the last tile; 7: one block of rows only).
    inputs = _screen_gaussians(150, width, height, seed=width * 100 + height)
    _compare_screen(inputs, width, height)


def test_empty_tiles_and_no_gaussians():
    # All Gaussians in one corner: most tiles have empty lists (and get the background only).
    inputs = _screen_gaussians(60, 80, 64, seed=5, centre=(10.0, 9.0), spread=8.0)
    inputs[4] = inputs[4].clamp_max(6)  # boxes within the first 2x2 tiles
    img, alpha = _compare_screen(inputs, 80, 64)
    assert float(alpha[40:, 40:].abs().max()) == 0.0
    torch.testing.assert_close(img[40:, 40:], torch.tensor([0.2, 0.5, 0.8]).expand(24, 40, 3))
    empty = [x[:0] for x in inputs]
    img, alpha = _compare_screen(empty, 33, 17)
    assert float(alpha.abs().max()) == 0.0


def test_many_gaussians_in_one_tile_stop_early():
    # 3000 fairly opaque Gaussians over one tile: pixels reach T <= 1e-4 after a few dozen and the tile
    # stops (early termination); the gradients must still match the twin, which composites everything.
    inputs = _screen_gaussians(3000, 48, 40, seed=8, opacity=(0.3, 0.9), centre=(24.0, 20.0), spread=14.0)
    _, alpha = _compare_screen(inputs, 48, 40)
    centre = alpha[14:26, 18:30]
    assert float((centre > 0.999).float().mean()) > 0.9  # saturated ...
    assert float(centre.max()) < 1 - 1e-4 + 1e-6  # ... and stopped before T <= 1e-4


def test_sheared_faint_and_degenerate_conics():
    # Long thin sheared ellipses with opacities close to 1/255 (footprints near the culling bounds), plus
    # conics that are not positive definite (det <= 0: sigma < 0 in some directions, skipped; no culling).
    inputs = _screen_gaussians(300, 64, 48, seed=9, aniso=40.0, opacity=(1 / 255 - 2e-4, 0.05))
    conics = inputs[1]
    conics[:18] *= 0.002  # keeps sigma > -88 in their boxes: the twin's exp(-sigma) would overflow (NaN grads)
    conics[:10, 1] = torch.sqrt(conics[:10, 0] * conics[:10, 2]) * 1.5  # det < 0
    conics[10:15, 0] = -conics[10:15, 0]  # a < 0
    conics[15:18, 1] = 0.0
    conics[15:18, 2] = 0.0  # det = 0: a band along y
    inputs[4][:18] = inputs[4][:18].clamp_max(10)
    _compare_screen(inputs, 64, 48)


def test_footprint_keeps_every_pixel_the_exact_test_keeps():
    # Count per pixel the Gaussians whose alpha >= 1/255 there (float64 exact test, dense) and check the
    # kernel composited that many (n_contrib equals the last composited list position, so with nothing
    # saturating it counts the list prefix: use very faint Gaussians so no pixel stops early).
    from splat.render.cpu import load_kernel

    width, height = 70, 45
    means2d, conics, colors, opac, radii, depths = _screen_gaussians(400, width, height, seed=12, aniso=25.0,
                                                                     opacity=(0.004, 0.02), dtype=torch.float64)
    ext = load_kernel()
    img, alpha, final_t, n_contrib, offsets, ids, records = ext.forward(
        means2d, conics, colors, opac, radii, depths, None, width, height)
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    dx = means2d[:, 0, None, None] - xs
    dy = means2d[:, 1, None, None] - ys
    a, b, c = (conics[:, i, None, None] for i in range(3))
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha_g = torch.clamp_max(opac[:, None, None] * torch.exp(-sigma), 0.999)
    # Only inside each Gaussian's tile box, as binned.
    tx, ty = (xs // 16).long(), (ys // 16).long()
    m = means2d.float() / 16
    r = radii.to(torch.float32) / 16
    x0 = torch.floor(m[:, 0:1] - r[:, 0:1]).clamp_min(0)[:, :, None]
    x1 = torch.ceil(m[:, 0:1] + r[:, 0:1])[:, :, None]
    y0 = torch.floor(m[:, 1:2] - r[:, 1:2]).clamp_min(0)[:, :, None]
    y1 = torch.ceil(m[:, 1:2] + r[:, 1:2])[:, :, None]
    in_box = (tx >= x0) & (tx < x1) & (ty >= y0) & (ty < y1)
    hits = ((sigma >= 0) & (alpha_g >= 1 / 255) & in_box)
    assert hits.any()
    # The kernel's transmittance is the product of (1 - alpha) over exactly those Gaussians.
    expect_t = torch.where(hits, 1 - alpha_g, torch.ones_like(alpha_g)).prod(0)
    torch.testing.assert_close(final_t, expect_t, rtol=1e-12, atol=1e-12)
