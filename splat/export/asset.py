"""The editable asset of a trained run: program + fitted parameters + procedural Gaussians.

Files (all written atomically by :func:`write_assets`, read back by :func:`load_asset`)::

    assets/program.json    the shape program, single-file form (ShapeProgram.save: graph + ParamSpace);
                           re-evaluates without bpy
    assets/params.json     {"format": "splat.fitted/1", "program": name, "params": {name: value},
                            "placement": [[4x4]] world <- program frame (row-major)}
    assets/gaussians.pt    ProceduralGaussians.state() (canonical Gaussians bound to primitive keys;
                           torch.load(weights_only=True)); what makes the splats editable
    assets/splats.ply      world Gaussians at the fitted parameters, Inria 3DGS layout (viewers)

Convention: ``placement`` maps the program's own frame (where ``ShapeProgram.evaluate`` puts the
geometry; Blender's object-local space) to the world of the scene (+Z up, metres). World geometry is
``placement @ part.transform``; the Gaussians follow through the same pushforward (see
:mod:`splat.gaussians.model`). Parameter values are plain JSON scalars (float / int / bool).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch

from splat.errors import SplatError
from splat.export.ply import SplatCloud, splats_from_world, write_splats_ply
from splat.io import atomic_path, read_json, write_json_atomic
from splat.maths import sh_dc_to_rgb

if TYPE_CHECKING:
    from splat.gaussians import ProceduralGaussians
    from splat.params import ParamSpace
    from splat.program import ShapeProgram


PARAMS_FORMAT = "splat.fitted/1"
PROGRAM_FILE = "program.json"
PARAMS_FILE = "params.json"
GAUSSIANS_FILE = "gaussians.pt"
SPLATS_FILE = "splats.ply"


def _plain(value: Any) -> Any:
    """A parameter value as a JSON scalar (tensors / numpy scalars -> python)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.numel() != 1:
            raise ValueError(f"parameter value must be a scalar, got shape {list(value.shape)}")
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def plain_params(params: Mapping[str, Any], space: "ParamSpace | None" = None) -> dict[str, Any]:
    """Values as JSON scalars, typed by the ParamSpace when given (ints stay ints, bools bools)."""
    out = {k: _plain(v) for k, v in params.items()}
    if space is not None:
        for p in space.params:
            if p.name in out and not isinstance(out[p.name], list):
                v = out[p.name]
                out[p.name] = bool(v) if p.type == "bool" else int(round(v)) if p.type == "int" else float(v)
    return out


def snap_to_range(params: Mapping[str, Any], space: "ParamSpace", *, rel_tol: float = 1e-5) -> dict[str, Any]:
    """Float values outside their range by float rounding only (``|excess| <= rel_tol * (high - low)``,
    e.g. a float32 ``low + 1.0 * (high - low)``) are put back on the bound; others are left for
    validation to reject."""
    out = dict(params)
    for p in space.params:
        v = out.get(p.name)
        if p.type != "float" or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        tol = rel_tol * max(float(p.high) - float(p.low), 1e-12)
        if float(p.high) < v <= float(p.high) + tol:
            out[p.name] = float(p.high)
        elif float(p.low) - tol <= v < float(p.low):
            out[p.name] = float(p.low)
    return out


@dataclass(frozen=True, eq=False)
class EditableAsset:
    """A program with fitted parameters and the Gaussians bound to its primitives.

    Attributes:
        program: the :class:`splat.program.ShapeProgram`.
        params: fitted (or edited) parameter values, name -> python scalar, every space parameter set.
        gaussians: the :class:`splat.gaussians.ProceduralGaussians` (canonical, shared by copies).
        placement: [4, 4] float64, world <- program frame.
        root: the run folder (or assets folder) it was loaded from, if any.
        scene: the scene the run was trained on (name or path from config.json), if known.
    """

    program: "ShapeProgram"
    params: Mapping[str, Any]
    gaussians: "ProceduralGaussians"
    placement: np.ndarray  # [4, 4]
    root: Path | None = None
    scene: str | None = None

    def with_params(self, edits: Mapping[str, Any], *, cover_new: bool = True) -> "EditableAsset":
        """A copy with some parameters changed (validated against the ParamSpace).

        An edit of the structure can bring in primitives the run never trained Gaussians for (round legs
        on a chair fitted with square ones). With ``cover_new`` those get fresh Gaussians on their
        surface (:func:`cover_new_primitives`), so they are visible; otherwise they render empty.
        """
        merged = {**self.params, **edits}
        valid = self.program.space.validate(merged, file=None)
        out = replace(self, params=plain_params(valid, self.program.space))
        return cover_new_primitives(out) if cover_new else out

    def geometry(self, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        """The program evaluated at ``params`` (B = 1) and moved by ``placement``: a Geometry."""
        geo = self.program.evaluate(dict(self.params), dtype=dtype, device=device)
        m = torch.as_tensor(self.placement, dtype=dtype, device=device)[None]
        return geo.transformed(m)

    def world_gaussians(self):
        """World Gaussians (:class:`splat.gaussians.WorldGaussians`) at ``params``, without gradients,
        in the Gaussians' own dtype and device."""
        ref = next(iter(self.gaussians.params.values()))
        with torch.no_grad():
            return self.gaussians.pushforward(self.geometry(dtype=ref.dtype, device=ref.device), 0)

    def splat_cloud(self) -> SplatCloud:
        """The world Gaussians at ``params`` in 3DGS PLY form."""
        w = self.world_gaussians()
        return splats_from_world(w.means, w.covars.double(), w.opacities, w.sh)


def uncovered_keys(asset: EditableAsset) -> list:
    """Primitive keys with a surface, active at ``asset.params``, that own no Gaussians."""
    owned = set(asset.gaussians.keys)
    counts = torch.bincount(asset.gaussians.prim, minlength=len(asset.gaussians.keys))
    empty = {k for k, c in zip(asset.gaussians.keys, counts.tolist()) if c == 0}
    out = []
    for part in asset.geometry().parts:
        if part.canonical.faces.numel() and bool(part.active[0]) and (part.key not in owned or part.key in empty):
            if part.key not in out:
                out.append(part.key)
    return out


def cover_new_primitives(asset: EditableAsset, *, seed: int = 0) -> EditableAsset:
    """Put Gaussians on the active primitives that have none (see :meth:`EditableAsset.with_params`).

    Convention: they are placed by :func:`splat.gaussians.init_gaussians` (area-weighted, flat along the
    face normal) at the density of the existing Gaussians (count per world area), in one constant colour:
    the opacity-weighted mean DC colour of the Gaussians of the same node tree (the square legs' colour
    for round legs), else of all Gaussians. Deterministic (``seed``). Returns ``asset`` unchanged when
    nothing is missing.
    """
    from splat.gaussians import InitSettings, ProceduralGaussians, init_gaussians
    from splat.geonodes import Geometry

    missing = uncovered_keys(asset)
    if not missing:
        return asset
    g = asset.gaussians
    ref = next(iter(g.params.values()))
    geo = asset.geometry(dtype=torch.float64)
    parts = tuple(p for p in geo.parts if p.key in missing)

    def area(ps) -> float:
        total = 0.0
        for p in ps:
            if not bool(p.active[0]):
                continue
            tri = p.world_verts()[0].detach()[p.canonical.faces]
            total += float(0.5 * torch.linalg.vector_norm(
                torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1), dim=-1).sum())
        return total

    owned_parts = [p for p in geo.parts if p.key in set(g.keys)]
    density = len(g) / max(area(owned_parts), 1e-9)
    num = int(min(max(64, density * area(parts)), max(64, len(g))))
    rgb = sh_dc_to_rgb(g.params["sh0"].detach()[:, 0].double()).clamp(0, 1)
    w = torch.sigmoid(g.params["opacity_logits"].detach().double())
    trees = {k.tree for k in missing}
    same = torch.tensor([g.keys[int(i)].tree in trees for i in g.prim], dtype=torch.bool)
    sel = same if bool(same.any()) else torch.ones_like(same)
    color = tuple(float(c) for c in (rgb[sel] * w[sel, None]).sum(0) / w[sel].sum().clamp_min(1e-12)) if len(g) else (0.5, 0.5, 0.5)
    new = init_gaussians(Geometry(1, parts), InitSettings(num_init=num, sh_degree=g.sh_degree, color_mode="constant",
                                                          constant_color=color), torch.Generator().manual_seed(seed),
                         dtype=ref.dtype)
    keys = list(g.keys) + [k for k in new.keys if k not in g.keys]
    index = {k: i for i, k in enumerate(keys)}
    prim = torch.cat([g.prim.cpu(), torch.tensor([index[new.keys[int(i)]] for i in new.prim], dtype=torch.long)])
    params = {}
    for name, p in g.params.items():
        q = new.params.get(name)
        if q is None:  # per-copy residuals: zeros for the new Gaussians
            q = torch.zeros((len(new),) + tuple(p.shape[1:]), dtype=p.dtype)
        params[name] = torch.cat([p.detach(), q.to(device=p.device, dtype=p.dtype)])
    merged = ProceduralGaussians(keys, params, prim.to(ref.device), g.sh_degree,
                                 torch.cat([g.copy, new.copy.to(g.copy.device)]))
    return replace(asset, gaussians=merged)


def check_placement(value: Any, *, file: Any = None) -> np.ndarray:
    """Check a 4x4 affine placement (list of lists) -> float64 [4, 4]."""
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SplatError("must be a 4x4 list of numbers", file=file, field="placement") from None
    if m.shape != (4, 4) or not np.isfinite(m).all() or not np.allclose(m[3], [0, 0, 0, 1]):
        raise SplatError("must be a finite 4x4 affine matrix (last row 0 0 0 1)", file=file, field="placement")
    if abs(np.linalg.det(m[:3, :3])) < 1e-12:
        raise SplatError("is singular", file=file, field="placement")
    return m


def write_params_json(path: str | os.PathLike, program: "ShapeProgram", params: Mapping[str, Any],
                      placement: np.ndarray | None = None) -> None:
    """Write ``params.json`` (format ``splat.fitted/1``) atomically."""
    pl = np.eye(4) if placement is None else np.asarray(placement, dtype=np.float64)
    write_json_atomic(path, {
        "format": PARAMS_FORMAT,
        "program": getattr(program, "name", None),
        "params": plain_params(params, program.space),
        "placement": pl.tolist(),
    })


def read_params_json(path: str | os.PathLike, space: "ParamSpace | None" = None) -> tuple[dict[str, Any], np.ndarray]:
    """Read ``params.json`` -> (params, placement [4, 4]). Accepts a bare ``{name: value}`` object too
    (placement = identity). With ``space``, values are validated (SplatError naming the parameter)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise SplatError("top level must be a JSON object", file=path)
    if "format" in data:
        if data["format"] != PARAMS_FORMAT:
            raise SplatError(f"unknown format {data['format']!r}; expected {PARAMS_FORMAT!r}", file=path, field="format")
        params = data.get("params")
        if not isinstance(params, dict):
            raise SplatError("must be an object mapping parameter names to values", file=path, field="params")
        placement = check_placement(data.get("placement", np.eye(4).tolist()), file=path)
    else:
        params, placement = data, np.eye(4)
    if space is not None:
        params = plain_params(space.validate(snap_to_range(params, space), file=path), space)
    return dict(params), placement


def write_assets(assets_dir: str | os.PathLike, program: "ShapeProgram", params: Mapping[str, Any],
                 gaussians: "ProceduralGaussians",
                 placement: np.ndarray | Any | None = None) -> EditableAsset:
    """Write program.json, params.json, gaussians.pt and splats.ply into ``assets_dir`` (atomically).

    Args:
        program: the ShapeProgram.
        params: fitted values (python scalars or 1-element tensors), name -> value.
        gaussians: the trained ProceduralGaussians.
        placement: [4, 4] world <- program frame (tensor or array), or None for identity.
    Returns the :class:`EditableAsset` it wrote (its ``splat_cloud()`` is what splats.ply holds).
    """
    d = Path(assets_dir)
    d.mkdir(parents=True, exist_ok=True)
    pl = np.eye(4) if placement is None else (
        placement.detach().cpu().double().numpy() if isinstance(placement, torch.Tensor) else np.asarray(placement, np.float64))
    pl = pl.reshape(4, 4)
    values = plain_params(program.space.validate(snap_to_range(plain_params(params), program.space), file=None),
                          program.space)
    asset = EditableAsset(program, values, gaussians, pl, root=d)
    with atomic_path(d / PROGRAM_FILE) as tmp:
        program.save(tmp)
    write_params_json(d / PARAMS_FILE, program, values, pl)
    state = dict(gaussians.state())
    state["keys"] = [key_to_list(k) for k in gaussians.keys]
    with atomic_path(d / GAUSSIANS_FILE) as tmp:
        torch.save(state, tmp)
    write_splats_ply(d / SPLATS_FILE, asset.splat_cloud())
    return asset


def key_to_list(key: Any) -> list:
    """A PrimitiveKey as plain data ``[tree, node, kind, [topology...]]`` (weights_only-loadable)."""
    return [key.tree, key.node, key.kind, list(key.topology)]


def state_keys(state: Mapping[str, Any], program: "ShapeProgram") -> list:
    """The PrimitiveKeys of a ProceduralGaussians state: from its ``keys`` entry (written by
    :func:`write_assets`), else parsed from its ``key_ids`` (``tree/node/kind/t0,t1,...``, see
    :func:`splat.gaussians.key_id`) against the program's tree names."""
    from splat.geonodes.primitives import PrimitiveKey

    if "keys" in state:
        return [PrimitiveKey(str(t), str(n), str(k), tuple(topo)) for t, n, k, topo in state["keys"]]
    trees = sorted(program.graph.trees, key=len, reverse=True) if hasattr(program.graph, "trees") else []
    keys = []
    for kid in state["key_ids"]:
        head, kind, topo = kid.rsplit("/", 2)
        tree = next((t for t in trees if head.startswith(t + "/")), None)
        if tree is None:
            tree, node = head.split("/", 1)
        else:
            node = head[len(tree) + 1:]
        keys.append(PrimitiveKey(tree, node, kind, tuple(_topo_item(x) for x in topo.split(",") if x != "")))
    return keys


def _topo_item(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text)
    except ValueError:
        return text


def find_assets_dir(path: str | os.PathLike) -> Path:
    """``path`` if it holds program.json, else ``path/assets``; SplatError if neither does."""
    p = Path(path)
    if not p.exists():
        raise SplatError("no such run folder or assets folder", file=p)
    if p.is_file():
        p = p.parent
    for cand in (p, p / "assets"):
        if (cand / PROGRAM_FILE).is_file():
            return cand
    raise SplatError(f"neither this folder nor its assets/ holds {PROGRAM_FILE} (is this a finished run?)", file=p)


def load_asset(path: str | os.PathLike, *, device: torch.device | str = "cpu") -> EditableAsset:
    """Load a run folder (``outputs/<scene>/<run>``) or its ``assets/`` folder as an EditableAsset.

    The Gaussians come from ``assets/gaussians.pt``; the scene name from the run's ``config.json``
    when present. Every problem is a SplatError naming the file. (A run folder without assets, read
    from its checkpoint, and every other way to name a run: :func:`splat.workspace.load_run`.)
    """
    from splat.gaussians import ProceduralGaussians
    from splat.program import ShapeProgram

    assets = find_assets_dir(path)
    program = ShapeProgram.load(assets / PROGRAM_FILE)
    params, placement = read_params_json(assets / PARAMS_FILE, program.space)
    gpath = assets / GAUSSIANS_FILE
    if not gpath.is_file():
        raise SplatError(f"missing {GAUSSIANS_FILE}: the run's Gaussians (bound to the program's "
                         "primitives) are needed to render and edit", file=gpath)
    try:
        state = torch.load(gpath, map_location=device, weights_only=True)
    except Exception as err:
        raise SplatError(f"cannot read ({type(err).__name__}: {err})", file=gpath) from None
    try:
        keys = state_keys(state, program)
        gaussians = ProceduralGaussians.from_state(state, keys)
    except (ValueError, KeyError, TypeError) as err:
        raise SplatError(f"Gaussians do not match the program ({err})", file=gpath) from None
    root = assets.parent if assets.name == "assets" else assets
    scene = None
    cfg = root / "config.json"
    if cfg.is_file():
        try:
            scene = read_json(cfg).get("scene")
        except (SplatError, AttributeError):
            scene = None
    return EditableAsset(program, params, gaussians, placement, root=root, scene=scene)
