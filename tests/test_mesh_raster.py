"""splat.ops.mesh_raster: the program mesh's depth and anti-aliased silhouette, and their gradients."""

from __future__ import annotations

import math

import pytest
import torch

import splat.ops.mesh_raster as mr
from splat.geonodes.primitives import PrimitiveKey, canonical_mesh
from splat.ops.mesh_raster import kernel_available, render_mesh, silhouette, zbuffer
from splat.program import load_program

CUBE = canonical_mesh(PrimitiveKey("t", "n", "cube", (2, 2, 2)))
K = torch.tensor([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]], dtype=torch.float64)


def top_view(height: float = 2.0) -> torch.Tensor:
    """World -> camera for a camera at (0, 0, height) looking down -z (OpenCV axes)."""
    return torch.tensor([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, height], [0, 0, 0, 1]], dtype=torch.float64)


def look_at(eye, target=(0.0, 0.0, 0.0)) -> torch.Tensor:
    eye, target = torch.tensor(eye, dtype=torch.float64), torch.tensor(target, dtype=torch.float64)
    z = target - eye
    z = z / z.norm()
    x = torch.cross(z, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), dim=0)
    x = x / x.norm()
    y = torch.cross(z, x, dim=0)
    R = torch.stack([x, y, z])
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :3], m[:3, 3] = R, -R @ eye
    return m


def cube(size, centre=(0.0, 0.0, 0.0)):
    return CUBE.verts.double() * torch.as_tensor(size, dtype=torch.float64) + torch.as_tensor(centre, dtype=torch.float64)


def one_part(n_verts: int, n_faces: int):
    return torch.zeros(n_verts, dtype=torch.long), torch.zeros(n_faces, dtype=torch.long)


def test_depth_is_the_face_plane_and_the_nearest_part_wins():
    faces = CUBE.faces.long()
    # a small cube on top of a big one: the small one's top (z = 0.3) is nearer the camera at z = 2
    verts = torch.cat([cube(torch.tensor([0.6, 0.6, 0.2])), cube(torch.tensor([0.2, 0.2, 0.2]), (0, 0, 0.2))])
    faces2 = torch.cat([faces, faces + 8])
    vp = torch.cat([torch.zeros(8, dtype=torch.long), torch.ones(8, dtype=torch.long)])
    fp = torch.cat([torch.zeros(12, dtype=torch.long), torch.ones(12, dtype=torch.long)])
    mv = render_mesh(verts, faces2, vp, fp, top_view(), K, 64, 64)
    assert mv.part[32, 32] == 1 and abs(float(mv.depth[32, 32]) - 1.7) < 1e-7
    # 0.2 m from the centre: outside the small cube, on the big one's top at z = 0.1
    col = 32 + int(0.2 * 100 / 1.9)
    assert mv.part[32, col] == 0 and abs(float(mv.depth[32, col]) - 1.9) < 1e-7
    assert mv.part[0, 0] == -1 and mv.depth[0, 0] == 0
    # a slanted view: depth still agrees with an independent ray cast (the top face's plane)
    vm = look_at((1.2, -0.9, 1.5))
    mv = render_mesh(cube(torch.tensor([0.6, 0.6, 0.2])), faces, *one_part(8, 12), vm, K, 64, 64)
    R, t = vm[:3, :3], vm[:3, 3]
    cam_centre = -R.T @ t
    for r, c in torch.nonzero(mv.face >= 0)[::37].tolist():
        d = torch.tensor([(c + 0.5 - 32) / 100, (r + 0.5 - 32) / 100, 1.0], dtype=torch.float64)
        world_dir = R.T @ d
        # nearest hit of the ray with the box [-0.3, 0.3]^2 x [-0.1, 0.1] (slab method)
        lo = torch.tensor([-0.3, -0.3, -0.1], dtype=torch.float64)
        hi = -lo
        t1, t2 = (lo - cam_centre) / world_dir, (hi - cam_centre) / world_dir
        t_near = float(torch.minimum(t1, t2).max())
        assert abs(t_near * 1.0 - float(mv.depth[r, c])) < 1e-6  # z-depth = ray parameter for d_z = 1


def test_silhouette_area_and_its_gradient_match_the_projected_rectangle():
    size = torch.tensor([0.4, 0.3, 0.2], dtype=torch.float64, requires_grad=True)
    faces = CUBE.faces.long()
    mv = render_mesh(cube(size), faces, *one_part(8, 12), top_view(), K, 64, 64)
    f = 100 / 1.9  # pixels per metre at the top face
    area = float(mv.alpha.detach().sum())
    hard = int((mv.face >= 0).sum())
    exact = 0.4 * f * 0.3 * f
    assert abs(area - exact) < 0.01 * exact, (area, exact)
    assert abs(hard - exact) > abs(area - exact)  # anti-aliasing beats counting pixel centres
    mv.alpha.sum().backward()
    # d area / d size_x = 0.3 f^2, d area / d size_y = 0.4 f^2; z moves the top face nearer: 2 A / 1.9 / 2
    expected = torch.tensor([0.3 * f * f, 0.4 * f * f, exact / 1.9], dtype=torch.float64)
    assert torch.allclose(size.grad, expected, rtol=0.06), (size.grad, expected)


def test_fitting_a_box_to_masks_and_depths_lands_on_the_true_size():
    """The mesh losses' optimum is the true box (the Gaussians' blurred silhouette's is not)."""
    faces = CUBE.faces.long()
    truth = torch.tensor([0.42, 0.31, 0.05], dtype=torch.float64)  # a thin board, like a seat
    views = [look_at((2 * math.cos(a), 2 * math.sin(a), h)) for a, h in
             ((0.3, 0.6), (1.4, 0.2), (2.6, 1.0), (3.9, -0.3), (5.0, 0.8), (5.8, 0.1))]
    targets = []
    for vm in views:
        mv = render_mesh(cube(truth), faces, *one_part(8, 12), vm, K, 64, 64)
        targets.append(((mv.face >= 0), mv.depth.detach()))  # a binary mask: pixel centres inside
    size = torch.tensor([0.36, 0.36, 0.08], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([size], lr=2e-3)
    for step in range(300):
        opt.zero_grad()
        loss = size.new_zeros(())
        for vm, (mask, depth) in zip(views, targets):
            mv = render_mesh(cube(size), faces, *one_part(8, 12), vm, K, 64, 64)
            loss = loss + (mv.alpha - mask.double()).abs().mean()
            region = (mv.face >= 0) & mask & (depth > 0) & ((mv.depth.detach() - depth).abs() < 0.02)
            if bool(region.any()):
                loss = loss + (mv.depth - depth)[region].abs().mean()
        loss.backward()
        opt.step()
    err = (size.detach() - truth).abs()
    # a pixel is 1-2 cm here: the fit is far below a pixel
    assert float(err.max()) < 1.5e-3, (size.detach(), truth)


def test_zbuffer_skips_faces_behind_the_camera_and_inactive_ones():
    faces = CUBE.faces.long()
    verts = cube(torch.tensor([0.4, 0.4, 0.4]))
    behind = top_view(height=-2.0)  # the cube is behind this camera
    assert bool((zbuffer(verts @ behind[:3, :3].T + behind[:3, 3], faces, K, 32, 32) == -1).all())
    vm = top_view()
    cam = verts @ vm[:3, :3].T + vm[:3, 3]
    off = torch.zeros(12, dtype=torch.bool)
    assert bool((zbuffer(cam, faces, K, 64, 64, face_active=off) == -1).all())
    # the reference's chunking gives the same answer as one pass, and as the kernel
    one = zbuffer(cam, faces, K, 64, 64, backend="torch")
    assert torch.equal(one, zbuffer(cam, faces, K, 64, 64, max_candidates=50, backend="torch"))
    assert torch.equal(one, zbuffer(cam, faces, K, 64, 64))


# --- the C++ kernel against the torch reference ------------------------------------------------------


@pytest.fixture
def kernel():
    """Skip when the C++ kernel cannot be built (checked when a test needs it, not at collection)."""
    if not kernel_available():
        pytest.skip("C++ mesh raster kernel did not build")


def random_rotation(g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def parts_mesh(keys, g: torch.Generator, spread: float = 0.5):
    """Randomly scaled, rotated and placed copies of canonical primitives, one part each."""
    verts, faces, vp, fp, n = [], [], [], [], 0
    for i, key in enumerate(keys):
        m = canonical_mesh(key)
        size = 0.1 + 0.4 * torch.rand(3, generator=g, dtype=torch.float64)
        centre = spread * (2 * torch.rand(3, generator=g, dtype=torch.float64) - 1)
        verts.append((m.verts.double() * size) @ random_rotation(g).T + centre)
        faces.append(m.faces.long() + n)
        vp.append(torch.full((m.verts.shape[0],), i, dtype=torch.long))
        fp.append(torch.full((m.faces.shape[0],), i, dtype=torch.long))
        n += m.verts.shape[0]
    return torch.cat(verts), torch.cat(faces), torch.cat(vp), torch.cat(fp)


SHAPES = [PrimitiveKey("t", "box", "cube", (2, 2, 2)), PrimitiveKey("t", "sub", "cube", (3, 4, 3)),
          PrimitiveKey("t", "cyl", "cylinder", (16, 3, 1, "NGON")),
          PrimitiveKey("t", "fan", "cylinder", (12, 1, 1, "TRIANGLE_FAN")),
          PrimitiveKey("t", "ball", "uv_sphere", (12, 6))]


def assert_same_render(verts, faces, vp, fp, vm, k, width, height, face_active=None, grad_tol=1e-9):
    """Both backends give the same maps, depth and alpha, and the same gradient of both w.r.t. verts."""
    out, grads = [], []
    g = torch.Generator().manual_seed(5)
    w_alpha = torch.rand(height, width, generator=g, dtype=verts.dtype)
    w_depth = torch.rand(height, width, generator=g, dtype=verts.dtype)
    for backend in ("torch", "cpu"):
        v = verts.detach().clone().requires_grad_(True)
        mv = render_mesh(v, faces, vp, fp, vm, k, width, height, face_active, backend=backend)
        (grad,) = torch.autograd.grad((mv.alpha * w_alpha).sum() + (mv.depth * w_depth).sum(), v)
        out.append(mv)
        grads.append(grad)
    ref, new = out
    assert torch.equal(ref.face, new.face) and torch.equal(ref.part, new.part)
    assert torch.equal(ref.depth, new.depth) and torch.equal(ref.alpha, new.alpha)
    scale = float(grads[0].abs().max()) + 1.0
    assert float((grads[0] - grads[1]).abs().max()) <= grad_tol * scale, (grads[0] - grads[1]).abs().max()
    return ref


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_zbuffer_matches_the_reference_on_random_triangles(kernel, dtype):
    g = torch.Generator().manual_seed(0)
    k = torch.tensor([[40.0, 0.3, 24], [0, 40.0, 20], [0, 0, 1]], dtype=dtype)
    for trial in range(6):
        V, F = 60, 150
        verts = torch.rand(V, 3, generator=g, dtype=torch.float64) * 2 - 1
        verts[:, 2] = verts[:, 2] * 2.0 + 1.6  # z in [-0.4, 3.6]: some corners behind or near the camera
        verts = verts.to(dtype)
        faces = torch.randint(0, V, (F, 3), generator=g)
        # exact copies at higher indices (equal depth everywhere: the lower index must win) and a few
        # triangles with a repeated corner (no area)
        faces = torch.cat([faces, faces[:40], faces[:5, [0, 0, 1]]])
        active = None
        if trial % 2:
            active = torch.rand(F + 5, generator=g) > 0.2
            active = torch.cat([active[:F], active[:40], active[F:]])  # a copy is active with its original
        ref = zbuffer(verts, faces, k, 48, 40, active, backend="torch")
        new = zbuffer(verts, faces, k, 48, 40, active, backend="cpu")
        assert torch.equal(ref, new)
        assert int((new >= 0).sum()) > 100
        assert not bool(((new >= F) & (new < F + 40)).any())  # copies never win
        assert torch.equal(ref, zbuffer(verts, faces, k, 48, 40, active, max_candidates=300, backend="torch"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_matches_the_reference_on_the_chair(kernel, dtype):
    """The training case: the chair program's mesh (boxes, cylinders) in float32 and float64."""
    prog = load_program("chair")
    params = dict(prog.defaults(), **{"Legs Type": 1, "Has Stretchers": True, "Back Type": 1, "Slat Count": 4,
                                      "Has Arms": True})
    rm = prog.evaluate(params, dtype=dtype).realize()
    k = torch.tensor([[110.0, 0, 48], [0, 110.0, 40], [0, 0, 1]])
    for a, h in ((0.4, 1.2), (1.9, 0.5), (3.3, 1.6), (5.0, 0.9)):
        vm = look_at((2.0 * math.cos(a), 2.0 * math.sin(a), h), (0.0, 0.0, 0.45)).to(dtype)
        mv = assert_same_render(rm.verts[0], rm.faces, rm.vert_part, rm.face_part, vm, k, 96, 80,
                                rm.face_active[0], 1e-9 if dtype == torch.float64 else 1e-5)
        assert int((mv.face >= 0).sum()) > 500 and len(torch.unique(mv.part)) > 5


def test_kernel_matches_the_reference_on_random_parts(kernel):
    """Boxes, subdivided boxes (hull vertices collinear in exact arithmetic), cylinders, spheres."""
    g = torch.Generator().manual_seed(1)
    for trial in range(4):
        verts, faces, vp, fp = parts_mesh([SHAPES[i % len(SHAPES)] for i in range(trial, trial + 7)], g)
        for view in range(3):
            a = 2 * math.pi * float(torch.rand((), generator=g))
            vm = look_at((2.2 * math.cos(a), 2.2 * math.sin(a), 1.5 * float(torch.rand((), generator=g)) - 0.5))
            assert_same_render(verts, faces, vp, fp, vm, K, 64, 64)


def test_kernel_degenerate_inputs_match_the_reference(kernel):
    faces = CUBE.faces.long()
    verts = cube(torch.tensor([0.4, 0.3, 0.2]))
    none = torch.zeros(0, 3, dtype=torch.long)
    # no faces; all faces behind the camera; all faces inactive
    for f, vm, act in ((none, top_view(), None), (faces, top_view(height=-2.0), None),
                       (faces, top_view(), torch.zeros(12, dtype=torch.bool))):
        mv = assert_same_render(verts, f, *one_part(8, f.shape[0]), vm, K, 32, 32, act)
        assert bool((mv.face == -1).all()) and float(mv.alpha.detach().abs().sum()) == 0.0
    # a flat part seen exactly edge-on (the camera in its plane: it covers nothing) beside a box
    grid = canonical_mesh(PrimitiveKey("t", "g", "grid", (3, 3)))
    verts2 = torch.cat([verts, grid.verts.double() * 0.5 + torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64)])
    faces2 = torch.cat([faces, grid.faces.long() + 8])
    vp = torch.cat([torch.zeros(8, dtype=torch.long), torch.ones(grid.verts.shape[0], dtype=torch.long)])
    fp = torch.cat([torch.zeros(12, dtype=torch.long), torch.ones(grid.faces.shape[0], dtype=torch.long)])
    mv = assert_same_render(verts2, faces2, vp, fp, look_at((2.0, 1.5, 0.0)), K, 64, 64)
    assert bool((mv.face >= 0).any()) and not bool((mv.part == 1).any())


def test_kernel_silhouette_skips_degenerate_hulls_and_pairs_that_do_not_leave(kernel):
    """silhouette() given part maps that render_mesh would not make: the reference's skips hold."""
    uv = torch.tensor([[5.2, 5.2], [24.7, 5.2], [24.7, 24.7], [5.2, 24.7],  # part 0: a square
                       [2.0, 2.0], [9.0, 9.0], [16.0, 16.0],  # part 1: collinear (edge-on)
                       [30.0, 1.0], [31.0, 2.0],  # part 2: two points
                       [-10.0, -10.0], [60.0, -10.0], [60.0, 60.0], [-10.0, 60.0]],  # part 3: beyond the image
                      dtype=torch.float64)
    vp = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3])
    part = torch.full((32, 32), -1, dtype=torch.long)
    part[5:25, 5:25] = 0
    part[2:5, 2:5] = 1
    part[0:3, 28:31] = 2
    part[26:30, 2:6] = 3  # the hull holds the neighbours too: no segment leaves it
    alphas, grads = [], []
    for backend in ("torch", "cpu"):
        u = uv.clone().requires_grad_(True)
        alpha = silhouette(u, vp, part, backend=backend)
        (grad,) = torch.autograd.grad((alpha * torch.arange(32.0 * 32, dtype=u.dtype).view(32, 32)).sum(), u)
        alphas.append(alpha)
        grads.append(grad)
    assert torch.equal(alphas[0], alphas[1])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-9)
    hard = (part >= 0).double()
    assert torch.equal(alphas[1][part != 0], hard[part != 0])  # only the square's outline is anti-aliased
    assert not torch.equal(alphas[1], hard) and bool((grads[1][4:] == 0).all())


def test_kernel_silhouette_splits_the_gradient_where_a_segment_leaves_through_a_hull_vertex(kernel):
    """A diamond whose right corner lies exactly on a pair's segment: two hull edges tie, as in amin."""
    uv = torch.tensor([[20.75, 10.5], [16.75, 6.5], [12.75, 10.5], [16.75, 14.5]], dtype=torch.float64)
    cols = torch.arange(32, dtype=torch.float64) + 0.5
    inside = ((cols[None, :] - 16.75).abs() + (cols[:, None] - 10.5).abs()) <= 4.0
    part = torch.where(inside, 0, -1)
    assert bool(part[10, 20] == 0) and bool(part[10, 21] == -1)  # the pair (20.5, 10.5) -> (21.5, 10.5)
    grads = []
    for backend in ("torch", "cpu"):
        u = uv.clone().requires_grad_(True)
        alpha = silhouette(u, torch.zeros(4, dtype=torch.long), part, backend=backend)
        (grad,) = torch.autograd.grad(alpha[10, 20], u)
        grads.append(grad)
    assert float(grads[0][0].abs().sum()) > 0 and float(grads[0][1].abs().sum()) > 0  # both edges' far ends
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def test_auto_falls_back_to_the_reference_without_the_kernel_and_cpu_says_so(monkeypatch):
    faces = CUBE.faces.long()
    verts = cube(torch.tensor([0.4, 0.3, 0.2]))
    ref = render_mesh(verts, faces, *one_part(8, 12), top_view(), K, 32, 32, backend="torch")
    monkeypatch.setattr(mr, "_load_kernel", lambda: None)
    mv = render_mesh(verts, faces, *one_part(8, 12), top_view(), K, 32, 32)
    assert torch.equal(mv.face, ref.face) and torch.equal(mv.alpha, ref.alpha)
    with pytest.raises(RuntimeError, match="not available"):
        render_mesh(verts, faces, *one_part(8, 12), top_view(), K, 32, 32, backend="cpu")
    with pytest.raises(ValueError, match="backend"):
        zbuffer(verts, faces, K, 32, 32, backend="gpu")
