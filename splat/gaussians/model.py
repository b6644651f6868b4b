"""Procedural Gaussians: Gaussians owned by a program's canonical primitives, pushed forward to world.

Convention:
    Every canonical primitive (a :class:`splat.geonodes.PrimitiveKey`) owns a set of Gaussians in its
    canonical unit space (unit cube [-0.5, 0.5]^3, unit cylinder radius 1 / height 1, ...). A part of a
    :class:`splat.geonodes.Geometry` with that key is a *copy*; all copies share the canonical Gaussians.
    With the part's shape map ``S`` [3, 3] and transform ``M`` [4, 4] (local -> world) of one batch
    element, ``A = M[:3, :3] @ S`` and ``t = M[:3, 3]``, the world Gaussians are the exact affine
    pushforward::

        mu_w = A mu_c + t,      Sigma_w = A Sigma_c A^T,     Sigma_c = R diag(exp(2 log_scale)) R^T

    with ``R`` the rotation of the unit quaternion ``quat`` (wxyz). Gradients flow to ``S`` and ``M``,
    hence to the program's continuous parameters. Colours are real SH coefficients (3DGS convention:
    ``rgb = 0.5 + C0 * sh[0] + ...``); opacity is ``sigmoid(opacity_logit)``. Inactive parts
    (``active[b]`` False) contribute nothing. Non-affine parts (cones with varying radius ratio) use the
    part's approximating ``shape_map``.

Parameters live in one flat :class:`torch.nn.ParameterDict` over all canonical Gaussians, with a
``prim`` index [N] saying which primitive key owns each and a ``copy`` index [N] saying which of its
copies show it: -1 (the rule) for every copy, ``c >= 0`` for the ``c``-th copy only (copies counted in
``geometry.parts`` order among the parts with that key). Copy-owned Gaussians are the *detail* Gaussians
seeded where the scan shows surface the program lacks (:func:`splat.gaussians.add_detail_gaussians`): a
detail of one leg is not repeated on the other legs, yet an edit moves it with its leg. An edit that leaves
a key fewer copies drops the Gaussians of the copies that no longer exist. Optimizers are kept by the
caller (one per parameter name, see :mod:`splat.gaussians.densify`).

Every joint training step pushes forward all Gaussians. As torch ops (row gathers, batched 3x3 matmuls
and their scatter-add backward) that costs ~7 ms forward and ~11 ms backward for the chair; on CPU
(float32 / float64) it is one fused C++ pass each way (:func:`splat.render.cpu.pushforward_fused`,
bitwise the same for any thread count). The torch code stays as the reference and the fallback (other
devices, or the C++ extension could not be built).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from splat.maths import quats_to_rotmats
from splat.render.cpu import projection_available, pushforward_fused

if TYPE_CHECKING:
    from splat.geonodes import Geometry


PARAM_NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh0", "shN")
"""Per-Gaussian parameter names (plus ``residuals`` [N, C, 3] when per-copy residuals are on)."""


class WorldGaussians(NamedTuple):
    """World-space Gaussians of one batch element, ready for :func:`splat.render.rasterize`."""

    means: Tensor  # [M, 3] world positions (metres)
    covars: Tensor  # [M, 3, 3] world covariances, = factors @ factors^T
    factors: Tensor  # [M, 3, 3] A R diag(scale): column j is the world image of the j-th canonical axis
    opacities: Tensor  # [M] in (0, 1)
    sh: Tensor  # [M, K, 3] SH coefficients, K = (sh_degree + 1)^2
    source: Tensor  # [M] long: index of the canonical Gaussian each one copies
    part: Tensor  # [M] long: index into geometry.parts of the copy it belongs to
    copy: Tensor  # [M] long: which copy of its primitive that part is (0, 1, ... in geometry.parts order)


def key_id(key: Any) -> str:
    """A stable string for a primitive key (tree/node/kind/topology), used in checkpoints."""
    topo = ",".join(str(t) for t in getattr(key, "topology", ()))
    return f"{key.tree}/{key.node}/{key.kind}/{topo}"


class ProceduralGaussians(nn.Module):
    """Canonical Gaussians of a program's primitives; :meth:`pushforward` gives world Gaussians.

    Args:
        keys: the canonical primitive keys, in a fixed order (``prim`` indexes it).
        params: per-Gaussian tensors (see :data:`PARAM_NAMES`): means [N, 3] canonical, quats [N, 4]
            (wxyz), log_scales [N, 3] canonical, opacity_logits [N], sh0 [N, 1, 3], shN [N, K-1, 3],
            optionally residuals [N, C, 3] (per-copy DC colour residuals; C = most copies of any key).
        prim: [N] long, key index of each Gaussian.
        sh_degree: SH degree of the colours.
        copy: [N] long, the copy that shows each Gaussian (-1: every copy); default all -1.
    """

    def __init__(self, keys: Sequence[Any], params: dict[str, Tensor], prim: Tensor, sh_degree: int,
                 copy: Tensor | None = None):
        super().__init__()
        self.keys = tuple(keys)
        self.sh_degree = int(sh_degree)
        self.params = nn.ParameterDict({k: nn.Parameter(v.detach().clone()) for k, v in params.items()})
        self.register_buffer("prim", prim.detach().clone().long())
        self.register_buffer("copy", _copy_index(copy, self.prim))
        n = self.prim.shape[0]
        for name, p in self.params.items():
            if p.shape[0] != n:
                raise ValueError(f"param {name} has {p.shape[0]} rows, prim has {n}")

    def __len__(self) -> int:
        return int(self.prim.shape[0])

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(key_id(k) for k in self.keys)

    @property
    def has_residuals(self) -> bool:
        return "residuals" in self.params

    def set_params(self, params: dict[str, nn.Parameter], prim: Tensor, copy: Tensor | None = None) -> None:
        """Replace parameters, ``prim`` and ``copy`` (default all -1) after densification or a checkpoint
        load; params must already be Parameters."""
        for name, p in params.items():
            self.params[name] = p
        self.prim = prim
        self.copy = _copy_index(copy, prim)

    @property
    def num_copy_owned(self) -> int:
        """How many Gaussians only one copy of their primitive shows."""
        return int((self.copy >= 0).sum())

    def canonical_covars(self) -> Tensor:
        """[N, 3, 3] canonical covariances ``R diag(exp(2 log_scales)) R^T``."""
        L = self.canonical_factor()
        return L @ L.transpose(-1, -2)

    def canonical_factor(self) -> Tensor:
        """[N, 3, 3] ``R diag(exp(log_scales))`` (so Sigma_c = L L^T)."""
        R = quats_to_rotmats(self.params["quats"])
        return R * self.params["log_scales"].exp()[:, None, :]

    def pushforward(self, geometry: "Geometry", batch_index: int = 0) -> WorldGaussians:
        """World Gaussians of every active part of ``geometry`` at batch element ``batch_index``.

        Parts whose key this model does not own (for example point parts, which have no surface) are
        skipped; a part whose key the model owns but that is inactive contributes nothing. The per-part
        ``A`` and ``t`` are torch ops either way (their gradients go on to the program's parameters); the
        per-Gaussian work is fused C++ on CPU (see the module notes).
        """
        key_index = {k: i for i, k in enumerate(self.keys)}
        members = self._members()
        mu_c = self.params["means"]
        srcs, part_ids, copy_ids, local_ids, As, ts = [], [], [], [], [], []
        for p_idx, (part, c) in enumerate(zip(geometry.parts, copy_numbers(geometry.parts))):
            k = key_index.get(part.key)
            if k is None or not bool(part.active[batch_index]):
                continue
            idx = members[k][-1] if c not in members[k] else torch.cat([members[k][-1], members[k][c]])
            if idx.numel() == 0:
                continue
            M = part.transform[batch_index].to(mu_c.dtype)
            As.append(M[:3, :3] @ part.shape_map[batch_index].to(mu_c.dtype))
            ts.append(M[:3, 3])
            srcs.append(idx)
            part_ids.append(torch.full_like(idx, p_idx))
            copy_ids.append(torch.full_like(idx, c))
            local_ids.append(torch.full_like(idx, len(As) - 1))
        K = (self.sh_degree + 1) ** 2
        if not srcs:
            z = mu_c.new_zeros
            e = torch.zeros(0, dtype=torch.long, device=mu_c.device)
            return WorldGaussians(z(0, 3), z(0, 3, 3), z(0, 3, 3), z(0), z(0, K, 3), e, e, e)
        src, local, copy = torch.cat(srcs), torch.cat(local_ids), torch.cat(copy_ids)
        A, t = torch.stack(As), torch.stack(ts)
        if _fused_available(mu_c):
            means, covars, F, opacities, sh = pushforward_fused(A, t, local, src, copy, dict(self.params))
        else:
            means, covars, F, opacities, sh = self._pushforward_torch(A, t, local, src, copy)
        return WorldGaussians(means=means, covars=covars, factors=F, opacities=opacities, sh=sh, source=src,
                              part=torch.cat(part_ids), copy=copy)

    def _pushforward_torch(self, A: Tensor, t: Tensor, local: Tensor, src: Tensor,
                           copy: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Means, covars, factors, opacities and SH of the world Gaussians with torch ops (any device): the
        reference of :func:`splat.render.cpu.pushforward_fused`, and the path where that is unavailable."""
        A, t = A[local], t[local]  # [M, 3, 3], [M, 3]
        mu_c = self.params["means"]
        means = (A @ mu_c[src][:, :, None]).squeeze(-1) + t
        F = A @ self.canonical_factor()[src]
        sh = torch.cat([self.params["sh0"], self.params["shN"]], dim=1)[src]
        if self.has_residuals:
            res = self.params["residuals"]
            cid = copy.clamp_max(res.shape[1] - 1)
            sh = torch.cat([sh[:, :1] + res[src, cid][:, None, :], sh[:, 1:]], dim=1)
        opacities = torch.sigmoid(self.params["opacity_logits"])[src]
        return means, F @ F.transpose(-1, -2), F, opacities, sh

    def _members(self) -> list[dict[int, Tensor]]:
        """Per key, the rows of its Gaussians by copy (-1: shown by every copy; always present), each in
        ascending row order. Cached until ``prim`` or ``copy`` change (replaced, or written in place: the
        tensors' version counters are part of the cache key); every training step's pushforward reads it."""
        prim, copy = self.prim, self.copy
        cached = self.__dict__.get("_members_cache")  # (prim, its version, copy, its version, members)
        if (cached is not None and cached[0] is prim and cached[1] == prim._version and cached[2] is copy
                and cached[3] == copy._version):
            return cached[4]
        out = self._group_members()
        self.__dict__["_members_cache"] = (prim, prim._version, copy, copy._version, out)
        return out

    def _group_members(self) -> list[dict[int, Tensor]]:
        n_keys = len(self.keys)
        order = torch.argsort(self.prim, stable=True)
        per_key = torch.split(order, torch.bincount(self.prim, minlength=n_keys).tolist())
        out: list[dict[int, Tensor]] = []
        owned = bool((self.copy >= 0).any())
        for rows in per_key:
            if not owned:
                out.append({-1: rows})
                continue
            cp = self.copy[rows]
            groups = {-1: rows[cp < 0]}
            for c in torch.unique(cp[cp >= 0]).tolist():
                groups[int(c)] = rows[cp == c]
            out.append(groups)
        return out

    # --- checkpoints ---------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Plain dict for checkpoints: params, prim, copy, key ids, sh degree."""
        return {
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "prim": self.prim.clone(),
            "copy": self.copy.clone(),
            "key_ids": list(self.key_ids),
            "sh_degree": self.sh_degree,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], keys: Sequence[Any]) -> "ProceduralGaussians":
        """Rebuild from :meth:`state` with the program's keys (matched by :func:`key_id`)."""
        by_id = {key_id(k): k for k in keys}
        missing = [i for i in state["key_ids"] if i not in by_id]
        if missing:
            raise ValueError(f"checkpoint primitives {missing} are not in the program")
        return cls([by_id[i] for i in state["key_ids"]], state["params"], state["prim"], state["sh_degree"],
                   state.get("copy"))  # checkpoints written before copy-owned Gaussians: every copy


def copy_numbers(parts: Sequence[Any]) -> list[int]:
    """For each part, which copy of its primitive it is: 0, 1, ... among the parts with its key, in order
    (the numbering of ``ProceduralGaussians.copy`` and ``WorldGaussians.copy``)."""
    seen: dict[Any, int] = {}
    out = []
    for part in parts:
        out.append(seen.get(part.key, 0))
        seen[part.key] = out[-1] + 1
    return out


def _fused_available(x: Tensor) -> bool:
    """Whether :meth:`ProceduralGaussians.pushforward` takes the fused C++ path for parameters like ``x``:
    float32/float64 CPU tensors, with the extension built (else the torch code, on any device)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and projection_available()


def _copy_index(copy: Tensor | None, prim: Tensor) -> Tensor:
    """``copy`` as a long tensor beside ``prim`` (None: all -1, every copy shows every Gaussian)."""
    if copy is None:
        return torch.full_like(prim, -1)
    copy = copy.detach().clone().long().to(prim.device)
    if copy.shape != prim.shape:
        raise ValueError(f"copy has shape {list(copy.shape)}, prim {list(prim.shape)}")
    return copy
