"""Procedural Gaussians: pushforward, shared copies, gradients to program parameters, densification.

Budget: < 15 s. Geometry is built by hand from splat.geonodes Parts (a "seat" cube and two copies of a
"leg" cube whose sizes and offsets depend on one differentiable parameter ``w``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from splat.gaussians import (
    Densifier,
    DensifySettings,
    InitSettings,
    ProceduralGaussians,
    TrainViews,
    init_gaussians,
    resize_params,
)
from splat.geonodes.geometry import Geometry, Part
from splat.geonodes.primitives import PrimitiveKey
from splat.render import RasterSettings, rasterize

SEAT = PrimitiveKey("T", "Seat", "cube", (2, 2, 2))
LEG = PrimitiveKey("T", "Leg", "cylinder", (12, 1, 1, "NGON"))


def _translate(x, y, z):
    m = torch.eye(4, dtype=torch.float64)
    m[0, 3], m[1, 3], m[2, 3] = x, y, z
    return m


def make_geometry(w: torch.Tensor, *, leg2_active: bool = True) -> Geometry:
    """B = 1 geometry: a w x 0.6 x 0.1 seat at z = 0.5 and two legs (radius 0.05 w, height 0.5)."""
    one = torch.ones((), dtype=torch.float64)
    size = torch.stack([w, 0.6 * one, 0.1 * one])[None]
    seat = Part(SEAT, {"size": size}, (_translate(0, 0, 0.5) @ _rot_z(0.3))[None],
                torch.tensor([True]))
    legs = []
    for sx, act in ((-0.4, True), (0.4, leg2_active)):
        t = _translate(0, 0.2, 0.25).clone()
        t = t + torch.zeros(4, 4, dtype=torch.float64).index_put((torch.tensor(0), torch.tensor(3)), sx * w)
        legs.append(Part(LEG, {"radius": (0.05 * w)[None], "depth": (0.5 * one)[None]}, t[None],
                         torch.tensor([act])))
    return Geometry(1, (seat, *legs))


def _rot_z(a: float) -> torch.Tensor:
    m = torch.eye(4, dtype=torch.float64)
    c, s = math.cos(a), math.sin(a)
    m[0, 0], m[0, 1], m[1, 0], m[1, 1] = c, -s, s, c
    return m


def _gaussians(w, n=600, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    return init_gaussians(make_geometry(w), InitSettings(num_init=n, **kw), g, dtype=torch.float64)


def _segment_dist(p, a, b):  # [P, 1, 3], [1, F, 3] x2 -> [P, F]
    ab = b - a
    t = ((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-30)
    return torch.linalg.vector_norm(p - (a + t.clamp(0, 1)[..., None] * ab), dim=-1)


def distance_to_mesh(points: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """[P] exact distance from each point to the realized (active) mesh of batch element 0."""
    rm = geometry.realize()
    tri = rm.verts[0].detach()[rm.faces[rm.face_active[0]]]  # [F, 3, 3]
    p = points.detach()[:, None, :]
    a, b, c = tri[None, :, 0], tri[None, :, 1], tri[None, :, 2]
    n = torch.cross(b - a, c - a, dim=-1)
    n = n / torch.linalg.vector_norm(n, dim=-1, keepdim=True)
    h = ((p - a) * n).sum(-1)
    q = p - h[..., None] * n  # projection onto the plane
    inside = ((torch.cross(b - a, q - a, dim=-1) * n).sum(-1) >= -1e-12) & \
        ((torch.cross(c - b, q - b, dim=-1) * n).sum(-1) >= -1e-12) & \
        ((torch.cross(a - c, q - c, dim=-1) * n).sum(-1) >= -1e-12)
    edge = torch.minimum(torch.minimum(_segment_dist(p, a, b), _segment_dist(p, b, c)), _segment_dist(p, c, a))
    return torch.where(inside, h.abs(), edge).amin(1)


def test_pushforward_means_stay_on_realized_surface_when_params_change():
    model = _gaussians(torch.tensor(0.8, dtype=torch.float64))
    for w in (0.8, 0.5, 1.3):
        geo = make_geometry(torch.tensor(w, dtype=torch.float64))
        world = model.pushforward(geo)
        assert world.means.shape[0] == len(model) + (model.prim == 1).sum()  # the leg has two copies
        assert float(distance_to_mesh(world.means, geo).max()) < 1e-9


def test_pushforward_is_exact_affine_map():
    w = torch.tensor(0.7, dtype=torch.float64)
    model = _gaussians(w)
    geo = make_geometry(w)
    world = model.pushforward(geo)
    seat = geo.parts[0]
    A = seat.transform[0, :3, :3] @ seat.shape_map[0]
    idx = torch.nonzero(world.part == 0).squeeze(1)
    src = world.source[idx]
    mu_c = model.params["means"][src]
    torch.testing.assert_close(world.means[idx], mu_c @ A.T + seat.transform[0, :3, 3])
    torch.testing.assert_close(world.covars[idx], A @ model.canonical_covars()[src] @ A.T)
    # flat along the face normal in world too: the smallest eigenvector is the seat's face normal
    evals, evecs = torch.linalg.eigh(world.covars[idx].detach())
    assert bool((evals[:, 0] < 0.2 * evals[:, 1]).all())


def test_inactive_parts_contribute_nothing():
    w = torch.tensor(0.8, dtype=torch.float64)
    model = _gaussians(w)
    full = model.pushforward(make_geometry(w))
    part = model.pushforward(make_geometry(w, leg2_active=False))
    assert part.means.shape[0] == full.means.shape[0] - int((model.prim == 1).sum())
    assert not bool((part.part == 2).any())


def _camera(eye, target, f=60.0, size=48):
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])  # rows: camera axes in world (OpenCV)
    vm = np.eye(4)
    vm[:3, :3] = R
    vm[:3, 3] = -R @ eye
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    return torch.tensor(vm)[None], torch.tensor(K)[None]


def _render(model, geo, vm, K, size=48):
    world = model.pushforward(geo)
    return rasterize(world.means, world.opacities, world.sh, vm, K, size, size, covars=world.covars,
                     sh_degree=model.sh_degree, backgrounds=torch.zeros(3, dtype=torch.float64),
                     settings=RasterSettings(backend="torch")), world


def test_gradients_reach_program_parameter_through_rasterizer():
    w = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    model = _gaussians(w.detach())
    vm, K = _camera([0.0, -2.0, 1.0], [0, 0, 0.4])
    res, _ = _render(model, make_geometry(w), vm, K)
    target = torch.full_like(res.colors, 0.3)
    loss = (res.colors - target).abs().mean()
    loss.backward()
    assert w.grad is not None and math.isfinite(float(w.grad)) and abs(float(w.grad)) > 0
    assert model.params["means"].grad is not None and model.params["means"].grad.abs().sum() > 0


def test_copies_share_parameters():
    w = torch.tensor(0.8, dtype=torch.float64)
    model = _gaussians(w, per_copy_residuals=False)  # the canonical Gaussians alone (residuals: below)
    geo = make_geometry(w)
    # a camera close to the first leg only, looking away from the second one
    vm, K = _camera([-0.32, 0.2 - 0.4, 0.2], [-0.32, 0.2, 0.2], f=40.0)
    before = model.pushforward(geo)
    res, world = _render(model, geo, vm, K)
    vis = (res.radii[0] > 0).all(-1)
    assert bool(vis[world.part == 1].any()) and not bool(vis[world.part == 2].any())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    (res.colors - 1.0).square().mean().backward()
    opt.step()
    after = model.pushforward(geo)
    moved2 = (after.sh[before.part == 2] - before.sh[before.part == 2]).abs().amax()
    assert float(moved2.detach()) > 0  # the unseen copy changed because its canonical Gaussians did
    torch.testing.assert_close(after.sh[after.part == 1], after.sh[after.part == 2])


def test_per_copy_residuals_make_copies_differ():
    w = torch.tensor(0.8, dtype=torch.float64)
    model = _gaussians(w, per_copy_residuals=True)
    assert model.params["residuals"].shape[1] == 2
    with torch.no_grad():
        model.params["residuals"][:, 1] += 0.5
    world = model.pushforward(make_geometry(w))
    d = world.sh[world.part == 2][:, 0] - world.sh[world.part == 1][:, 0]
    torch.testing.assert_close(d, torch.full_like(d, 0.5))


def test_copy_owned_gaussians_show_in_their_copy_only_through_densify_and_checkpoints():
    w = torch.tensor(0.8, dtype=torch.float64)
    shared = _gaussians(w, n=200)
    leg = shared.keys.index(LEG)
    rows = torch.nonzero(shared.prim == leg).squeeze(1)
    copy = torch.full_like(shared.prim, -1)
    copy[rows[:5]] = 1  # five of the leg's Gaussians belong to the second leg only
    model = ProceduralGaussians(shared.keys, dict(shared.params), shared.prim, shared.sh_degree, copy)
    geo = make_geometry(w)
    world = model.pushforward(geo)
    for r in rows[:5].tolist():
        assert world.part[world.source == r].tolist() == [2]
    for r in rows[5:8].tolist():
        assert sorted(world.part[world.source == r].tolist()) == [1, 2]
    assert len(world.source) == len(shared.pushforward(geo).source) - 5
    # an inactive second leg takes its own Gaussians with it
    assert not bool(torch.isin(rows[:5], model.pushforward(make_geometry(w, leg2_active=False)).source).any())
    # densification: clones and split children keep their copy, pruned rows take it away
    opts = {k: torch.optim.Adam([p], lr=1e-3) for k, p in model.params.items()}
    dens = Densifier(DensifySettings(grad_threshold=1e-12, split_scale=1e-6, prune_opacity=0.01), len(model))
    with torch.no_grad():
        model.params["opacity_logits"][rows[4]] = -20.0  # pruned
    dens.accumulate(torch.ones(len(world.source), 2, dtype=torch.float64), torch.ones(len(world.source)),
                    world.source, 48, 48)
    n_clone, n_split, n_prune = dens.step(model, opts, torch.ones(len(model), dtype=torch.float64),
                                          torch.Generator().manual_seed(0))
    assert n_split > 0 and n_prune == 1
    assert model.copy.shape == model.prim.shape and model.num_copy_owned == 2 * 4  # 4 split into 2 each
    assert bool((model.prim[model.copy >= 0] == leg).all())
    again = ProceduralGaussians.from_state(model.state(), list(model.keys))
    torch.testing.assert_close(again.copy, model.copy)
    torch.testing.assert_close(again.pushforward(geo).means, model.pushforward(geo).means)
    # a checkpoint written before copy-owned Gaussians existed loads with every Gaussian shared
    old = {k: v for k, v in shared.state().items() if k != "copy"}
    assert ProceduralGaussians.from_state(old, list(shared.keys)).num_copy_owned == 0


def test_clone_per_copy_gives_the_clone_to_the_copy_that_wanted_it():
    w = torch.tensor(0.8, dtype=torch.float64)
    model = _gaussians(w, n=200)
    geo = make_geometry(w)
    world = model.pushforward(geo)
    leg = model.keys.index(LEG)
    assert world.copy[world.part == 2].unique().tolist() == [1] and world.copy[world.part == 0].unique().tolist() == [0]
    grad = torch.full((len(world.source), 2), 1e-3, dtype=torch.float64)
    grad[world.part == 2] = 1.0  # the second leg wants more Gaussians, the first one a little
    n0 = len(model)
    for per_copy in (False, True):
        m = ProceduralGaussians(model.keys, dict(model.params), model.prim, model.sh_degree)
        opts = {k: torch.optim.Adam([p], lr=1e-3) for k, p in m.params.items()}
        dens = Densifier(DensifySettings(grad_threshold=1e-12, split_scale=1e9, clone_per_copy=per_copy), n0)
        dens.accumulate(grad, torch.ones(len(world.source)), world.source, 48, 48, world.copy)
        n_clone, n_split, _ = dens.step(m, opts, torch.zeros(n0, dtype=torch.float64), torch.Generator().manual_seed(0))
        assert n_clone == n0 and n_split == 0
        clones = torch.arange(n0, 2 * n0)
        if not per_copy:
            assert m.num_copy_owned == 0
            continue
        # the leg's clones belong to the second leg; the seat (one copy) keeps its clones shared
        assert bool((m.copy[clones][m.prim[clones] == leg] == 1).all())
        assert bool((m.copy[clones][m.prim[clones] != leg] == -1).all())
        after = m.pushforward(geo)
        assert int((after.part == 2).sum()) == 2 * int((after.part == 1).sum())


def test_per_copy_residuals_start_at_each_copys_own_colour():
    w = torch.tensor(0.8, dtype=torch.float64)
    geo = make_geometry(w)
    vm, K = _camera([0.0, -2.0, 0.25], [0, 0.2, 0.25], f=60.0, size=64)
    img = torch.empty(1, 64, 64, 3)
    img[:, :, :32] = torch.tensor([0.9, 0.1, 0.1])  # the left leg (x < 0) is red ...
    img[:, :, 32:] = torch.tensor([0.1, 0.1, 0.9])  # ... the right one blue
    views = TrainViews(img, vm, K, None, None)
    model = init_gaussians(geo, InitSettings(num_init=400, per_copy_residuals=True), torch.Generator().manual_seed(1),
                           views, dtype=torch.float64)
    world = model.pushforward(geo)
    rgb = 0.5 + 0.28209479177387814 * world.sh[:, 0]
    leg = model.keys.index(LEG)
    on_leg = model.prim[world.source] == leg
    x = world.means[:, 0].detach()
    for part, colour in ((1, [0.9, 0.1, 0.1]), (2, [0.1, 0.1, 0.9])):
        sel = on_leg & (world.part == part) & (x.abs() > 0.05)  # clear of the image's middle column
        assert int(sel.sum()) > 10
        torch.testing.assert_close(rgb[sel].median(0).values, torch.tensor(colour, dtype=torch.float64), atol=1e-6, rtol=0)


def test_colours_projected_from_views_and_hidden_points_dropped():
    w = torch.tensor(0.8, dtype=torch.float64)
    geo = make_geometry(w)
    vm, K = _camera([0.0, -2.0, 1.5], [0, 0, 0.4], size=64)
    img = torch.tensor([0.2, 0.6, 0.9]).expand(1, 64, 64, 3).clone()
    views = TrainViews(img, vm, K, None, None)
    g = torch.Generator().manual_seed(1)
    model = init_gaussians(geo, InitSettings(num_init=400, color_mode="project"), g, views, dtype=torch.float64)
    rgb = 0.5 + 0.28209479177387814 * model.params["sh0"][:, 0]
    torch.testing.assert_close(rgb, torch.tensor([0.2, 0.6, 0.9], dtype=torch.float64).expand_as(rgb),
                               atol=1e-6, rtol=0)


def test_resize_and_densify_keep_optimizer_consistent():
    w = torch.tensor(0.8, dtype=torch.float64)
    model = _gaussians(w, n=200)
    opts = {k: torch.optim.Adam([p], lr=1e-3) for k, p in model.params.items()}
    geo = make_geometry(w)
    vm, K = _camera([0.0, -2.0, 1.0], [0, 0, 0.4])
    res, world = _render(model, geo, vm, K)
    res.means2d.retain_grad()
    (res.colors - 0.7).abs().mean().backward()
    for o in opts.values():
        o.step()
    n0 = len(model)
    with torch.no_grad():
        model.params["opacity_logits"][:10] = -20.0  # transparent: pruned
    dens = Densifier(DensifySettings(grad_threshold=1e-12, split_scale=0.02, prune_opacity=0.01), n0)
    dens.accumulate(res.means2d.grad[0], res.radii[0], world.source, 48, 48)
    world_scale = torch.zeros(n0, dtype=torch.float64).scatter_reduce(
        0, world.source, torch.linalg.vector_norm(world.factors, dim=-2).amax(-1).detach(), "amax")
    n_clone, n_split, n_prune = dens.step(model, opts, world_scale, torch.Generator().manual_seed(0))
    assert n_prune >= 10 and n_clone + n_split > 0
    assert len(model) == n0 + n_clone + n_split - n_prune
    for name, p in model.params.items():
        opt = opts[name]
        assert opt.param_groups[0]["params"][0] is p
        if opt.state.get(p):
            assert opt.state[p]["exp_avg"].shape == p.shape
    # the optimizers still train the resized parameters
    for o in opts.values():
        o.zero_grad()
    res, _ = _render(model, geo, vm, K)
    (res.colors - 0.7).abs().mean().backward()
    for o in opts.values():
        o.step()
    assert model.prim.shape[0] == len(model)


def test_resize_params_maps_rows():
    w = torch.tensor(0.8, dtype=torch.float64)
    model = _gaussians(w, n=50)
    opts = {k: torch.optim.Adam([p], lr=1e-3) for k, p in model.params.items()}
    for p in model.params.values():
        p.grad = torch.ones_like(p)
    for o in opts.values():
        o.step()
    n = len(model)
    keep = torch.arange(n) % 2 == 0
    old_means = model.params["means"].detach().clone()
    resize_params(model, opts, lambda _n, t: t[keep], lambda _k, t: t[keep],
                  torch.nonzero(keep).squeeze(1))
    torch.testing.assert_close(model.params["means"].detach(), old_means[keep])
    assert opts["means"].state[model.params["means"]]["exp_avg"].shape[0] == int(keep.sum())


def test_state_round_trip():
    w = torch.tensor(0.8, dtype=torch.float64)
    model = _gaussians(w, n=50)
    again = ProceduralGaussians.from_state(model.state(), [LEG, SEAT])
    geo = make_geometry(w)
    torch.testing.assert_close(again.pushforward(geo).means, model.pushforward(geo).means)


def test_no_surface_is_an_error():
    geo = Geometry(1, ())
    with pytest.raises(ValueError):
        init_gaussians(geo, InitSettings(num_init=10), torch.Generator().manual_seed(0))


def test_pushforward_membership_cache_follows_prim_and_copy_changes():
    """pushforward caches which rows each copy shows; replacing ``copy`` or writing it in place is seen."""
    w = torch.tensor(0.8, dtype=torch.float64)
    model = _gaussians(w, n=200)
    geo = make_geometry(w)
    leg = model.keys.index(LEG)
    rows = torch.nonzero(model.prim == leg).squeeze(1)
    n_shared = len(model.pushforward(geo).source)
    model.pushforward(geo)  # cached now
    model.copy[rows[:3]] = 1  # in place: the second leg alone shows these three
    world = model.pushforward(geo)
    assert len(world.source) == n_shared - 3
    for r in rows[:3].tolist():
        assert world.part[world.source == r].tolist() == [2]
    model.set_params(dict(model.params), model.prim.clone())  # a new copy tensor (all shared)
    assert len(model.pushforward(geo).source) == n_shared


def test_scale_loss_is_the_mean_squared_excess_with_finite_gradients():
    from splat.train.losses import scale_loss

    gen = torch.Generator().manual_seed(3)
    f = torch.randn(500, 3, 3, generator=gen, dtype=torch.float64) * 0.05
    f[:20] = 0.0  # zero-length axes: no excess, and no NaN gradient
    f.requires_grad_()
    got = scale_loss(f, 0.06)
    ref = (torch.relu(torch.linalg.vector_norm(f, dim=-2) - 0.06) / 0.06).square().mean()
    torch.testing.assert_close(got, ref)
    assert float(got) > 0
    (g,) = torch.autograd.grad(got, f)
    (g_ref,) = torch.autograd.grad(ref, f)
    assert bool(torch.isfinite(g).all())
    torch.testing.assert_close(g, g_ref)
