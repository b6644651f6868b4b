"""Scene builders shared by the tests/test_render_*.py files (not a test module)."""

from __future__ import annotations

import math

import torch


def look_at(eye, target, dtype=torch.float32) -> torch.Tensor:
    """World->camera OpenCV viewmat (x right, y down, z forward) looking from eye at target, +Z up."""
    eye = torch.as_tensor(eye, dtype=torch.float64)
    fwd = torch.as_tensor(target, dtype=torch.float64) - eye
    fwd = fwd / fwd.norm()
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    right = torch.linalg.cross(fwd, up)
    if right.norm() < 1e-6:
        right = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    rot = torch.stack([right, down, fwd])  # rows: camera axes in world
    vm = torch.eye(4, dtype=torch.float64)
    vm[:3, :3] = rot
    vm[:3, 3] = -rot @ eye
    return vm.to(dtype)


def cameras(n_cam: int, width: int, height: int, dtype=torch.float32, radius: float = 3.0):
    """n_cam cameras on a circle around the origin, focal ~ image size."""
    vms, ks = [], []
    for i in range(n_cam):
        a = 2 * math.pi * i / max(n_cam, 1) + 0.3
        vms.append(look_at([radius * math.cos(a), radius * math.sin(a), 0.8 + 0.3 * i], [0.05, -0.03, 0.1], dtype))
        f = 1.1 * max(width, height)
        ks.append(torch.tensor([[f, 0.0, width / 2 + 0.7], [0.0, f * 1.05, height / 2 - 0.4], [0, 0, 1]], dtype=dtype))
    return torch.stack(vms), torch.stack(ks)


def gaussians(n: int, seed: int, kind: str = "random", dtype=torch.float32, sh_degree=None):
    """Random Gaussians of a given flavour; returns dict of means, quats, scales, opacities, colors."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=dtype)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    means = randn(n, 3) * 0.5
    quats = randn(n, 4)
    scales = 0.01 + rand(n, 3) * 0.08
    opac = 0.05 + 0.9 * rand(n)
    if kind == "anisotropic":
        scales = scales * torch.tensor([3.0, 0.3, 0.05], dtype=dtype)
    elif kind == "flat":  # degenerate: exactly zero thickness
        scales[:, 2] = 0.0
    elif kind == "needle":  # rank-1 covariance
        scales[:, 1:] = 0.0
        scales[:, 0] *= 4
    elif kind == "huge_tiny":
        big = rand(n) < 0.3
        scales = torch.where(big[:, None], scales * 20, scales * 0.02)
    elif kind == "opacity_extremes":
        choice = torch.tensor([0.0, 1e-3, 1 / 255 + 1e-4, 0.5, 0.999, 1.0], dtype=dtype)
        opac = choice[torch.randint(0, len(choice), (n,), generator=g)]
    elif kind == "near_far":  # behind the camera, straddling near plane, off-screen (for camera 0)
        means = randn(n, 3) * 2.0
        scales = scales * 3
    if sh_degree is None:
        colors = rand(n, 3)
    else:
        colors = randn(n, (sh_degree + 1) ** 2, 3) * 0.3
    return {"means": means, "quats": quats, "scales": scales, "opacities": opac, "colors": colors}


def failed_build_warnings(monkeypatch, kernel: tuple) -> list:
    """The warnings of an uncached build of ``kernel`` (a module's ``_KERNEL`` arguments of
    ``splat._cpp.load_extension``) when the compiler fails; asserts the loader then returns None."""
    import warnings

    import torch.utils.cpp_extension as cpp

    from splat._cpp import load_extension

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(cpp, "load", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_extension.__wrapped__(*kernel) is None  # the uncached build
    return caught
