"""Densification and pruning of procedural Gaussians, in canonical space.

Convention: statistics are gathered per *world* Gaussian (one per copy) from the rasterizer's
screen-space means gradient and reduced onto the canonical Gaussian it copies (the largest over its
copies, so a Gaussian that is under-fitted in any copy grows). Growing happens in canonical space:
*clone* duplicates a canonical Gaussian; *split* replaces one by two drawn from its own canonical
distribution with scales divided by 1.6 (as 3DGS does). With ``clone_per_copy`` the clone of a Gaussian
that several copies show belongs to the one copy where its summed gradient is largest
(``ProceduralGaussians.copy``): copies that look different (shelves lit differently, legs with their own
grain) gain detail where they differ, the shared Gaussian stays for all, and the clone costs one world
Gaussian instead of one per copy. Pruning removes canonical Gaussians whose
opacity is below a threshold. Parameters and their Adam states are resized together by the one helper
:func:`resize_params` (one optimizer per parameter name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from splat.errors import SplatError
from splat.maths import quats_to_rotmats
from splat.gaussians.model import ProceduralGaussians


def resize_params(
    model: ProceduralGaussians,
    optimizers: dict[str, torch.optim.Optimizer],
    param_fn: Callable[[str, Tensor], Tensor],
    state_fn: Callable[[str, Tensor], Tensor],
    rows: Tensor,
) -> None:
    """Replace every per-Gaussian parameter by ``param_fn(name, old)`` and each of its optimizer state
    tensors by ``state_fn(key, old)`` (``key`` = "exp_avg", ...), keeping the optimizers pointing at the
    new Parameters. The one place where the number of Gaussians changes. ``rows`` [N'] is the old row each
    new row comes from (its primitive and copy are taken from there).
    """
    new_params: dict[str, nn.Parameter] = {}
    for name, old in model.params.items():
        new = nn.Parameter(param_fn(name, old.detach()), requires_grad=old.requires_grad)
        opt = optimizers.get(name)
        if opt is not None:
            for group in opt.param_groups:
                for i, p in enumerate(group["params"]):
                    if p is not old:
                        continue
                    st = opt.state.pop(p, None)
                    if st:
                        opt.state[new] = {k: (state_fn(k, v) if isinstance(v, Tensor) and v.ndim > 0 else v)
                                          for k, v in st.items()}
                    group["params"][i] = new
        new_params[name] = new
    model.set_params(new_params, model.prim[rows], model.copy[rows])


@dataclass(frozen=True)
class DensifySettings:
    """Hyperparameters of :class:`Densifier` and its schedule (:meth:`collects`, :meth:`due`; the trainer's
    ``densify`` section)."""

    grad_threshold: float = 2e-4
    """Mean view-space position-gradient norm (NDC-like units, as gsplat) above which a Gaussian grows."""
    split_scale: float = 0.01
    """Growing Gaussians whose largest world scale exceeds this (metres) are split, smaller ones cloned."""
    prune_opacity: float = 0.01
    """Gaussians with opacity below this are pruned, in [0, 1)."""
    max_gaussians: int = 60000
    """Upper bound on the number of canonical Gaussians (never grown beyond)."""
    enabled: bool = True
    """Clone/split Gaussians with a large view-space gradient and prune transparent ones (False: the set
    of Gaussians never changes)."""
    start: int = 100
    """First step at which densification runs."""
    stop: int = 1000
    """Statistics are gathered and the set changes only before this step; after it the set is frozen."""
    every: int = 100
    """Densify/prune every this many steps (counted from ``start``)."""
    clone_per_copy: bool = True
    """The clone of a Gaussian that several copies of its primitive show belongs to the copy where its
    gradient was largest (False: clones are shared by every copy, like their parent). Measured (same
    cached searches, 1000 steps, bench/RESULTS.md): held-out PSNR of the stool fitted by the table
    program 25.55 -> 27.47 dB; with copy-owned detail Gaussians, against neither: chair 31.45 -> 31.66,
    table 32.46 -> 32.64, cabinet 27.63 -> 27.87 dB."""

    def collects(self, step: int) -> bool:
        """Whether step ``step`` (0-based) gathers gradient statistics (:meth:`Densifier.accumulate`)."""
        return self.enabled and step < self.stop

    def due(self, step: int) -> bool:
        """Whether :meth:`Densifier.step` runs after step ``step`` (0-based)."""
        return self.collects(step) and step >= self.start and (step + 1 - self.start) % self.every == 0

    def validate(self) -> None:
        """Raise :class:`SplatError` naming the field (``max_gaussians``) for an out-of-range value."""
        checks = (
            (self.grad_threshold > 0.0, "grad_threshold", f"must be > 0, got {self.grad_threshold}"),
            (self.split_scale > 0.0, "split_scale", f"must be > 0, got {self.split_scale}"),
            (0.0 <= self.prune_opacity < 1.0, "prune_opacity", f"must be in [0, 1), got {self.prune_opacity}"),
            (self.max_gaussians >= 1, "max_gaussians", f"must be >= 1, got {self.max_gaussians}"),
            (self.start >= 0, "start", f"must be >= 0, got {self.start}"),
            (self.stop >= 0, "stop", f"must be >= 0, got {self.stop}"),
            (self.every >= 1, "every", f"must be >= 1, got {self.every}"),
        )
        for ok, name, message in checks:
            if not ok:
                raise SplatError(message, field=name)


class Densifier:
    """Accumulates screen-space gradient statistics and grows/prunes the canonical Gaussians.

    State (``grad_sum``, ``count``: [N]) is explicit and checkpointable through :meth:`state` /
    :meth:`load_state`.
    """

    def __init__(self, settings: DensifySettings, n: int):
        self.settings = settings
        self.grad_sum = torch.zeros(n)
        self.count = torch.zeros(n)
        self.copy_sum = torch.zeros(n, 0)  # [N, C] summed gradient norm per copy (clone_per_copy only)

    def state(self) -> dict[str, Tensor]:
        return {"grad_sum": self.grad_sum.clone(), "count": self.count.clone(), "copy_sum": self.copy_sum.clone()}

    def load_state(self, state: dict[str, Tensor]) -> None:
        self.grad_sum = state["grad_sum"].clone()
        self.count = state["count"].clone()
        self.copy_sum = state.get("copy_sum", torch.zeros(self.grad_sum.shape[0], 0)).clone()

    def _reset(self, n: int) -> None:
        self.grad_sum = torch.zeros(n)
        self.count = torch.zeros(n)
        self.copy_sum = torch.zeros(n, 0)

    @torch.no_grad()
    def accumulate(self, means2d_grad: Tensor, radii: Tensor, source: Tensor, width: int, height: int,
                   copy: Tensor | None = None) -> None:
        """Add one view's statistics.

        Args:
            means2d_grad: [M, 2] gradient of the loss w.r.t. the projected means (pixels).
            radii: [M] or [M, 2] screen radii; > 0 where the Gaussian was rasterized.
            source: [M] canonical index of each world Gaussian.
            copy: [M] which copy of its primitive each world Gaussian is in (``WorldGaussians.copy``);
                needed for ``clone_per_copy``.
        """
        g = means2d_grad.detach().clone()
        g[:, 0] *= width / 2.0
        g[:, 1] *= height / 2.0
        norm = torch.linalg.vector_norm(g, dim=-1)
        vis = (radii > 0).all(-1) if radii.ndim == 2 else radii > 0
        n = self.grad_sum.shape[0]
        best = torch.zeros(n, dtype=norm.dtype).scatter_reduce(0, source[vis], norm[vis], "amax", include_self=True)
        seen = torch.zeros(n, dtype=torch.bool)
        seen[source[vis]] = True
        self.grad_sum += best.to(self.grad_sum.dtype)
        self.count += seen.to(self.count.dtype)
        if self.settings.clone_per_copy and copy is not None and bool(vis.any()):
            c_max = int(copy[vis].max()) + 1
            if c_max > self.copy_sum.shape[1]:
                self.copy_sum = torch.cat([self.copy_sum, self.copy_sum.new_zeros(n, c_max - self.copy_sum.shape[1])], 1)
            flat = source[vis] * self.copy_sum.shape[1] + copy[vis]
            self.copy_sum.view(-1).index_add_(0, flat, norm[vis].to(self.copy_sum.dtype))

    @torch.no_grad()
    def step(self, model: ProceduralGaussians, optimizers: dict[str, torch.optim.Optimizer],
             world_scale: Tensor, generator: torch.Generator) -> tuple[int, int, int]:
        """Clone, split and prune; reset the statistics. Returns (n_cloned, n_split, n_pruned).

        Args:
            world_scale: [N] largest world standard deviation of each canonical Gaussian (over copies).
        """
        s = self.settings
        n = len(model)
        avg = self.grad_sum / self.count.clamp_min(1)
        opac = torch.sigmoid(model.params["opacity_logits"].detach())
        prune = opac < s.prune_opacity
        grow = (avg > s.grad_threshold) & (self.count > 0) & ~prune
        room = max(0, s.max_gaussians - n)
        if int(grow.sum()) > room:  # keep the largest gradients
            idx = torch.nonzero(grow).squeeze(1)
            keep = idx[torch.argsort(avg[idx], descending=True)[:room]]
            grow = torch.zeros_like(grow)
            grow[keep] = True
        split = grow & (world_scale > s.split_scale)
        clone = grow & ~split
        n_clone, n_split = int(clone.sum()), int(split.sum())

        # rows: keep (not split, not pruned) + clones + 2 children per split
        keep = ~split & ~prune
        ci = torch.nonzero(clone).squeeze(1)
        si = torch.nonzero(split).squeeze(1)
        p = model.params
        if n_split:
            L = quats_to_rotmats(p["quats"][si]) * p["log_scales"][si].exp()[:, None, :]
            eps = torch.randn(2, n_split, 3, generator=generator, dtype=L.dtype)
            child_means = p["means"][si][None] + (L[None] @ eps[..., None]).squeeze(-1)  # [2, S, 3]
        else:
            child_means = p["means"].new_zeros(2, 0, 3)

        def param_fn(name: str, old: Tensor) -> Tensor:
            parts = [old[keep], old[ci]]
            if name == "means":
                parts += [child_means[0], child_means[1]]
            elif name == "log_scales":
                parts += [old[si] - torch.log(torch.tensor(1.6, dtype=old.dtype))] * 2
            else:
                parts += [old[si], old[si]]
            return torch.cat(parts)

        def state_fn(_key: str, old: Tensor) -> Tensor:
            z = old.new_zeros((n_clone + 2 * n_split, *old.shape[1:]))
            return torch.cat([old[keep], z])

        rows = torch.cat([torch.nonzero(keep).squeeze(1), ci, si, si])
        clone_copy = model.copy[ci].clone()
        if s.clone_per_copy and self.copy_sum.shape[1] > 1 and n_clone:
            # a shared Gaussian seen in two or more copies: its clone goes to the copy that wanted it most
            per_copy = self.copy_sum[ci]
            several = (per_copy > 0).sum(1) >= 2
            own = several & (clone_copy < 0)
            clone_copy[own] = per_copy[own].argmax(1)
        resize_params(model, optimizers, param_fn, state_fn, rows)
        n_keep = rows.shape[0] - n_clone - 2 * n_split
        model.copy[n_keep:n_keep + n_clone] = clone_copy
        self._reset(len(model))
        return n_clone, n_split, int(prune.sum())
