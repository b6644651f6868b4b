"""The fused C++ pushforward (splat.render.cpu.pushforward_fused, in project.cpp) against the torch code of
``ProceduralGaussians.pushforward`` it replaces on CPU.

Reference: ``ProceduralGaussians._pushforward_torch`` (taken when ``_fused_available`` says no) and torch
autograd through it. Checked: the world Gaussians, the gradients w.r.t. every canonical parameter and the
program's continuous parameters (the leg width of test_gaussians' geometry, and a ProgramFit's
parameters and placement), with copy-owned Gaussians, per-copy residuals (also fewer columns than
copies), an inactive part, two copies of a key, SH degree 2 and absent output gradients; gradcheck;
bitwise-equal results for any thread count; empty and partly empty geometry.

Budget: < 10 s once the extension is cached.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import splat.gaussians.model as model_module
from splat.gaussians import InitSettings, ProceduralGaussians, init_gaussians
from splat.render.cpu import projection_available, pushforward_fused
from test_gaussians import LEG, SEAT, make_geometry

OUTPUTS = ("means", "covars", "factors", "opacities", "sh")


@pytest.fixture(autouse=True, scope="module")
def _kernel():
    if not projection_available():
        pytest.skip("the C++ extension could not be built")


def _model(dtype, *, residual_cols=2, sh_degree=2, n=300, seed=0) -> ProceduralGaussians:
    """Gaussians over test_gaussians' seat and two legs with every parameter perturbed (unnormalised
    quaternions, non-zero SH and residuals), 5 leg Gaussians owned by the second leg, 3 by the first."""
    gen = torch.Generator().manual_seed(seed)
    base = init_gaussians(make_geometry(torch.tensor(0.8, dtype=torch.float64)),
                          InitSettings(num_init=n, sh_degree=sh_degree, color_mode="constant",
                                       per_copy_residuals=False), gen, dtype=torch.float64)
    params = {k: v.detach() + 0.1 * torch.randn(v.shape, generator=gen, dtype=v.dtype)
              for k, v in base.params.items()}
    params["quats"] = params["quats"] * (0.5 + torch.rand(len(base), 1, generator=gen, dtype=torch.float64))
    if residual_cols:
        params["residuals"] = 0.2 * torch.randn(len(base), residual_cols, 3, generator=gen, dtype=torch.float64)
    rows = torch.nonzero(base.prim == base.keys.index(LEG)).squeeze(1)
    copy = torch.full_like(base.prim, -1)
    copy[rows[:5]] = 1
    copy[rows[5:8]] = 0
    params = {k: v.to(dtype) for k, v in params.items()}
    return ProceduralGaussians(base.keys, params, base.prim, sh_degree, copy)


def _run(model, geometry_of, fused: bool, monkeypatch, weights=None, outputs=OUTPUTS):
    """World Gaussians and the gradients of sum(weights * outputs) w.r.t. the model's parameters and the
    inputs of ``geometry_of`` (a callable returning (geometry, leaf tensors))."""
    with monkeypatch.context() as mp:
        if not fused:
            mp.setattr(model_module, "_fused_available", lambda x: False)
        geo, leaves = geometry_of()
        world = model.pushforward(geo)
    assert (type(world.means.grad_fn).__name__ == "_PushforwardBackward") == fused
    gen = torch.Generator().manual_seed(7)
    weights = weights or {k: torch.randn(getattr(world, k).shape, generator=gen, dtype=world.means.dtype)
                          for k in OUTPUTS}
    loss = sum((getattr(world, k) * weights[k]).sum() for k in outputs)
    params = list(model.params.values())
    grads = torch.autograd.grad(loss, params + leaves, allow_unused=True)
    named = dict(zip(list(model.params.keys()) + [f"leaf{i}" for i in range(len(leaves))], grads))
    return world, named, weights


def _leg_width(dtype, leg2_active=True):
    def geometry_of():
        w = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
        return make_geometry(w, leg2_active=leg2_active), [w]
    return geometry_of


def _close(got, want, dtype, what):
    rtol, scale = (1e-12, 1e-12) if dtype == torch.float64 else (1e-5, 1e-6)
    atol = scale * max(float(want.detach().abs().max()), 1.0) if want.numel() else 0.0
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("leg2_active", [True, False])
@pytest.mark.parametrize("residual_cols", [2, 1, 0])
def test_fused_matches_torch_values_and_gradients(dtype, leg2_active, residual_cols, monkeypatch):
    model = _model(dtype, residual_cols=residual_cols)
    geometry_of = _leg_width(dtype, leg2_active)
    ref, ref_g, weights = _run(model, geometry_of, False, monkeypatch)
    got, got_g, _ = _run(model, geometry_of, True, monkeypatch, weights)
    for k in ("source", "part", "copy"):
        assert torch.equal(getattr(got, k), getattr(ref, k))
    assert bool((got.copy == 1).any()) == leg2_active
    for k in OUTPUTS:
        _close(getattr(got, k), getattr(ref, k), dtype, k)
    for k, g in ref_g.items():
        assert got_g[k] is not None and g is not None, k
        assert g.abs().sum() > 0, k  # every parameter (and the leg width) is reached
        _close(got_g[k], g, dtype, k)
    if not leg2_active:  # the second leg's own Gaussians are not shown: no gradient
        unshown = model.copy == 1
        assert all(float(g[unshown].abs().max()) == 0 for k, g in got_g.items() if not k.startswith("leaf"))


@pytest.mark.parametrize("outputs", [("means",), ("covars", "sh"), ("factors", "opacities")])
def test_absent_output_gradients_are_zero(outputs, monkeypatch):
    model = _model(torch.float64)
    ref, ref_g, weights = _run(model, _leg_width(torch.float64), False, monkeypatch, outputs=outputs)
    _, got_g, _ = _run(model, _leg_width(torch.float64), True, monkeypatch, weights, outputs=outputs)
    for k, g in ref_g.items():
        want = torch.zeros_like(model.params[k]) if g is None else g
        _close(got_g[k] if got_g[k] is not None else torch.zeros_like(want), want, torch.float64, k)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradients_reach_a_program_fits_parameters_as_with_torch(dtype, monkeypatch):
    from splat.program import ProgramFit, ShapeProgram
    from train_fixtures import STOOL_PARAMS, stool_program_dict

    fit = ProgramFit(ShapeProgram.from_dict(stool_program_dict()), STOOL_PARAMS, torch.eye(4, dtype=torch.float64),
                     dtype=dtype)
    with torch.no_grad():
        fit.yaw.fill_(0.3)
        fit.translation.copy_(torch.tensor([0.1, -0.2, 0.05]))
    gen = torch.Generator().manual_seed(2)
    base = init_gaussians(fit.geometry(), InitSettings(num_init=400, sh_degree=1, color_mode="constant"), gen,
                          dtype=dtype)
    params = {k: v.detach() + 0.05 * torch.randn(v.shape, generator=gen, dtype=v.dtype)
              for k, v in base.params.items()}
    model = ProceduralGaussians(base.keys, params, base.prim, base.sh_degree)
    leaves = [fit.u, fit.translation, fit.yaw, fit.log_scale]
    ref, ref_g, weights = _run(model, lambda: (fit.geometry(), leaves), False, monkeypatch)
    got, got_g, _ = _run(model, lambda: (fit.geometry(), leaves), True, monkeypatch, weights)
    assert int(ref.copy.max()) >= 1  # the stool's legs: several copies of one key
    for k in OUTPUTS:
        _close(getattr(got, k), getattr(ref, k), dtype, k)
    for k, g in ref_g.items():
        assert g.abs().sum() > 0, k
        if dtype == torch.float64:
            _close(got_g[k], g, dtype, k)
        else:  # sums over all world Gaussians: the kernel's are in double
            torch.testing.assert_close(got_g[k], g, rtol=1e-4, atol=1e-5 * float(g.abs().max()))


def _random_case(n, n_parts, copies, dtype, seed=0, k=4, residual_cols=2):
    """Inputs of pushforward_fused: every canonical Gaussian shown by ``copies`` random parts (with a
    copy number each), in a random world order."""
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    src = torch.arange(n).repeat(copies)
    perm = torch.randperm(len(src), generator=gen)
    src = src[perm]
    part = torch.randint(0, n_parts, (len(src),), generator=gen)
    copy = torch.randint(0, 3, (len(src),), generator=gen)
    params = {"means": rnd(n, 3), "quats": rnd(n, 4), "log_scales": 0.3 * rnd(n, 3) - 1.0,
              "opacity_logits": rnd(n), "sh0": rnd(n, 1, 3), "shN": rnd(n, k - 1, 3)}
    if residual_cols:
        params["residuals"] = rnd(n, residual_cols, 3)
    return rnd(n_parts, 3, 3), rnd(n_parts, 3), part, src, copy, params


def test_gradcheck():
    A, t, part, src, copy, params = _random_case(5, 3, 2, torch.float64)
    src[0] = src[1]  # one canonical Gaussian shown three times, another once
    names = list(params)

    def f(A, t, *values):
        return tuple(pushforward_fused(A, t, part, src, copy, dict(zip(names, values))))

    inputs = [x.requires_grad_() for x in (A, t, *params.values())]
    assert torch.autograd.gradcheck(f, inputs)


def test_bitwise_the_same_for_any_thread_count():
    A, t, part, src, copy, params = _random_case(3000, 7, 3, torch.float32, k=9)  # several chunks
    leaves = [x.requires_grad_() for x in (A, t, *params.values())]
    gen = torch.Generator().manual_seed(3)
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            world = pushforward_fused(A, t, part, src, copy, params)
            if not results:
                weights = [torch.randn(x.shape, generator=gen) for x in world]
            loss = sum((x * w).sum() for x, w in zip(world, weights))
            results.append((world, torch.autograd.grad(loss, leaves)))
    finally:
        torch.set_num_threads(before)
    (w1, g1), *others = results
    for w, g in others:
        assert all(torch.equal(a, b) for a, b in zip(w, w1))
        assert all(torch.equal(a, b) for a, b in zip(g, g1))


def test_empty_and_partly_empty_geometry(monkeypatch):
    model = _model(torch.float64)
    w = torch.tensor(0.8, dtype=torch.float64)
    geo = make_geometry(w)
    off = dataclasses.replace(geo, parts=tuple(dataclasses.replace(p, active=torch.tensor([False]))
                                               for p in geo.parts))
    world = model.pushforward(off)
    assert world.means.shape == (0, 3) and world.sh.shape == (0, 9, 3) and world.source.numel() == 0
    # a key with no Gaussians (the legs): only the seat's, as with torch
    seat_only = ProceduralGaussians(model.keys, {k: v[model.prim == model.keys.index(SEAT)] for k, v in
                                                 model.params.items()},
                                    model.prim[model.prim == model.keys.index(SEAT)], model.sh_degree)
    got = seat_only.pushforward(geo)
    with monkeypatch.context() as mp:
        mp.setattr(model_module, "_fused_available", lambda x: False)
        ref = seat_only.pushforward(geo)
    assert got.part.unique().tolist() == [0]
    for k in (*OUTPUTS, "source", "part", "copy"):
        torch.testing.assert_close(getattr(got, k), getattr(ref, k), rtol=1e-12, atol=1e-12)


def test_torch_path_when_the_extension_is_unavailable(monkeypatch):
    model = _model(torch.float32, residual_cols=1)
    geo = make_geometry(torch.tensor(0.8, dtype=torch.float64))
    fused = model.pushforward(geo)
    monkeypatch.setattr(model_module, "projection_available", lambda: False)
    plain = model.pushforward(geo)
    assert type(plain.means.grad_fn).__name__ != "_PushforwardBackward"
    for k in OUTPUTS:
        torch.testing.assert_close(getattr(plain, k), getattr(fused, k))
