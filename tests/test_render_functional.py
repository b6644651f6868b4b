"""Public rasterize(): closed-form images, render modes, bad input, NaN culling, backend choice.

Budget: < 15 s (the C++ extension is already cached by then, or built once).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from render_fixtures import cameras, failed_build_warnings, gaussians
from splat.errors import SplatError
from splat.render import RasterResult, RasterSettings, rasterize
from splat.maths import covariances_from_scales_quats
from splat.render._sh import sh_to_color

BACKENDS = ["cpu", "torch"]


def _one_gaussian(width, height, opacity, scale, depth, f, dtype=torch.float32):
    means = torch.tensor([[0.0, 0.0, depth]], dtype=dtype)
    vm = torch.eye(4, dtype=dtype)[None]
    ks = torch.tensor([[[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]]], dtype=dtype)
    quats = torch.tensor([[1.0, 0, 0, 0]], dtype=dtype)
    scales = torch.full((1, 3), scale, dtype=dtype)
    return means, torch.tensor([opacity], dtype=dtype), vm, ks, quats, scales


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opacity", [0.5, 1.0])
def test_single_gaussian_at_centre_matches_closed_form(backend, opacity):
    w, h, f, s, z = 37, 30, 40.0, 0.1, 2.0
    means, opac, vm, ks, quats, scales = _one_gaussian(w, h, opacity, s, z, f)
    color = torch.tensor([[0.9, 0.4, 0.1]])
    bg = torch.tensor([0.2, 0.3, 0.5])
    res = rasterize(means, opac, color, vm, ks, w, h, quats=quats, scales=scales, backgrounds=bg,
                    settings=RasterSettings(backend=backend))
    var = (f * s / z) ** 2 + 0.3  # EWA: J Sigma J^T at the optical axis, plus eps2d
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    r2 = (xs - w / 2) ** 2 + (ys - h / 2) ** 2
    alpha = torch.clamp_max(opacity * torch.exp(-0.5 * r2 / var), 0.999)
    extent = min(3.33, math.sqrt(2 * math.log(255 * opacity)))
    radius = math.ceil(extent * math.sqrt(var))
    inside = ((xs - w / 2).abs() <= radius) & ((ys - h / 2).abs() <= radius)
    alpha = torch.where((alpha >= 1 / 255) & inside, alpha, 0.0)
    expected = alpha[..., None] * color[0] + (1 - alpha[..., None]) * bg
    torch.testing.assert_close(res.alphas[0, ..., 0], alpha, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(res.colors[0], expected, atol=1e-6, rtol=1e-5)
    assert res.radii[0, 0].tolist() == [radius, radius]
    torch.testing.assert_close(res.means2d[0, 0], torch.tensor([w / 2, h / 2]))
    torch.testing.assert_close(res.depths[0, 0], torch.tensor(z))


@pytest.mark.parametrize("backend", BACKENDS)
def test_depth_modes(backend):
    p = gaussians(150, seed=3)
    vms, ks = cameras(2, 33, 27)
    kw = dict(quats=p["quats"], scales=p["scales"])
    out = {}
    for mode in ["RGB", "D", "ED", "RGB+D", "RGB+ED"]:
        out[mode] = rasterize(p["means"], p["opacities"], p["colors"], vms, ks, 33, 27, **kw,
                              backgrounds=torch.ones(3), settings=RasterSettings(render_mode=mode, backend=backend))
    assert out["RGB"].colors.shape == (2, 27, 33, 3)
    assert out["D"].colors.shape == (2, 27, 33, 1) and out["RGB+ED"].colors.shape == (2, 27, 33, 4)
    torch.testing.assert_close(out["RGB+D"].colors[..., :3], out["RGB"].colors)
    torch.testing.assert_close(out["RGB+D"].colors[..., 3:], out["D"].colors)  # depth bg is 0
    ed = out["D"].colors / out["D"].alphas.clamp_min(1e-10)
    torch.testing.assert_close(out["ED"].colors, ed)
    torch.testing.assert_close(out["RGB+ED"].colors[..., 3:], ed)
    covered = out["D"].alphas[..., 0] > 0.5
    depths = out["D"].depths
    assert covered.any()
    e = out["ED"].colors[..., 0][covered]
    assert float(e.min()) >= float(depths[out["D"].radii[..., 0] > 0].min()) - 1e-4


def test_multi_camera_equals_single_camera_and_backends_agree():
    p = gaussians(200, seed=5)
    vms, ks = cameras(3, 30, 20)
    kw = dict(quats=p["quats"], scales=p["scales"])
    both = rasterize(p["means"], p["opacities"], p["colors"], vms, ks, 30, 20, **kw)
    assert both.backend in ("cpu", "torch")
    for c in range(3):
        one = rasterize(p["means"], p["opacities"], p["colors"], vms[c:c + 1], ks[c:c + 1], 30, 20, **kw)
        torch.testing.assert_close(one.colors[0], both.colors[c])
        torch.testing.assert_close(one.radii[0], both.radii[c])


@pytest.mark.parametrize("backend", BACKENDS)
def test_sh_equals_precomputed_colors(backend):
    p = gaussians(120, seed=6, sh_degree=2)
    vms, ks = cameras(1, 25, 25)
    kw = dict(quats=p["quats"], scales=p["scales"], settings=RasterSettings(backend=backend))
    sh = rasterize(p["means"], p["opacities"], p["colors"], vms, ks, 25, 25, sh_degree=2, **kw)
    cam = torch.inverse(vms)[0, :3, 3]
    rgb = sh_to_color(2, p["means"] - cam, p["colors"])
    direct = rasterize(p["means"], p["opacities"], rgb, vms, ks, 25, 25, **kw)
    torch.testing.assert_close(sh.colors, direct.colors)
    sh1 = rasterize(p["means"], p["opacities"], p["colors"], vms, ks, 25, 25, sh_degree=1, **kw)
    assert not torch.allclose(sh1.colors, sh.colors)


@pytest.mark.parametrize("backend", BACKENDS)
def test_covars_equal_quats_scales_and_means2d_grad(backend):
    p = gaussians(100, seed=8)
    vms, ks = cameras(2, 24, 24)
    s = RasterSettings(backend=backend)
    a = rasterize(p["means"], p["opacities"], p["colors"], vms, ks, 24, 24, quats=p["quats"], scales=p["scales"],
                  settings=s)
    covars = covariances_from_scales_quats(p["scales"], p["quats"])
    b = rasterize(p["means"], p["opacities"], p["colors"], vms, ks, 24, 24, covars=covars, settings=s)
    torch.testing.assert_close(a.colors, b.colors)
    means = p["means"].clone().requires_grad_(True)
    r = rasterize(means, p["opacities"], p["colors"], vms, ks, 24, 24, covars=covars, settings=s)
    r.means2d.retain_grad()
    r.colors.sum().backward()
    g = r.means2d.grad
    assert g.shape == (2, 100, 2)
    assert (g[r.radii[..., 0] == 0] == 0).all()
    assert g.abs().sum() > 0 and means.grad.abs().sum() > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_gaussian_is_culled_and_counted(backend):
    p = gaussians(60, seed=9)
    vms, ks = cameras(1, 32, 32)
    s = RasterSettings(backend=backend)
    clean = rasterize(p["means"][1:], p["opacities"][1:], p["colors"][1:], vms, ks, 32, 32, quats=p["quats"][1:],
                      scales=p["scales"][1:], settings=s)
    for field in ["means", "quats", "scales", "opacities", "colors"]:
        q = {k: v.clone() for k, v in p.items()}
        q[field][0] = float("nan") if field != "scales" else float("inf")
        leaves = {k: v.requires_grad_(True) for k, v in q.items()}
        r = rasterize(leaves["means"], leaves["opacities"], leaves["colors"], vms, ks, 32, 32, quats=leaves["quats"],
                      scales=leaves["scales"], settings=s)
        assert r.n_invalid == 1
        assert (r.radii[:, 0] == 0).all()
        torch.testing.assert_close(r.colors, clean.colors)
        r.colors.sum().backward()
        for k, v in leaves.items():
            assert torch.isfinite(v.grad).all(), (field, k)
            assert (v.grad[0] == 0).all()


def test_empty_and_fully_culled_scenes_render_background():
    vms, ks = cameras(2, 20, 10)
    bg = torch.tensor([0.1, 0.2, 0.3])
    for be in BACKENDS:
        r = rasterize(torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 3), vms, ks, 20, 10, quats=torch.zeros(0, 4),
                      scales=torch.zeros(0, 3), backgrounds=bg, settings=RasterSettings(backend=be))
        assert r.colors.shape == (2, 10, 20, 3) and (r.colors == bg).all() and (r.alphas == 0).all()
        behind = torch.tensor([[0.0, 0.0, 50.0]]) @ vms[0, :3, :3]  # far behind camera 0 is fine; use near cull
        r = rasterize(behind, torch.ones(1) * 0.5, torch.ones(1, 3), vms[:1], ks[:1], 20, 10,
                      quats=torch.tensor([[1.0, 0, 0, 0]]), scales=torch.full((1, 3), 0.1),
                      settings=RasterSettings(backend=be, far_plane=10.0))
        assert (r.alphas == 0).all() and r.radii.sum() == 0


def _base():
    p = gaussians(5, seed=1)
    vms, ks = cameras(2, 16, 16)
    return dict(means=p["means"], opacities=p["opacities"], colors=p["colors"], viewmats=vms, Ks=ks, width=16,
                height=16, quats=p["quats"], scales=p["scales"])


BAD = [
    ("means", lambda a: a.update(means=a["means"][:, :2]), "means"),
    ("means-dtype", lambda a: a.update(means=a["means"].half()), "means"),
    ("int-means", lambda a: a.update(means=a["means"].long()), "means"),
    ("opacities-shape", lambda a: a.update(opacities=a["opacities"][:3]), "opacities"),
    ("opacity-range", lambda a: a.update(opacities=a["opacities"] + 1.5), "opacities"),
    ("colors-dtype", lambda a: a.update(colors=a["colors"].double()), "colors"),
    ("colors-shape", lambda a: a.update(colors=a["colors"][:, None]), "colors"),
    ("sh-too-few", lambda a: a.update(colors=torch.zeros(5, 3, 3), sh_degree=1), "colors"),
    ("sh-degree", lambda a: a.update(colors=torch.zeros(5, 36, 3), sh_degree=5), "sh_degree"),
    ("no-shape", lambda a: (a.pop("quats"), a.pop("scales")), "covars"),
    ("both-shapes", lambda a: a.update(covars=torch.eye(3).repeat(5, 1, 1)), "covars"),
    ("quats-missing", lambda a: a.pop("quats"), "quats"),
    ("non-psd", lambda a: (a.pop("quats"), a.pop("scales"), a.update(covars=-torch.eye(3).repeat(5, 1, 1))), "covars"),
    ("asym", lambda a: (a.pop("quats"), a.pop("scales"),
                        a.update(covars=torch.tensor([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]]).repeat(5, 1, 1))), "covars"),
    ("viewmats-shape", lambda a: a.update(viewmats=a["viewmats"][:, :3]), "viewmats"),
    ("Ks-count", lambda a: a.update(Ks=a["Ks"][:1]), "Ks"),
    ("viewmats-nan", lambda a: a["viewmats"].__setitem__((0, 0, 0), float("nan")), "viewmats"),
    ("Ks-inf", lambda a: a["Ks"].__setitem__((1, 0, 2), float("inf")), "Ks"),
    ("Ks-focal", lambda a: a["Ks"].__setitem__((1, 0, 0), 0.0), "Ks"),
    ("width-0", lambda a: a.update(width=0), "width"),
    ("height-neg", lambda a: a.update(height=-3), "height"),
    ("width-float", lambda a: a.update(width=16.0), "width"),
    ("bg-shape", lambda a: a.update(backgrounds=torch.zeros(4)), "backgrounds"),
    ("bg-nan", lambda a: a.update(backgrounds=torch.full((3,), float("nan"))), "backgrounds"),
    ("not-tensor", lambda a: a.update(opacities=[0.5] * 5), "opacities"),
    ("meta-device", lambda a: a.update(colors=a["colors"].to("meta")), "colors"),
]


@pytest.mark.parametrize("name,mutate,field", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_splat_error(name, mutate, field):
    a = _base()
    a["viewmats"] = a["viewmats"].clone()
    a["Ks"] = a["Ks"].clone()
    mutate(a)
    args = [a.pop(k) for k in ("means", "opacities", "colors", "viewmats", "Ks", "width", "height")]
    with pytest.raises(SplatError) as err:
        rasterize(*args, **a)
    assert err.value.field == field


@pytest.mark.parametrize("change,field", [
    (dict(render_mode="RGBD"), "render_mode"), (dict(backend="cuda"), "backend"),
    (dict(near_plane=0.0), "near_plane"), (dict(near_plane=5.0, far_plane=1.0), "near_plane"),
    (dict(eps2d=-1.0), "eps2d"),
])
def test_bad_settings(change, field):
    with pytest.raises(SplatError) as err:
        dataclasses.replace(RasterSettings(), **change)
    assert err.value.field == field


def test_gsplat_backend_needs_cuda_tensors():
    a = _base()
    args = [a.pop(k) for k in ("means", "opacities", "colors", "viewmats", "Ks", "width", "height")]
    with pytest.raises(SplatError) as err:
        rasterize(*args, **a, settings=RasterSettings(backend="gsplat"))
    assert err.value.field == "backend"


def test_fallback_to_torch_when_compiler_fails(monkeypatch):
    from splat.render.cpu import _function

    caught = failed_build_warnings(monkeypatch, _function._KERNEL)
    assert len(caught) == 1 and "pure-PyTorch" in str(caught[0].message)
    monkeypatch.setattr(_function, "load_kernel", lambda: None)
    a = _base()
    args = [a.pop(k) for k in ("means", "opacities", "colors", "viewmats", "Ks", "width", "height")]
    assert rasterize(*args, **a).backend == "torch"
    assert rasterize(*args, **a, settings=RasterSettings(backend="cpu")).backend == "torch"


def test_result_is_typed():
    a = _base()
    args = [a.pop(k) for k in ("means", "opacities", "colors", "viewmats", "Ks", "width", "height")]
    r = rasterize(*args, **a)
    assert isinstance(r, RasterResult)
    assert r.radii.dtype == torch.int32 and r.radii.shape == (2, 5, 2)
    assert r.means2d.shape == (2, 5, 2) and r.depths.shape == (2, 5) and r.n_invalid == 0
