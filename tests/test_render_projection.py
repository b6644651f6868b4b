"""Projection (EWA, conics, compensation), covariance and SH against gsplat's pure-torch helpers on CPU.

Budget: < 3 s.
"""

from __future__ import annotations

import pytest
import torch
from gsplat.cuda import _torch_impl as gs

from render_fixtures import cameras, gaussians
from splat.maths import covariances_from_scales_quats
from splat.render._projection import camera_centers, project
from splat.render._sh import sh_basis, sh_to_color


@pytest.mark.parametrize("kind", ["random", "anisotropic", "flat", "needle", "near_far", "huge_tiny"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_projection_matches_gsplat_torch_impl(kind, dtype):
    p = gaussians(500, seed=4, kind=kind, dtype=dtype)
    vms, ks = cameras(3, 37, 53, dtype=dtype)
    covars = covariances_from_scales_quats(p["scales"], p["quats"])
    ref_cov, _ = gs._quat_scale_to_covar_preci(p["quats"], p["scales"], compute_preci=False)
    torch.testing.assert_close(covars, ref_cov)
    ours = project(p["means"], covars, p["opacities"], vms, ks, 37, 53, near_plane=0.2, far_plane=1e3,
                   eps2d=0.3, antialiased=True, cull_by_opacity=False)
    radii, means2d, depths, conics, comp = gs._fully_fused_projection(
        p["means"], covars, vms, ks, 37, 53, eps2d=0.3, near_plane=0.2, far_plane=1e3, calc_compensations=True
    )
    if dtype == torch.float64:
        torch.testing.assert_close(ours.means2d, means2d)
        torch.testing.assert_close(ours.depths, depths)
    else:
        tol_means2d, tol_depths = _float32_projection_tolerances(p["means"], vms, ks, means2d)
        _assert_within(ours.means2d, means2d, tol_means2d, "means2d")
        _assert_within(ours.depths, depths, tol_depths, "depths")
    torch.testing.assert_close(ours.conics, conics, rtol=1e-4, atol=1e-6)
    # comp = sqrt(det ratio); det(cov2d) of flat/needle Gaussians cancels to ~eps, and the sqrt amplifies
    # that, so compare the ratio itself.
    atol = 5e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours.compensations**2, comp**2, rtol=1e-4, atol=atol)
    torch.testing.assert_close(ours.radii, radii.to(torch.int32))
    assert (ours.radii == 0).any() == (radii == 0).any()


def _float32_projection_tolerances(means, viewmats, Ks, means2d_ref):
    """Per-element bounds on |ours - gsplat| for float32 pixel positions [C, N, 2] and depths [C, N].

    Both sides compute the camera point t_k = sum_j R_kj m_j + T_k in float32 with different kernels
    (our matmul, gsplat's einsum: summation order and FMA use follow the CPU's vector ISA), so each
    side's t_k is off by up to ~2 eps S_k (3 products and 3 sums), where S_k = sum_j |R_kj m_j| + |T_k|
    is the size of the summands, not of t_k; the two sides then differ by up to 4 eps S_k. That is
    the depth bound (depth = t_z). The pixel u = (f t_x + c t_z) / t_z moves, to first order, by
    (f dt_x + (c - u) dt_z) / t_z, so |du| <= 4 eps (f S_x + (c + |u|) S_z) / |t_z| + 4 eps |u| (the
    final products and the division): the error grows as 1/|t_z| and with |u| = f |x/z|. At the
    depths of most cases (|t_z| 1.4 .. 4.8, S < 5) this is 2e-5 .. 2e-4 px, like float32's default
    tolerance; "near_far" has points straddling the camera plane (|t_z| down to 0.008; culled by the
    near plane, but their means2d are still compared) where S/|t_z| ~ 1e3 and |u| ~ 1e4 px, so the
    two float32 results legitimately differ by up to ~0.1 px (~1e-5 relative, ~100 eps) there, by an
    amount that depends on the CPU's rounding. Measured differences stay below 1/3 of these bounds
    (depths) and 1/6 (pixels) with torch's AVX-512, AVX2 and scalar code paths (ATEN_CPU_CAPABILITY).
    """
    eps = torch.finfo(torch.float32).eps
    m = means.double()
    rot, trans = viewmats[:, :3, :3].double(), viewmats[:, :3, 3].double()
    size = m.abs() @ rot.abs().transpose(-1, -2) + trans.abs()[:, None, :]  # S_k  [C, N, 3]
    tz = ((m @ rot.transpose(-1, -2)) + trans[:, None, :])[..., 2].abs()  # |t_z| (float64)  [C, N]
    f = Ks[:, None, [0, 1], [0, 1]].double()  # [C, 1, 2]
    c = Ks[:, None, [0, 1], [2, 2]].double()
    u = means2d_ref.double().abs()
    tol_means2d = 4 * eps * ((f * size[..., :2] + (c + u) * size[..., 2:]) / tz[..., None] + u)
    tol_depths = 4 * eps * size[..., 2]
    return tol_means2d, tol_depths


def _assert_within(actual, expected, tol, what):
    err = (actual.double() - expected.double()).abs()
    worst = (err / tol).argmax()
    assert (err <= tol).all(), (f"{what}: {(err > tol).sum()} elements beyond the float32 bound; worst "
                                f"{err.flatten()[worst]:.3g} vs {tol.flatten()[worst]:.3g}")


def test_projection_gradients_match_gsplat_torch_impl():
    p = gaussians(50, seed=1, kind="anisotropic", dtype=torch.float64)
    vms, ks = cameras(2, 40, 30, dtype=torch.float64)

    def run(fn):
        means = p["means"].clone().requires_grad_(True)
        quats = p["quats"].clone().requires_grad_(True)
        scales = p["scales"].clone().requires_grad_(True)
        vm = vms.clone().requires_grad_(True)
        cov = covariances_from_scales_quats(scales, quats)
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
    cov = covariances_from_scales_quats(p["scales"], p["quats"])
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
