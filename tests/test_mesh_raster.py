"""splat.ops.mesh_raster: the program mesh's depth and anti-aliased silhouette, and their gradients."""

from __future__ import annotations

import math

import torch

from splat.geonodes.primitives import PrimitiveKey, canonical_mesh
from splat.ops.mesh_raster import render_mesh, zbuffer

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
    # chunking gives the same answer as one pass
    assert torch.equal(zbuffer(cam, faces, K, 64, 64), zbuffer(cam, faces, K, 64, 64, max_candidates=50))
