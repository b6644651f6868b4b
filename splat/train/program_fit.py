"""The program's trainable state during joint training: continuous parameters and placement.

Convention: float parameters are optimised in normalised units ``u = (x - low) / (high - low)`` and
clamped to [0, 1] after each step; int/bool parameters (the discrete structure found by the search)
are fixed. The placement maps the program's frame to the world (see :mod:`splat.export.asset`):
``P = T(translation) @ Rz(yaw) @ diag(exp(log_scale))`` and world geometry is ``P @ part.transform``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from splat.maths import decompose_placement, placement_matrix


class ProgramFit(nn.Module):
    """Continuous parameters (normalised) + fixed discrete parameters + placement of one program.

    Args:
        program: a :class:`splat.program.ShapeProgram`.
        assignment: a full parameter assignment (name -> python scalar), e.g. the search's winner.
        placement: [4, 4] world <- program frame (translation, yaw about +Z, uniform scale).
        dtype: dtype of the evaluated geometry.
    """

    def __init__(self, program: Any, assignment: Mapping[str, Any], placement: Tensor,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.program = program
        self.dtype = dtype
        floats = [p for p in program.space.params if p.type == "float"]
        self.float_names = tuple(p.name for p in floats)
        self.register_buffer("low", torch.tensor([float(p.low) for p in floats], dtype=torch.float64))
        self.register_buffer("high", torch.tensor([float(p.high) for p in floats], dtype=torch.float64))
        x = torch.tensor([float(assignment[n]) for n in self.float_names], dtype=torch.float64)
        span = (self.high - self.low).clamp_min(1e-12)
        self.u = nn.Parameter(((x - self.low) / span).clamp(0, 1).to(dtype))
        self.discrete = {p.name: (bool(assignment[p.name]) if p.type == "bool" else int(assignment[p.name]))
                         for p in program.space.params if p.type != "float"}
        t, yaw, log_s = decompose_placement(torch.as_tensor(placement))
        self.translation = nn.Parameter(t.to(dtype))
        self.yaw = nn.Parameter(yaw.to(dtype))
        self.log_scale = nn.Parameter(log_s.to(dtype))

    def program_parameters(self) -> list[nn.Parameter]:
        return [self.u]

    def placement_parameters(self) -> list[nn.Parameter]:
        return [self.translation, self.yaw, self.log_scale]

    @torch.no_grad()
    def clamp_(self) -> None:
        self.u.clamp_(0.0, 1.0)

    def float_values(self) -> Tensor:
        """[n_float] parameter values in their own units (differentiable in ``u``)."""
        return self.low.to(self.dtype) + self.u * (self.high - self.low).to(self.dtype)

    def inputs(self) -> dict[str, Tensor]:
        """Batched (B = 1) program inputs: floats differentiable, discrete fixed."""
        vals = self.float_values()
        out = {n: vals[i : i + 1] for i, n in enumerate(self.float_names)}
        for n, v in self.discrete.items():
            out[n] = torch.tensor([v], dtype=torch.bool if isinstance(v, bool) else torch.long)
        return out

    def assignment(self) -> dict[str, Any]:
        """Current values as python scalars (name -> float/int/bool)."""
        vals = self.float_values().detach().double().tolist()
        out: dict[str, Any] = dict(zip(self.float_names, vals))
        out.update(self.discrete)
        return out

    def placement(self) -> Tensor:
        """[4, 4] world <- program frame (differentiable)."""
        return placement_matrix(self.translation, self.yaw, self.log_scale)

    def geometry(self) -> Any:
        """World :class:`splat.geonodes.Geometry` (B = 1) at the current parameters and placement."""
        geo = self.program.evaluate(self.inputs(), dtype=self.dtype, validate=False)
        return geo.transformed(self.placement()[None])

    def state(self) -> dict[str, Any]:
        return {"u": self.u.detach().clone(), "translation": self.translation.detach().clone(),
                "yaw": self.yaw.detach().clone(), "log_scale": self.log_scale.detach().clone(),
                "discrete": dict(self.discrete), "float_names": list(self.float_names)}

    @torch.no_grad()
    def load_state(self, state: Mapping[str, Any]) -> None:
        if list(state["float_names"]) != list(self.float_names):
            raise ValueError("checkpoint parameters do not match the program")
        self.u.copy_(state["u"])
        self.translation.copy_(state["translation"])
        self.yaw.copy_(state["yaw"])
        self.log_scale.copy_(state["log_scale"])
        self.discrete = dict(state["discrete"])
