"""An edit session: a run's asset, the parameter values being edited, and the world Gaussians they give.

Every edit re-evaluates the shape program (batch of one) and pushes the procedural Gaussians through the
new part transforms (:meth:`splat.gaussians.ProceduralGaussians.pushforward`), as ``render.py --set``
does. A structure edit that activates primitives the run never trained Gaussians for covers them as
:meth:`splat.export.EditableAsset.with_params` does (:func:`splat.export.asset.cover_new_primitives`); the
covering Gaussians are kept for the rest of the session, so switching back and forth costs one covering.

Convention: :class:`SplatFrame` holds what the browser draws, numpy float32 in the world of the scene
(+Z up, metres): the DC colour only (viser's splat renderer has no view-dependent colour), the opacity
after the sigmoid. Gaussians come part by part in the geometry's part order, so with the same discrete
values two frames list the same Gaussians in the same order.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Mapping, NamedTuple

import numpy as np
import torch

from splat.errors import SplatError
from splat.export.asset import EditableAsset, cover_new_primitives, plain_params
from splat.maths import sh_dc_to_rgb
from splat.viewer.controls import MAX_CHECKED_VALUES


class SplatFrame(NamedTuple):
    """World Gaussians of one set of parameter values, ready for the browser."""

    centers: np.ndarray  # [N, 3] float32, world
    covariances: np.ndarray  # [N, 3, 3] float32, world
    rgbs: np.ndarray  # [N, 3] float32 in [0, 1] (DC colour)
    opacities: np.ndarray  # [N, 1] float32 in (0, 1)
    key: np.ndarray  # [N] int64: index into EditSession.keys of the primitive each belongs to
    part: np.ndarray  # [N] int64: index into the geometry's parts of the copy each belongs to


class EditSession:
    """The state of one editor: fitted asset, current values, current Gaussians.

    Attributes:
        fitted: the asset as loaded (fitted values).
        params: the current values, name -> python scalar (all parameters).
        frame: the :class:`SplatFrame` of ``params``.
        geometry: the program's Geometry at ``params``, placed in the world (B = 1).
        seconds: wall time of the last :meth:`update` (evaluation + pushforward + conversion).
        covered: whether the last update had to place Gaussians on untrained primitives.
    """

    def __init__(self, asset: EditableAsset):
        self.fitted = asset
        self._gaussians = asset.gaussians
        self.params: dict[str, Any] = dict(asset.params)
        self.seconds = 0.0
        self.covered = False
        self.update({})

    @property
    def space(self) -> Any:
        return self.fitted.program.space

    @property
    def keys(self) -> tuple:
        """The primitive keys of the session's Gaussians (grows when primitives get covered)."""
        return self._gaussians.keys

    @property
    def asset(self) -> EditableAsset:
        """The asset at the current values, with every Gaussian placed so far."""
        return replace(self.fitted, params=dict(self.params), gaussians=self._gaussians)

    def active(self) -> dict[str, bool]:
        """Which parameters are active (their ``requires`` met) at the current values."""
        return self.space.active(self.params)

    def update(self, edits: Mapping[str, Any]) -> SplatFrame:
        """Set some parameters (validated: SplatError naming a bad one; nothing changes then) and return
        the new frame."""
        t0 = time.perf_counter()
        values = plain_params(self.space.validate({**self.params, **edits}), self.space)
        asset = replace(self.fitted, params=values, gaussians=self._gaussians)
        g = self._gaussians
        ref = next(iter(g.params.values()))
        geo = asset.geometry(dtype=ref.dtype, device=ref.device)
        self.covered = bool(_uncovered(geo, g))
        if self.covered:
            g = cover_new_primitives(asset).gaussians
        with torch.no_grad():
            w = g.pushforward(geo, 0)
            rgb = sh_dc_to_rgb(w.sh[:, 0]).clamp(0.0, 1.0)
        frame = SplatFrame(
            centers=w.means.float().cpu().numpy(),
            covariances=w.covars.float().cpu().numpy(),
            rgbs=rgb.float().cpu().numpy(),
            opacities=w.opacities.float().cpu().numpy()[:, None],
            key=g.prim[w.source].cpu().numpy(),
            part=w.part.cpu().numpy(),
        )
        self._gaussians, self.params, self.geometry, self.frame = g, values, geo, frame
        self.seconds = time.perf_counter() - t0
        return frame

    def reset(self) -> SplatFrame:
        """Back to the fitted values."""
        return self.update(dict(self.fitted.params))

    def random_values(self, generator: torch.Generator) -> dict[str, Any]:
        """A random variant: one sample of the ParamSpace (every parameter uniform over its range)."""
        return self.space.unbatch(self.space.sample(1, generator))[0]

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """The program's active geometry at the current values: vertices [V, 3] float32 (world) and
        triangles [F, 3] int32."""
        mesh = self.geometry.realize()
        faces = mesh.faces[mesh.face_active[0]]
        return mesh.verts[0].detach().float().cpu().numpy(), faces.cpu().numpy().astype(np.int32)


def _uncovered(geometry: Any, gaussians: Any) -> list:
    """Keys of active parts with a surface whose primitive owns no Gaussians."""
    counts = torch.bincount(gaussians.prim, minlength=len(gaussians.keys)).tolist()
    owned = {k for k, c in zip(gaussians.keys, counts) if c > 0}
    out = []
    for part in geometry.parts:
        if part.key not in owned and part.key not in out and bool(part.active[0]) and part.canonical.faces.numel():
            out.append(part.key)
    return out


def untrained_values(asset: EditableAsset, *, max_values: int = MAX_CHECKED_VALUES) -> dict[str, tuple | None]:
    """For each int / bool parameter, the values whose edit (alone, from ``asset.params``) activates
    primitives the asset has no Gaussians for: those edits are covered, not live-fitted.

    One batched evaluation per parameter (all its values at once). None for an int with more than
    ``max_values`` values (not checked).
    """
    space = asset.program.space
    g = asset.gaussians
    counts = torch.bincount(g.prim, minlength=len(g.keys)).tolist()
    owned = {k for k, c in zip(g.keys, counts) if c > 0}
    out: dict[str, tuple | None] = {}
    for p in space.params:
        if p.type == "float":
            continue
        values = [False, True] if p.type == "bool" else list(range(int(p.low), int(p.high) + 1))
        if len(values) > max_values:
            out[p.name] = None
            continue
        try:
            geo = asset.program.evaluate([{**asset.params, p.name: v} for v in values], dtype=torch.float64)
        except SplatError:
            out[p.name] = None
            continue
        missing = torch.zeros(len(values), dtype=torch.bool)
        for part in geo.parts:
            if part.key not in owned and part.canonical.faces.numel():
                missing |= part.active.cpu()
        out[p.name] = tuple(v for v, m in zip(values, missing.tolist()) if m)
    return out
