"""ShapeProgram: a geometry-node graph plus the ParamSpace of its inputs.

Convention: ``evaluate`` takes a batch of parameter sets (dict name -> [B] tensor, python scalars for
B = 1, or a list of dicts) and returns a :class:`splat.geonodes.Geometry` batched over B. Float
parameters keep autograd. Main-tree interface inputs that the space does not name take the interface
default. Loading needs no bpy.

On disk a program is a directory holding ``graph.json`` (``splat.geonodes/1``) and ``params.json``
(``splat.params/1``), a single ``splat.program/1`` file ``{"format", "name", "graph", "params"}``, or a
bare graph (its space then comes from the interface's min/max/defaults). The library of shipped programs
is package data in ``splat/programs/<name>/``.

:class:`ProgramFit` is a program's trainable state during fitting: float parameters optimised in
normalised units ``u = (x - low) / (high - low)`` (clamped to [0, 1] after each step), int/bool
parameters (the discrete structure) fixed, and the placement (world <- program frame,
``T(translation) Rz(yaw) diag(exp(log_scale))``, :func:`splat.maths.placement_matrix`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from splat.errors import SplatError
from splat.geonodes import Geometry, Graph, load_graph
from splat.geonodes.evaluator import evaluate_graph
from splat.io import read_json, write_json_atomic
from splat.maths import decompose_placement, placement_matrix
from splat.params import ParamSpace

FORMAT = "splat.program/1"
PROGRAMS_DIR = Path(__file__).resolve().parent / "programs"
"""The shipped program library (package data): ``<name>/graph.json`` + ``<name>/params.json``."""
_SOCKET_FOR = {"float": "FLOAT", "int": "INT", "bool": "BOOLEAN"}


@dataclass(frozen=True)
class ShapeProgram:
    graph: Graph
    space: ParamSpace
    name: str = "program"
    source: str | None = None

    def __post_init__(self):
        iface = {s.name: s for s in self.graph.interface}
        for p in self.space:
            if p.name not in iface:
                raise SplatError(f"parameter {p.name!r} is not an input of the main tree {self.graph.main!r}",
                                 file=self.source, field=p.name)
            if iface[p.name].type != _SOCKET_FOR[p.type]:
                raise SplatError(f"parameter {p.name!r} is {p.type} but the graph input is {iface[p.name].type}",
                                 file=self.source, field=p.name)

    # ---- loading and saving -------------------------------------------------------------------------

    @staticmethod
    def load(path: str | os.PathLike) -> "ShapeProgram":
        path = Path(path)
        if path.is_dir():
            graph_path, params_path = path / "graph.json", path / "params.json"
            if not graph_path.exists():
                raise SplatError("program directory has no graph.json", file=path)
            return ShapeProgram.from_files(graph_path, params_path if params_path.exists() else None, name=path.name)
        obj = read_json(path)
        if isinstance(obj, dict) and obj.get("format") == FORMAT:
            return ShapeProgram.from_dict(obj, file=path)
        graph = load_graph(obj, file=path)
        return ShapeProgram(graph, ParamSpace.from_interface(graph), name=path.stem, source=str(path))

    @staticmethod
    def from_files(graph_path: str | os.PathLike, params_path: str | os.PathLike | None = None, *,
                   name: str | None = None) -> "ShapeProgram":
        """A graph JSON plus an optional parameter-space JSON (ours or a third-party ``sp_*.json``)."""
        graph = load_graph(graph_path)
        space = ParamSpace.from_interface(graph) if params_path is None else ParamSpace.load(params_path)
        return ShapeProgram(graph, space, name=name or Path(graph_path).stem,
                            source=str(params_path if params_path is not None else graph_path))

    @staticmethod
    def from_dict(obj: Mapping[str, Any], *, file: str | os.PathLike | None = None) -> "ShapeProgram":
        if not isinstance(obj, Mapping) or obj.get("format") != FORMAT:
            raise SplatError(f"expected format {FORMAT!r}", file=file, field="format")
        graph = load_graph(obj.get("graph"), file=file)
        space = ParamSpace.from_dict(obj["params"], file=file) if "params" in obj else ParamSpace.from_interface(graph)
        name = obj.get("name", "program")
        if not isinstance(name, str):
            raise SplatError("expected a string", file=file, field="name")
        return ShapeProgram(graph, space, name=name, source=None if file is None else str(file))

    def to_dict(self) -> dict:
        return {"format": FORMAT, "name": self.name, "graph": self.graph.to_dict(), "params": self.space.to_dict()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the single-file ``splat.program/1`` form atomically."""
        write_json_atomic(path, self.to_dict())

    # ---- evaluation ---------------------------------------------------------------------------------

    def batch(self, params: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu", validate: bool = True) -> tuple[dict[str, Tensor], int]:
        """Parameters as a full batch dict (defaults filled) and its size B."""
        if isinstance(params, Sequence) and not isinstance(params, (str, bytes)):
            if len(params) == 0:
                raise SplatError("empty list of parameter sets", file=self.source)
            b = self.space.to_batch(params, dtype=dtype, device=device, file=self.source)
            return b, len(params)
        if not isinstance(params, Mapping):
            raise SplatError("expected a dict of parameters or a list of dicts", file=self.source)
        tensors = {}
        B = None
        for k, v in params.items():
            if k not in self.space:
                raise SplatError(f"unknown parameter {k!r} (known: {', '.join(self.space.names)})",
                                 file=self.source, field=str(k))
            if isinstance(v, Tensor):
                if v.dim() == 0:
                    v = v.reshape(1)
                if B is None or B == 1:
                    B = v.shape[0] if v.dim() == 1 else B
                tensors[k] = v
        B = B or 1
        out = {}
        for p in self.space:
            v = params.get(p.name, p.default)
            if not isinstance(v, Tensor):
                if validate:
                    v = self.space.validate({p.name: v}, file=self.source)[p.name]
                v = torch.tensor([v] * B, dtype={"float": dtype, "int": torch.long, "bool": torch.bool}[p.type],
                                 device=device)
            elif v.dim() == 1 and v.shape[0] == 1 and B > 1:
                v = v.expand(B)
            if p.type == "float" and v.is_floating_point() and v.dtype != dtype:
                v = v.to(dtype)
            elif p.type == "int" and not v.is_floating_point() and v.dtype != torch.long:
                v = v.long()
            out[p.name] = v
        if validate:
            self.space.validate_batch(out, file=self.source)
        return out, B

    def evaluate(self, params: Mapping[str, Any] | Sequence[Mapping[str, Any]], *,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 validate: bool = True) -> Geometry:
        """Evaluate a batch of parameter sets; see the module docstring.

        Raises:
            SplatError: unknown parameter names, values out of range or of the wrong type (when
                ``validate``), mismatched batch sizes.
        """
        batch, B = self.batch(params, dtype=dtype, device=device, validate=validate)
        for k, v in batch.items():
            if v.dim() != 1 or v.shape[0] != B:
                raise SplatError(f"expected shape [{B}], got {list(v.shape)}", file=self.source, field=k)
        return evaluate_graph(self.graph, batch, batch_size=B, dtype=dtype, device=device)

    def defaults(self) -> dict[str, Any]:
        return self.space.defaults()


def available_programs() -> tuple[str, ...]:
    if not PROGRAMS_DIR.is_dir():
        return ()
    return tuple(sorted(p.name for p in PROGRAMS_DIR.iterdir() if (p / "graph.json").exists()))


def load_program(name_or_path: str | os.PathLike) -> ShapeProgram:
    """Load a library program (``splat/programs/<name>``: chair, table, cabinet, bookshelf) or a path."""
    p = Path(name_or_path)
    if p.exists():
        return ShapeProgram.load(p)
    if isinstance(name_or_path, str) and (PROGRAMS_DIR / name_or_path).is_dir():
        return ShapeProgram.load(PROGRAMS_DIR / name_or_path)
    raise SplatError(f"no program {str(name_or_path)!r} (a path, or one of: {', '.join(available_programs())})",
                     field="program")


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
