"""Exact point-to-mesh distance: C++ kernel vs torch twin vs dense references (budget < 10 s)."""

import math

import pytest
import torch

from splat.ops.chamfer import ChamferSettings, mesh_cloud_chamfer
from splat.ops.mesh_distance import kernel_available, nearest_faces, point_mesh_sq_distance
from splat.ops.sampling import sample_surface



@pytest.fixture
def kernel():
    """Skip when the C++ kernel cannot be built (checked when a test needs it, not at collection)."""
    if not kernel_available():
        pytest.skip("C++ mesh distance kernel did not build")


def _box(size=(1.0, 2.0, 0.5), centre=(0.0, 0.0, 0.0), dtype=torch.float64):
    """An axis-aligned box as 8 vertices and 12 triangles."""
    s = torch.tensor(size, dtype=dtype) / 2
    c = torch.tensor(centre, dtype=dtype)
    corners = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=dtype)
    verts = c + corners * s
    faces = torch.tensor([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                          [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return verts, faces


def _box_sq_distance(p, size, centre=(0.0, 0.0, 0.0)):
    """Squared distance to the *surface* of an axis-aligned box (inside points too)."""
    h = torch.tensor(size, dtype=p.dtype) / 2
    q = (p - torch.tensor(centre, dtype=p.dtype)).abs() - h
    outside = q.clamp(min=0).square().sum(-1)
    inside = q.max(-1).values.clamp(max=0).square()
    return torch.where((q <= 0).all(-1), inside, outside)


def _random_meshes(b, f, generator, dtype=torch.float32):
    verts = torch.randn(b, 3 * f, 3, generator=generator, dtype=dtype)
    faces = torch.arange(3 * f).view(f, 3)
    active = torch.rand(b, f, generator=generator) < 0.7
    return verts, faces, active


@pytest.mark.parametrize("backend", ["brute", "cpu"])
def test_box_distance_matches_closed_form_inside_and_outside(backend, request):
    if backend == "cpu":
        request.getfixturevalue("kernel")
    size, centre = (1.0, 2.0, 0.5), (0.3, -0.2, 1.0)
    verts, faces = _box(size, centre)
    g = torch.Generator().manual_seed(0)
    p = torch.tensor(centre, dtype=torch.float64) + 1.5 * torch.randn(1, 2000, 3, generator=g, dtype=torch.float64)
    d2, idx = point_mesh_sq_distance(p, verts[None], faces, backend=backend)
    assert (idx >= 0).all()
    torch.testing.assert_close(d2[0], _box_sq_distance(p[0], size, centre), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_matches_twin_on_heterogeneous_ragged_batches(dtype, kernel):
    g = torch.Generator().manual_seed(1)
    verts, faces, active = _random_meshes(5, 40, g, dtype)
    active[3] = False  # an element without geometry
    pts = torch.randn(5, 300, 3, generator=g, dtype=dtype)
    lengths = torch.tensor([300, 0, 17, 300, 299])
    ik = nearest_faces(pts, verts, faces, active, lengths, backend="cpu")
    ib = nearest_faces(pts, verts, faces, active, lengths, backend="brute")
    dk, _ = point_mesh_sq_distance(pts, verts, faces, active, lengths, backend="cpu")
    db, _ = point_mesh_sq_distance(pts, verts, faces, active, lengths, backend="brute")
    torch.testing.assert_close(dk, db, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-7)
    # Indices agree except on (rounding-level) ties.
    assert (ik == ib).float().mean() > 0.99
    pad = torch.arange(300)[None] >= lengths[:, None]
    assert (ik[pad] == -1).all() and (ik[3] == -1).all() and (dk[3] == 0).all()
    assert active.gather(1, ik.clamp(min=0))[ik >= 0].all()  # only active faces are ever nearest


def test_one_cloud_broadcasts_against_a_batch_and_matches_dense_sampling(kernel):
    g = torch.Generator().manual_seed(2)
    verts, faces, active = _random_meshes(3, 12, g, torch.float64)
    pts = torch.randn(1, 64, 3, generator=g, dtype=torch.float64)
    d2, _ = point_mesh_sq_distance(pts, verts, faces, active)
    assert d2.shape == (3, 64)
    # The exact distance is a lower bound of, and close to, the distance to dense surface samples.
    dense = sample_surface(verts, faces, 200_000, torch.Generator().manual_seed(0), active).points
    ref = torch.cdist(pts.expand(3, -1, -1), dense).amin(-1).square()
    assert (d2 <= ref + 1e-12).all()
    gap = ref.sqrt() - d2.sqrt()  # how far the nearest dense sample lies beyond the exact closest point
    assert gap.mean() < 0.005 and gap.max() < 0.06


def test_gradients_match_finite_differences():
    verts, faces = _box((0.4, 0.3, 0.2))
    verts = (verts + 0.01 * torch.randn(verts.shape, generator=torch.Generator().manual_seed(3),
                                        dtype=verts.dtype))[None].requires_grad_(True)
    pts = (0.6 * torch.randn(1, 50, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)).requires_grad_(True)
    torch.autograd.gradcheck(lambda p, v: point_mesh_sq_distance(p, v, faces)[0], (pts, verts))


def test_degenerate_triangles_fall_back_to_edges_and_corners(kernel):
    verts = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [5, 5, 5], [5, 5, 5], [5, 5, 5]]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    pts = torch.tensor([[[1.0, 1, 0], [3, 0, 0], [5, 5, 6]]])
    for backend in ("cpu", "brute"):
        d2, idx = point_mesh_sq_distance(pts, verts, faces, backend=backend)
        torch.testing.assert_close(d2, torch.tensor([[1.0, 1.0, 1.0]]))
        assert idx.tolist() == [[0, 0, 1]]


def test_bad_shapes_are_rejected():
    verts, faces = _box()
    with pytest.raises(ValueError, match="points"):
        nearest_faces(torch.zeros(10, 3), verts[None], faces)
    with pytest.raises(ValueError, match="face_active"):
        nearest_faces(torch.zeros(1, 10, 3), verts[None], faces, torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="broadcast"):
        nearest_faces(torch.zeros(2, 10, 3), verts[None].expand(3, -1, -1), faces)
    with pytest.raises(ValueError, match="backend"):
        nearest_faces(torch.zeros(1, 10, 3), verts[None], faces, backend="gpu")


def test_exact_mesh_chamfer_sees_thin_faces_that_samples_miss():
    # A thin board: its 1 cm edge faces get almost no surface samples, so the sample-candidate distance
    # of points on the edge is measured to the large faces' triangles and comes out too large.
    verts, faces = _box((1.0, 1.0, 0.01))
    surf = sample_surface(verts[None], faces, 64, torch.Generator().manual_seed(5))
    edge = torch.stack([torch.full((100,), 0.5, dtype=torch.float64), torch.linspace(-0.45, 0.45, 100, dtype=torch.float64),
                        torch.zeros(100, dtype=torch.float64)], -1)[None]  # on the +x edge face
    s = ChamferSettings(squared=False, direction="y_to_x")
    exact = mesh_cloud_chamfer(surf.points, surf.face_idx, surf.lengths, verts[None], faces, edge, None, s,
                               candidates=None).loss
    approx = mesh_cloud_chamfer(surf.points, surf.face_idx, surf.lengths, verts[None], faces, edge, None, s,
                                candidates=1).loss
    assert float(exact) < 1e-9
    assert float(approx) > 1e-3
    assert math.isfinite(float(approx))


def test_without_the_kernel_auto_falls_back_to_the_twin_and_cpu_says_so(monkeypatch):
    import splat.ops.mesh_distance as md

    verts, faces = _box()
    pts = torch.tensor([[[0.0, 0.0, 2.0]]], dtype=torch.float64)
    monkeypatch.setattr(md, "_load_kernel", lambda: None)
    d2, _ = md.point_mesh_sq_distance(pts, verts[None], faces)  # auto -> twin
    torch.testing.assert_close(d2, torch.tensor([[1.75**2]], dtype=torch.float64))
    with pytest.raises(RuntimeError, match="not available"):
        md.nearest_faces(pts, verts[None], faces, backend="cpu")


def test_kernel_rejects_out_of_range_face_indices(kernel):
    verts, faces = _box()
    with pytest.raises(RuntimeError, match="face index"):
        nearest_faces(torch.zeros(1, 4, 3, dtype=torch.float64), verts[None], faces + 8, backend="cpu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_closest_weights_match_the_twin_in_every_region(dtype):
    """The kernel's barycentric weights equal the torch twin's (every Voronoi region and degenerate
    triangles), and so do the distances and their gradients built from them."""
    if not kernel_available():
        pytest.skip("C++ kernel not built")
    from splat.ops.mesh_distance import closest_point_weights, point_triangle_sq_distance, triangle_sq_distance

    gen = torch.Generator().manual_seed(5)
    tri = torch.rand((3000, 3, 3), generator=gen, dtype=torch.float64)
    tri[:50, 2] = tri[:50, 1]  # two corners equal: an edge
    tri[50:100, 1] = tri[50:100, 0]
    tri[50:100, 2] = tri[50:100, 0]  # a point
    tri[100:150, 2] = 2 * tri[100:150, 1] - tri[100:150, 0]  # collinear corners
    tri = tri.to(dtype)
    p = (torch.rand((3000, 3), generator=gen, dtype=torch.float64) * 3 - 1).to(dtype)
    twin = closest_point_weights(p, tri[:, 0], tri[:, 1], tri[:, 2])
    regions = {tuple((w > 0).tolist()) for w in twin}
    assert len(regions) == 7  # three corners, three edges, the face
    from splat.ops import mesh_distance as md

    got = md._load_kernel().closest_weights(p.contiguous(), tri.contiguous(), 2)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    # On a degenerate triangle rounding (the kernel may fuse a*b+c) can pick another region: other
    # weights of the same closest point in float64; in float32 the near-zero area amplifies it.
    torch.testing.assert_close(got[150:], twin[150:], rtol=tol, atol=tol)
    if dtype == torch.float32:
        tri, p = tri[150:], p[150:]
    else:
        torch.testing.assert_close(torch.einsum("nk,nkd->nd", got, tri), torch.einsum("nk,nkd->nd", twin, tri),
                                   rtol=1e-9, atol=1e-9)
    pa, ta = p.clone().requires_grad_(), tri.clone().requires_grad_()
    pb, tb = p.clone().requires_grad_(), tri.clone().requires_grad_()
    da = triangle_sq_distance(pa, ta)
    db = point_triangle_sq_distance(pb, tb[:, 0], tb[:, 1], tb[:, 2])
    torch.testing.assert_close(da, db, rtol=tol, atol=tol)
    (da * torch.linspace(0.5, 2, p.shape[0], dtype=dtype)).sum().backward()
    (db * torch.linspace(0.5, 2, p.shape[0], dtype=dtype)).sum().backward()
    torch.testing.assert_close(pa.grad, pb.grad, rtol=tol, atol=tol)
    torch.testing.assert_close(ta.grad, tb.grad, rtol=tol, atol=tol)


def test_point_triangle_distance_gradient_is_the_full_derivative():
    """Holding the closest point's weights while differentiating loses nothing: the gradient equals
    autograd through the weights' own formulas (the envelope theorem), in the face, edge and corner regions."""
    from splat.ops.mesh_distance import closest_point_weights, point_triangle_sq_distance

    gen = torch.Generator().manual_seed(8)
    tri = torch.rand((500, 3, 3), generator=gen, dtype=torch.float64)
    p = torch.rand((500, 3), generator=gen, dtype=torch.float64) * 3 - 1
    pa, ta = p.clone().requires_grad_(), tri.clone().requires_grad_()
    point_triangle_sq_distance(pa, ta[:, 0], ta[:, 1], ta[:, 2]).sum().backward()
    pb, tb = p.clone().requires_grad_(), tri.clone().requires_grad_()
    with torch.enable_grad():  # the weights differentiated too (closest_point_weights is no_grad: unwrap it)
        w = closest_point_weights.__wrapped__(pb, tb[:, 0], tb[:, 1], tb[:, 2])
        q = w[:, 0:1] * tb[:, 0] + w[:, 1:2] * tb[:, 1] + w[:, 2:3] * tb[:, 2]
        (pb - q).square().sum(-1).sum().backward()
    torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ta.grad, tb.grad, rtol=1e-9, atol=1e-9)
