"""Chamfer: KD-tree vs brute-force twin vs a dense reference, all settings, ragged batches (budget < 5 s)."""

import math

import pytest
import torch

from splat.ops.chamfer import ChamferSettings, chamfer_distance


def _dense(x, y, xl, yl, s: ChamferSettings):
    """Independent per-batch Chamfer from dense pairwise distances."""
    out = []
    for b in range(max(x.shape[0], y.shape[0])):
        xb = x[min(b, x.shape[0] - 1), : xl[min(b, x.shape[0] - 1)]]
        yb = y[min(b, y.shape[0] - 1), : yl[min(b, y.shape[0] - 1)]]
        if xb.shape[0] == 0 or yb.shape[0] == 0:
            out.append(torch.tensor(math.inf, dtype=x.dtype))
            continue
        d2 = (xb[:, None] - yb[None]).square().sum(-1)
        terms = []
        for d in (d2.min(1).values, d2.min(0).values):
            d = d if s.squared else d.sqrt()
            if s.clamp is not None:
                d = d.clamp(max=s.clamp)
            if s.trim:
                keep = max(1, math.ceil((1 - s.trim) * d.shape[0] - 1e-9))
                d = torch.sort(d).values[:keep]
            terms.append(d.mean() if s.reduction == "mean" else d.sum())
        if s.direction == "x_to_y":
            out.append(terms[0])
        elif s.direction == "y_to_x":
            out.append(terms[1])
        else:
            out.append(terms[0] + terms[1])
    return torch.stack(out)


SETTINGS = [
    ChamferSettings(),
    ChamferSettings(squared=False),
    ChamferSettings(direction="x_to_y", reduction="sum"),
    ChamferSettings(direction="y_to_x", squared=False),
    ChamferSettings(clamp=0.02),
    ChamferSettings(squared=False, trim=0.2),
    ChamferSettings(trim=0.5, clamp=0.05, reduction="sum"),
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("bx,by", [(4, 4), (4, 1)])
def test_matches_twin_and_dense(settings, bx, by):
    gen = torch.Generator().manual_seed(11 + bx + by)
    x = torch.rand((bx, 60, 3), generator=gen, dtype=torch.float64).requires_grad_()
    y = torch.rand((by, 45, 3), generator=gen, dtype=torch.float64).requires_grad_()
    xl = torch.tensor([60, 31, 1, 0])
    yl = torch.tensor([45, 7, 20, 45]) if by > 1 else torch.tensor([45])
    fast = chamfer_distance(x, y, xl, yl, settings, backend="kdtree")
    twin = chamfer_distance(x, y, xl, yl, settings, backend="brute")
    ref = _dense(x, y, xl, yl, settings)
    torch.testing.assert_close(fast.loss, twin.loss)
    torch.testing.assert_close(fast.loss, ref)
    assert math.isinf(float(fast.loss[3].detach()))  # empty x cloud
    finite = torch.isfinite(ref)
    w = torch.linspace(0.5, 2.0, bx, dtype=torch.float64)[finite]
    grads = [torch.autograd.grad((r.loss[finite] * w).sum(), (x, y)) for r in (fast, twin)]
    gref = torch.autograd.grad((ref[finite] * w).sum(), (x, y))
    for a, b in zip(grads[0], grads[1]):
        torch.testing.assert_close(a, b)
    for a, b in zip(grads[0], gref):
        torch.testing.assert_close(a, b)


def test_gradcheck_unsquared_tiny():
    gen = torch.Generator().manual_seed(2)
    x = torch.rand((2, 6, 3), generator=gen, dtype=torch.float64).requires_grad_()
    y = torch.rand((1, 5, 3), generator=gen, dtype=torch.float64).requires_grad_()
    s = ChamferSettings(squared=False, trim=0.3)
    assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b, settings=s).loss, (x, y))


def test_identical_clouds_zero_with_finite_grads():
    x = torch.rand((1, 20, 3), generator=torch.Generator().manual_seed(1)).requires_grad_()
    res = chamfer_distance(x, x.detach().clone(), settings=ChamferSettings(squared=False))
    assert float(res.loss) == 0.0
    (g,) = torch.autograd.grad(res.loss.sum(), x)
    assert bool(torch.isfinite(g).all())


def test_per_point_distances_and_clamp_kills_outlier_gradient():
    x = torch.tensor([[[0.0, 0, 0], [10.0, 0, 0]]], requires_grad=True)
    y = torch.tensor([[[0.1, 0, 0]]])
    res = chamfer_distance(x, y, settings=ChamferSettings(direction="x_to_y", clamp=1.0))
    torch.testing.assert_close(res.x_dists, torch.tensor([[0.01, 9.9**2]]))
    assert res.y_to_x is None and res.y_dists is None
    (g,) = torch.autograd.grad(res.loss.sum(), x)
    assert float(g[0, 1].abs().sum()) == 0.0 and float(g[0, 0, 0]) < 0


def test_bad_settings():
    with pytest.raises(ValueError, match="trim"):
        ChamferSettings(trim=1.0)
    with pytest.raises(ValueError, match="direction"):
        ChamferSettings(direction="sideways")
    with pytest.raises(ValueError, match="clamp"):
        ChamferSettings(clamp=0.0)


def test_point_triangle_distance_matches_dense_sampling_and_gradcheck():
    from splat.ops.mesh_distance import point_triangle_sq_distance

    gen = torch.Generator().manual_seed(21)
    tri = torch.rand((64, 3, 3), generator=gen, dtype=torch.float64)
    p = torch.rand((64, 3), generator=gen, dtype=torch.float64) * 2 - 0.5  # all Voronoi regions get hits
    got = point_triangle_sq_distance(p, tri[:, 0], tri[:, 1], tri[:, 2])
    # Dense barycentric grid on each triangle (edges and corners included).
    n = 120
    i, j = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    keep = i + j <= n
    u, v = (i[keep] / n).double(), (j[keep] / n).double()
    w = torch.stack([1 - u - v, u, v], -1)  # [G, 3]
    grid = torch.einsum("gk,tkd->tgd", w, tri)  # [T, G, 3]
    dense = (grid - p[:, None]).square().sum(-1).min(1).values
    assert bool((got <= dense + 1e-12).all())  # exact closest point is never worse than a grid point
    edge = (tri - tri.roll(1, 1)).norm(dim=-1).max(1).values
    assert bool((dense.sqrt() - got.sqrt() <= edge / n + 1e-9).all())
    small = (p[:4].clone().requires_grad_(), *(tri[:4, k].clone().requires_grad_() for k in range(3)))
    assert torch.autograd.gradcheck(point_triangle_sq_distance, small)


def test_mesh_cloud_chamfer_zero_on_surface_and_shares_the_forward_term():
    from splat.ops import sample_surface
    from splat.ops.chamfer import mesh_cloud_chamfer

    verts = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]], dtype=torch.float64).repeat(2, 1, 1)
    verts[1, :, 2] += 0.1  # second mesh lifted by 10 cm
    verts.requires_grad_()
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    gen = torch.Generator().manual_seed(3)
    s = sample_surface(verts, faces, 400, gen)
    cloud = torch.rand((1, 200, 3), generator=gen, dtype=torch.float64)
    cloud[..., 2] = 0  # on the first mesh's plane
    res = mesh_cloud_chamfer(s.points, s.face_idx, s.lengths, verts, faces, cloud,
                             settings=ChamferSettings(squared=False))
    ref = chamfer_distance(s.points, cloud, s.lengths, settings=ChamferSettings(squared=False))
    # (Nearly) no sampling-spacing floor, unlike point-to-point: only cloud points whose 4 nearest
    # samples all lie on the other (coplanar) triangle keep a small in-plane distance.
    assert float(res.y_to_x[0]) < float(ref.y_to_x[0]) / 50
    torch.testing.assert_close(res.y_to_x[1], torch.tensor(0.1, dtype=torch.float64))
    torch.testing.assert_close(res.x_to_y, ref.x_to_y)
    (g,) = torch.autograd.grad(res.y_to_x[1], verts)
    assert float(g[1, :, 2].sum()) > 0.99  # lifting the mesh further increases the distance one-for-one
