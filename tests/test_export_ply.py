"""splat.export.ply: 3DGS PLY round trips, Inria layout, covariance factorisation, bad input.

Budget: < 3 s.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.recfunctions import repack_fields
import pytest
import torch
from plyfile import PlyData, PlyElement
from scipy.spatial.transform import Rotation

from splat.errors import SplatError
from splat.export import SplatCloud, read_splats_ply, splats_from_world, write_splats_ply
from splat.maths import (
    SH_C0,
    covariances_from_scales_quats,
    covariances_to_scales_quats,
    quats_to_rotmats,
    rotmats_to_quats,
    sh_dc_to_rgb,
)


def _random_cloud(n: int, degree: int, seed: int = 0) -> SplatCloud:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    q = torch.randn(n, 4, generator=g)
    q = q / q.norm(dim=-1, keepdim=True)
    return SplatCloud(
        means=torch.randn(n, 3, generator=g),
        sh=torch.randn(n, k, 3, generator=g),
        opacity_logits=torch.randn(n, generator=g) * 3,
        log_scales=torch.randn(n, 3, generator=g) - 4,
        quats=q,
    )


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_round_trip_is_exact(tmp_path, degree):
    cloud = _random_cloud(257, degree, seed=degree)
    path = tmp_path / "splats.ply"
    write_splats_ply(path, cloud)
    back = read_splats_ply(path)
    assert back.sh_degree == degree and back.num_gaussians == 257
    for a, b in zip(cloud, back):
        torch.testing.assert_close(b, a.to(torch.float32), rtol=0, atol=1e-7)


def test_layout_matches_inria(tmp_path):
    cloud = _random_cloud(5, 2)
    path = tmp_path / "s.ply"
    write_splats_ply(path, cloud)
    ply = PlyData.read(str(path))
    v = ply["vertex"].data
    k = 9
    expected = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
                + [f"f_rest_{i}" for i in range(3 * (k - 1))]
                + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    assert list(v.dtype.names) == expected
    assert all(v.dtype[nm] == np.dtype("<f4") for nm in expected)
    assert not ply.text and ply.byte_order == "<"
    # f_rest is channel-major: index c * (K-1) + (k-1) holds sh[k, c]
    for c in range(3):
        for kk in range(1, k):
            np.testing.assert_allclose(v[f"f_rest_{c * (k - 1) + kk - 1}"], cloud.sh[:, kk, c].numpy(), rtol=1e-6)
    np.testing.assert_allclose(v["rot_0"], cloud.quats[:, 0].numpy(), rtol=1e-6)  # w first
    np.testing.assert_allclose(v["opacity"], cloud.opacity_logits.numpy(), rtol=1e-6)
    assert (v["nx"] == 0).all()


def test_reads_ascii_double_ply_written_by_others(tmp_path):
    cloud = _random_cloud(4, 1)
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)] + [
        "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    rest = cloud.sh[:, 1:, :].permute(0, 2, 1).reshape(4, 9)
    cols = torch.cat([cloud.means, cloud.sh[:, 0], rest, cloud.opacity_logits[:, None], cloud.log_scales,
                      cloud.quats * 2.0], 1).double().numpy()  # unnormalised quats on disk
    arr = np.empty(4, dtype=[(nm, "f8") for nm in names])
    for i, nm in enumerate(names):
        arr[nm] = cols[:, i]
    PlyData([PlyElement.describe(arr, "vertex")], text=True).write(str(tmp_path / "a.ply"))
    back = read_splats_ply(tmp_path / "a.ply", dtype=torch.float64)
    torch.testing.assert_close(back.sh, cloud.sh.double())
    torch.testing.assert_close(back.quats, cloud.quats.double())


def test_quaternion_matrix_agrees_with_scipy():
    q = _random_cloud(100, 0).quats.double()
    ours = quats_to_rotmats(q)
    ref = Rotation.from_quat(q[:, [1, 2, 3, 0]].numpy()).as_matrix()  # scipy is xyzw
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12)
    back = rotmats_to_quats(ours)
    assert (back[:, 0] >= 0).all()
    torch.testing.assert_close(back, torch.where(q[:, :1] < 0, -q, q))


def test_rotmats_to_quats_near_half_turns():
    # 180-degree rotations about axes (trace = -1: the naive w-branch divides by ~0)
    axes = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 1, 1]], dtype=torch.float64)
    axes = axes / axes.norm(dim=-1, keepdim=True)
    angles = torch.tensor([math.pi, math.pi - 1e-9, math.pi, math.pi, math.pi], dtype=torch.float64)
    R = torch.as_tensor(Rotation.from_rotvec((axes * angles[:, None]).numpy()).as_matrix())
    torch.testing.assert_close(quats_to_rotmats(rotmats_to_quats(R)), R, atol=1e-12, rtol=0)


def test_covariance_factorisation_reproduces_covariances():
    g = torch.Generator().manual_seed(3)
    n = 500
    q = torch.randn(n, 4, generator=g, dtype=torch.float64)
    s = torch.exp(torch.randn(n, 3, generator=g, dtype=torch.float64) * 2 - 3)
    s[:50, 2] = s[:50, 1]  # repeated eigenvalues (discs)
    s[50:100] = 0.01  # isotropic
    cov = covariances_from_scales_quats(s, q)
    log_s, quats = covariances_to_scales_quats(cov)
    assert log_s.dtype == torch.float64 and quats.shape == (n, 4)
    assert (log_s[:, :-1] <= log_s[:, 1:] + 1e-12).all()  # ascending
    assert (quats[:, 0] >= 0).all()
    torch.testing.assert_close(covariances_from_scales_quats(log_s.exp(), quats), cov, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(log_s.exp(), s.sort(-1).values, rtol=1e-7, atol=0)


def test_covariance_factorisation_of_degenerate_and_float32_inputs():
    # a flat disc (rank 2), a needle (rank 1), all-zero, slightly asymmetric float32 noise
    cov = torch.zeros(4, 3, 3)
    cov[0] = torch.diag(torch.tensor([1e-4, 1e-4, 0.0]))
    cov[1] = torch.diag(torch.tensor([0.0, 0.0, 4e-4]))
    cov[3] = torch.eye(3) * 1e-3
    cov[3, 0, 1] += 1e-9
    log_s, quats = covariances_to_scales_quats(cov, min_scale=1e-6)
    assert torch.isfinite(log_s).all() and torch.isfinite(quats).all() and log_s.dtype == torch.float32
    torch.testing.assert_close(log_s.exp()[0], torch.tensor([1e-6, 1e-2, 1e-2]), rtol=1e-5, atol=0)
    torch.testing.assert_close(log_s.exp()[2], torch.full((3,), 1e-6), rtol=1e-5, atol=0)
    rec = covariances_from_scales_quats(log_s.exp().double(), quats.double())
    torch.testing.assert_close(rec.float(), cov, atol=1e-9, rtol=1e-5)


def test_splats_from_world_round_trip(tmp_path):
    g = torch.Generator().manual_seed(1)
    n = 64
    q = torch.randn(n, 4, generator=g)
    s = torch.rand(n, 3, generator=g) * 0.05 + 1e-3
    cov = covariances_from_scales_quats(s, q)
    rgb = torch.rand(n, 3, generator=g)
    alpha = torch.rand(n, generator=g)
    alpha[0], alpha[1] = 0.0, 1.0
    cloud = splats_from_world(torch.randn(n, 3, generator=g), cov, alpha, rgb)
    assert cloud.sh.shape == (n, 1, 3)
    torch.testing.assert_close(sh_dc_to_rgb(cloud.sh[:, 0]), rgb, atol=1e-6, rtol=0)
    write_splats_ply(tmp_path / "w.ply", cloud)
    back = read_splats_ply(tmp_path / "w.ply")
    torch.testing.assert_close(torch.sigmoid(back.opacity_logits), alpha, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.covariances(), cov, atol=1e-8, rtol=1e-4)
    assert math.isclose(SH_C0, 0.5 / math.sqrt(math.pi))


def test_bad_files_raise_splat_error(tmp_path):
    with pytest.raises(SplatError, match="file not found"):
        read_splats_ply(tmp_path / "missing.ply")
    (tmp_path / "junk.ply").write_text("hello")
    with pytest.raises(SplatError, match="not a readable PLY") as e:
        read_splats_ply(tmp_path / "junk.ply")
    assert e.value.file.endswith("junk.ply")
    # a point cloud without splat attributes
    arr = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(tmp_path / "pts.ply"))
    with pytest.raises(SplatError, match="missing property") as e:
        read_splats_ply(tmp_path / "pts.ply")
    assert e.value.field == "vertex.f_dc_0"
    # f_rest count that is not 3 * ((d+1)^2 - 1)
    cloud = _random_cloud(2, 1)
    write_splats_ply(tmp_path / "ok.ply", cloud)
    v = PlyData.read(str(tmp_path / "ok.ply"))["vertex"].data
    keep = [nm for nm in v.dtype.names if nm != "f_rest_8"]
    PlyData([PlyElement.describe(repack_fields(v[keep]), "vertex")]).write(str(tmp_path / "rest.ply"))
    with pytest.raises(SplatError) as e:
        read_splats_ply(tmp_path / "rest.ply")
    assert e.value.field == "vertex.f_rest"
    # NaN on disk
    v2 = v.copy()
    v2["opacity"][1] = np.nan
    PlyData([PlyElement.describe(v2, "vertex")]).write(str(tmp_path / "nan.ply"))
    with pytest.raises(SplatError, match="non-finite") as e:
        read_splats_ply(tmp_path / "nan.ply")
    assert e.value.field == "vertex.opacity"


def test_nan_write_fails_and_keeps_old_file(tmp_path):
    path = tmp_path / "s.ply"
    good = _random_cloud(3, 0)
    write_splats_ply(path, good)
    before = path.read_bytes()
    bad = good._replace(means=good.means.clone())
    bad.means[2, 1] = float("nan")
    with pytest.raises(SplatError, match="non-finite"):
        write_splats_ply(path, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ply"]  # no temp file left behind
    cov = torch.eye(3)[None].repeat(2, 1, 1)
    cov[1, 0, 0] = float("inf")
    with pytest.raises(SplatError) as e:
        covariances_to_scales_quats(cov)
    assert e.value.field == "covars[1]"
