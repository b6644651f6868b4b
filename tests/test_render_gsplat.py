"""The "gsplat" backend (CUDA) against our CPU kernel: same images and gradients. Skipped without CUDA.

Budget: < 10 s on a GPU machine (gsplat's CUDA extension is prebuilt or cached).
"""

from __future__ import annotations

import pytest
import torch

from render_fixtures import cameras, gaussians
from splat.render import RasterSettings, rasterize

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("mode", ["RGB", "RGB+ED", "D"])
@pytest.mark.parametrize("sh_degree", [None, 2])
def test_gsplat_backend_matches_cpu(mode, sh_degree):
    from splat.render._gsplat import gsplat_available

    if not gsplat_available():
        pytest.skip("gsplat's CUDA extension is unavailable")
    p = gaussians(400, seed=1, sh_degree=sh_degree)
    vms, ks = cameras(2, 37, 53)
    bg = torch.tensor([0.2, 0.4, 0.6])
    out = {}
    for backend, dev in (("cpu", "cpu"), ("gsplat", "cuda")):
        leaves = {k: v.to(dev).requires_grad_(True) for k, v in p.items()}
        r = rasterize(leaves["means"], leaves["opacities"], leaves["colors"], vms.to(dev), ks.to(dev), 37, 53,
                      quats=leaves["quats"], scales=leaves["scales"], sh_degree=sh_degree,
                      backgrounds=bg.to(dev) if mode == "RGB" else None,
                      settings=RasterSettings(backend=backend, render_mode=mode))
        assert r.backend == backend
        w = torch.randn(r.colors.shape, generator=torch.Generator().manual_seed(0)).to(dev)
        (r.colors * w).sum().backward()
        out[backend] = (r, {k: v.grad.cpu() for k, v in leaves.items()})
    a, b = out["cpu"][0], out["gsplat"][0]
    torch.testing.assert_close(b.colors.cpu(), a.colors, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(b.alphas.cpu(), a.alphas, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(b.means2d.detach().cpu(), a.means2d.detach(), atol=1e-3, rtol=1e-4)
    assert b.radii.shape == a.radii.shape and b.radii.dtype == torch.int32
    for k, g in out["cpu"][1].items():
        scale = max(1.0, float(g.abs().max()))
        torch.testing.assert_close(out["gsplat"][1][k], g, atol=5e-3 * scale, rtol=5e-3, msg=k)


def test_auto_picks_gsplat_for_cuda_tensors():
    from splat.render._gsplat import gsplat_available

    if not gsplat_available():
        pytest.skip("gsplat's CUDA extension is unavailable")
    p = {k: v.cuda() for k, v in gaussians(50, seed=2).items()}
    vms, ks = cameras(1, 16, 16)
    r = rasterize(p["means"], p["opacities"], p["colors"], vms.cuda(), ks.cuda(), 16, 16, quats=p["quats"],
                  scales=p["scales"])
    assert r.backend == "gsplat" and r.colors.is_cuda
