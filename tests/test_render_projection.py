"""Projection (EWA, conics, compensation), covariance and SH against gsplat's pure-torch helpers on CPU.

Budget: < 3 s.
"""

from __future__ import annotations

import pytest
import torch
from gsplat.cuda import _torch_impl as gs

from render_fixtures import cameras, gaussians
from splat.render._projection import camera_centers, project, quat_scale_to_covar
from splat.render._sh import sh_basis, sh_to_color


@pytest.mark.parametrize("kind", ["random", "anisotropic", "flat", "needle", "near_far", "huge_tiny"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_projection_matches_gsplat_torch_impl(kind, dtype):
    p = gaussians(500, seed=4, kind=kind, dtype=dtype)
    vms, ks = cameras(3, 37, 53, dtype=dtype)
    covars = quat_scale_to_covar(p["quats"], p["scales"])
    ref_cov, _ = gs._quat_scale_to_covar_preci(p["quats"], p["scales"], compute_preci=False)
    torch.testing.assert_close(covars, ref_cov)
    ours = project(p["means"], covars, p["opacities"], vms, ks, 37, 53, near_plane=0.2, far_plane=1e3,
                   eps2d=0.3, antialiased=True, cull_by_opacity=False)
    radii, means2d, depths, conics, comp = gs._fully_fused_projection(
        p["means"], covars, vms, ks, 37, 53, eps2d=0.3, near_plane=0.2, far_plane=1e3, calc_compensations=True
    )
    torch.testing.assert_close(ours.means2d, means2d)
    torch.testing.assert_close(ours.depths, depths)
    torch.testing.assert_close(ours.conics, conics, rtol=1e-4, atol=1e-6)
    # comp = sqrt(det ratio); det(cov2d) of flat/needle Gaussians cancels to ~eps, and the sqrt amplifies
    # that, so compare the ratio itself.
    atol = 5e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours.compensations**2, comp**2, rtol=1e-4, atol=atol)
    torch.testing.assert_close(ours.radii, radii.to(torch.int32))
    assert (ours.radii == 0).any() == (radii == 0).any()


def test_projection_gradients_match_gsplat_torch_impl():
    p = gaussians(50, seed=1, kind="anisotropic", dtype=torch.float64)
    vms, ks = cameras(2, 40, 30, dtype=torch.float64)

    def run(fn):
        means = p["means"].clone().requires_grad_(True)
        quats = p["quats"].clone().requires_grad_(True)
        scales = p["scales"].clone().requires_grad_(True)
        vm = vms.clone().requires_grad_(True)
        cov = quat_scale_to_covar(quats, scales)
        m2, con, dep, comp = fn(means, cov, vm)
        g = torch.Generator().manual_seed(0)
        loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in (m2, con, dep, comp))
        loss.backward()
        return means.grad, quats.grad, scales.grad, vm.grad

    def ours(means, cov, vm):
        r = project(means, cov, p["opacities"], vm, ks, 40, 30, near_plane=0.01, far_plane=1e10, eps2d=0.3,
                    antialiased=True)
        return r.means2d, r.conics, r.depths, r.compensations

    def theirs(means, cov, vm):
        _, m2, dep, con, comp = gs._fully_fused_projection(means, cov, vm, ks, 40, 30, calc_compensations=True)
        return m2, con, dep, comp

    for a, b in zip(run(ours), run(theirs)):
        torch.testing.assert_close(a, b)


def test_opacity_aware_radii_and_culling():
    p = gaussians(400, seed=2, kind="opacity_extremes")
    vms, ks = cameras(1, 64, 64)
    cov = quat_scale_to_covar(p["quats"], p["scales"])
    full = project(p["means"], cov, p["opacities"], vms, ks, 64, 64, near_plane=0.01, far_plane=1e10, eps2d=0.3,
                   antialiased=False, cull_by_opacity=False)
    tight = project(p["means"], cov, p["opacities"], vms, ks, 64, 64, near_plane=0.01, far_plane=1e10, eps2d=0.3,
                    antialiased=False)
    assert (tight.radii <= full.radii).all()
    assert (tight.radii[0, p["opacities"] < 1 / 255] == 0).all()
    assert (tight.radii[0, (p["opacities"] >= 0.5) & (full.radii[0, :, 0] > 0)] > 0).all()


def test_sh_basis_matches_gsplat():
    d = torch.nn.functional.normalize(torch.randn(300, 3, dtype=torch.float64), dim=-1)
    for degree in range(5):
        n = (degree + 1) ** 2
        torch.testing.assert_close(sh_basis(degree, d), gs._eval_sh_bases_fast(n, d))
    coeffs = torch.randn(300, 16, 3, dtype=torch.float64)
    dirs = torch.randn(300, 3, dtype=torch.float64) * 3
    for degree in range(4):
        ref = torch.clamp_min(gs._spherical_harmonics(degree, dirs, coeffs) + 0.5, 0.0)
        torch.testing.assert_close(sh_to_color(degree, dirs, coeffs), ref)


def test_camera_centers():
    vms, _ = cameras(3, 10, 10, dtype=torch.float64)
    torch.testing.assert_close(camera_centers(vms), torch.inverse(vms)[:, :3, 3])
