"""Facade check: the photos lay out a program's front, which a depth scan cannot read.

A drawer pedestal's depth scan is a box: its fronts are flush and its handles stand out by a centimetre
or two, about a Kinect's noise, so the structure search returns whatever layout its population held
(one drawer, six: every count fits the box). The photos show the layout plainly: handles are blobs and
the gaps between fronts are lines, on a face that many train views see.

A library program declares which parameters lay out its front (``"facade"`` in its params.json,
:func:`splat.library.facade_params`; the front is the program's -Y face, where the library puts drawers
and doors). The check then:

1. builds the observed facade: a grid of ``cell`` metres on the front plane of the winner (the density
   peak of its mesh's points along -Y, :func:`splat.metrics.face_position`: the fronts, not the handles),
   each cell the median, over the train views that face the front (``min_cos``), of the grey value the
   cell projects to, where the view's sensor depth says the cell is visible and its mask holds it, each
   view divided by its own median over the face (auto-exposure); its features are
   ``max(blur(facade, feature_sigma) - facade, 0)``: whatever is darker than the surface around it (the
   shadows in gaps and under handles);
2. predicts each candidate's features from its geometry: the candidate (the winner with the declared
   parameters changed: integers and booleans over their ranges, floats on ``float_steps`` values) seen
   orthographically from the front, a feature wherever the relief steps by more than ``step`` (the
   outline of every front, handle and gap), blurred by ``predict_sigma``, plus what stands out of the
   front plane by more than ``step`` (handles) as blobs (``blob_sigma``, weight ``blob_gain``: a real
   handle and its recess are larger than the model's bar);
3. scores each candidate by the normalised cross-correlation of the two feature maps inside the face
   (without a ``border`` that every candidate shares), and takes the best one (if the photos say
   enough: ``min_score``, and clearly: ``margin`` over the winner's own layout) whose depth-scan score,
   refined like the edge check's candidates (:class:`splat.search.alternatives.Refiner`), stays within
   ``tolerance`` of the winner's (a layout that changes what the scan sees, e.g. open shelves for closed
   doors, must still fit the scan).

Correlation, not a sum: a candidate with more parts than the photo shows predicts features on a flat
front and loses, one with fewer misses features and loses too.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from splat.metrics import face_position, gaussian_window
from splat.ops import sample_surface
from splat.program import ShapeProgram
from splat.train.data import TrainData


def _blur(a: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of a 2D float64 map (``sigma`` in cells, replicate padding)."""
    if sigma <= 0:
        return a
    r = max(1, int(math.ceil(3 * sigma)))
    g = gaussian_window(2 * r + 1, sigma, dtype=a.dtype)
    out = F.conv2d(F.pad(a[None, None], (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))
    return out[0, 0]


def _ncc(a: Tensor, b: Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(torch.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / den if den > 0 else 0.0


class Facade:
    """The observed front face of a fitted program (see the module docstring, step 1)."""

    def __init__(self, program: ShapeProgram, assignment: dict[str, Any], placement: Tensor, data: TrainData, *,
                 cell: float = 0.004, min_cos: float = 0.5, visible_margin: float = 0.03,
                 feature_sigma: float = 0.03):
        self.cell = cell
        rm = program.evaluate(assignment, dtype=torch.float64).realize()
        verts = rm.verts[0][torch.unique(rm.faces[rm.face_active[0]])].numpy()
        lo, hi = verts.min(0), verts.max(0)
        # the front plane: where most of the front's surface is (handles stand further out, sparsely)
        s = sample_surface(rm.verts, rm.faces, 20000, torch.Generator().manual_seed(0), face_active=rm.face_active)
        p = s.points[0].numpy()
        mid = ((p[:, 0] > lo[0] + 0.2 * (hi[0] - lo[0])) & (p[:, 0] < hi[0] - 0.2 * (hi[0] - lo[0]))
               & (p[:, 2] > lo[2] + 0.2 * (hi[2] - lo[2])) & (p[:, 2] < hi[2] - 0.2 * (hi[2] - lo[2])))
        self.y0 = -face_position(-p[mid, 1])
        self.x_range, self.z_range = (float(lo[0]), float(hi[0])), (float(lo[2]), float(hi[2]))
        nx = max(2, int(round((hi[0] - lo[0]) / cell)))
        nz = max(2, int(round((hi[2] - lo[2]) / cell)))
        self.shape = (nz, nx)
        xs = lo[0] + (torch.arange(nx, dtype=torch.float64) + 0.5) * (hi[0] - lo[0]) / nx
        zs = hi[2] - (torch.arange(nz, dtype=torch.float64) + 0.5) * (hi[2] - lo[2]) / nz  # row 0 at the top
        Z, X = torch.meshgrid(zs, xs, indexing="ij")
        local = torch.stack([X, torch.full_like(X, self.y0), Z, torch.ones_like(X)], -1).reshape(-1, 4)
        pl = placement.double()
        world = local @ pl.T
        normal = pl[:3, :3] @ torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)
        normal = normal / normal.norm()
        centre = world[:, :3].mean(0)
        samples = []
        for v in range(data.num_views):
            vm = data.viewmats[v].double()
            eye = -vm[:3, :3].T @ vm[:3, 3]
            to_eye = eye - centre
            if float(to_eye @ normal) < min_cos * float(to_eye.norm()):
                continue
            cam = world @ vm.T
            z = cam[:, 2]
            K = data.Ks[v].double()
            u = K[0, 0] * cam[:, 0] / z + K[0, 2]
            w_ = K[1, 1] * cam[:, 1] / z + K[1, 2]
            h, w = data.images.shape[1:3]
            ok = (z > 0.05) & (u >= 0) & (u < w) & (w_ >= 0) & (w_ < h)
            col, row = u.floor().long().clamp(0, w - 1), w_.floor().long().clamp(0, h - 1)
            if data.depths is not None:
                d = data.depths[v].double()[row, col]
                ok &= (d <= 0) | ((d - z).abs() < visible_margin)
            if data.masks is not None:
                ok &= data.masks[v][row, col]
            if int(ok.sum()) < 0.5 * ok.numel():
                continue
            grey = (data.images[v].double()[..., :3] * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)).sum(-1)
            # bilinear, pixel centres at +0.5
            grid = torch.stack([u / w * 2 - 1, w_ / h * 2 - 1], -1).view(1, 1, -1, 2)
            val = F.grid_sample(grey[None, None], grid, mode="bilinear", padding_mode="border", align_corners=False)
            val = val.view(-1)
            val = torch.where(ok, val, torch.full_like(val, math.nan))
            val = val / val[ok].median().clamp_min(1e-6)
            samples.append(val)
        self.num_views = len(samples)
        if samples:
            stack = torch.stack(samples)
            img = stack.nanmedian(0).values
            img = torch.where(torch.isnan(img), img[~torch.isnan(img)].median() if bool((~torch.isnan(img)).any())
                              else torch.ones_like(img), img)
        else:
            img = torch.ones(nz * nx, dtype=torch.float64)
        self.image = img.view(nz, nx)
        # features: what is darker than the surface around it: the shadows in the gaps between fronts,
        # under and inside handles (a light metal handle casts one too); |difference| also took the
        # light edges of the fronts and the floor's glare at the foot, and chose 5 or 1 drawers for the
        # TUM cabinet's 4 with some placements of the same fit
        self.features = (_blur(self.image, feature_sigma / cell) - self.image).clamp_min(0)

    def predicted(self, program: ShapeProgram, assignment: dict[str, Any], *, step: float = 0.004,
                  predict_sigma: float = 0.01, blob_sigma: float = 0.015, blob_gain: float = 4.0) -> Tensor:
        """The feature map a candidate predicts (step 2 of the module docstring), ``[nz, nx]``."""
        from splat.ops.mesh_raster import render_mesh

        rm = program.evaluate(assignment, dtype=torch.float64).realize()
        nz, nx = self.shape
        dist = 50.0  # metres: a pinhole this far away is orthographic to well under a cell
        fx = dist * nx / (self.x_range[1] - self.x_range[0])
        fz = dist * nz / (self.z_range[1] - self.z_range[0])
        K = torch.tensor([[fx, 0.0, nx / 2], [0.0, fz, nz / 2], [0.0, 0.0, 1.0]], dtype=torch.float64)
        # camera axes: x right = +X, y down = -Z, z forward = +Y; centred on the face
        R = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
        eye = torch.tensor([sum(self.x_range) / 2, self.y0 - dist, sum(self.z_range) / 2], dtype=torch.float64)
        vm = torch.eye(4, dtype=torch.float64)
        vm[:3, :3], vm[:3, 3] = R, -R @ eye
        with torch.no_grad():
            mv = render_mesh(rm.verts[0], rm.faces, rm.vert_part, rm.face_part, vm, K, nx, nz, rm.face_active[0])
        relief = torch.where(mv.face >= 0, mv.depth - dist, torch.full_like(mv.depth, 1.0))  # + behind the plane
        relief = relief.clamp(max=0.2)
        gx = torch.zeros_like(relief)
        gz = torch.zeros_like(relief)
        gx[:, 1:] = (relief[:, 1:] - relief[:, :-1]).abs()
        gz[1:] = (relief[1:] - relief[:-1]).abs()
        edges = ((gx > step) | (gz > step)).double()
        out = _blur(edges, predict_sigma / self.cell)
        if blob_sigma > 0:  # what stands out (handles) as a blob: a real handle is larger than the model's bar
            out = out + _blur((relief < -step).double(), blob_sigma / self.cell) * blob_gain
        else:
            out = torch.maximum(out, _blur((relief < -step).double(), predict_sigma / self.cell))
        return out

    def score(self, predicted: Tensor, border: float = 0.025) -> float:
        b = int(round(border / self.cell))
        nz, nx = self.shape
        if nz <= 2 * b + 2 or nx <= 2 * b + 2:
            return 0.0
        return _ncc(self.features[b:nz - b, b:nx - b], predicted[b:nz - b, b:nx - b])


def candidates(program: ShapeProgram, assignment: dict[str, Any], names: list[str], float_steps: int = 6) -> list[dict]:
    """The winner with the parameters ``names`` changed over their values (ints and bools over their
    ranges, floats on ``float_steps`` evenly spaced values), each layout once (inactive parameters keep
    the winner's values)."""
    space = program.space
    axes = []
    for n in names:
        p = space[n]
        if p.continuous:
            lo, hi = p.low, p.high
            axes.append([lo + (hi - lo) * k / (float_steps - 1) for k in range(float_steps)])
        else:
            axes.append(list(p.values()))
    out, seen = [], set()
    for combo in itertools.product(*axes):
        a = dict(assignment)
        a.update(dict(zip(names, combo)))
        act = space.active(a)
        key = tuple((n, a[n]) for n in names if act.get(n, True))
        if key in seen:
            continue
        seen.add(key)
        out.append(space.validate(a))
    return out


def facade_check(program: ShapeProgram, assignment: dict[str, Any], placement: Tensor, data: TrainData,
                 settings: Any, views: Any = None, *, names: list[str], tolerance: float = 0.05,
                 min_views: int = 3, min_score: float = 0.1, margin: float = 0.05,
                 seed: int = 0) -> tuple[dict[str, Any], dict]:
    """Lay out the winner's front by the photos (see the module docstring).

    Args:
        program, assignment, placement: the winner (``placement [4, 4]`` program -> world).
        data: train frames (images, depths, masks, cameras) and the scan.
        settings, views: the run's :class:`splat.search.SearchSettings` and the scan's depth views, for the
            scan guard's refinement.
        names: the parameters that lay out the front (the program's ``facade`` declaration).
        tolerance: a layout whose refined scan score exceeds the winner's by more than this fraction is
            passed over.
        min_views: fewer train views facing the front: the check is skipped.
        min_score, margin: another layout is taken only when its correlation is at least ``min_score`` and
            beats the winner's by ``margin`` (a front whose photos show no layout, e.g. one texture over
            flush fronts, correlates with every candidate at about 0: the winner stays).

    Returns:
        (assignment, info): the chosen parameters (the winner's, unless the photos chose another layout)
        and what the check saw.
    """
    from splat.search.alternatives import Candidate, Refiner

    t0 = time.perf_counter()
    base = program.space.validate(dict(assignment))
    facade = Facade(program, base, placement, data)
    info: dict[str, Any] = {"views": facade.num_views, "params": list(names)}
    if facade.num_views < min_views or not names:
        info.update({"chosen": "winner (skipped: too few views face the front)", "seconds": time.perf_counter() - t0})
        return base, info
    cands = candidates(program, base, names)
    scores = [facade.score(facade.predicted(program, c)) for c in cands]
    order = sorted(range(len(cands)), key=lambda i: -scores[i])
    own = facade.score(facade.predicted(program, base))
    discrete = [n for n in names if not program.space[n].continuous]
    chosen, chosen_score, guard = base, own, None
    refiner = None
    for i in order[:5]:
        c = cands[i]
        if scores[i] < min_score or scores[i] < own + margin:
            break
        if all(c[n] == base[n] for n in discrete):  # the same structure: the scan cannot object
            chosen, chosen_score = c, scores[i]
            break
        if refiner is None:
            from splat.maths import decompose_placement

            translation, yaw, _ = decompose_placement(placement.double())
            start = dict(translation=tuple(float(x) for x in translation), yaw=float(yaw))
            refiner = Refiner(program, data.scan, settings, views, seed=seed)
            ref = refiner([Candidate(base, label="winner", **start)])[0].score
        scored = refiner([Candidate(c, label="layout", **start)])[0].score
        guard = scored / ref if ref > 0 else math.inf
        if guard <= 1 + tolerance:
            chosen, chosen_score = c, scores[i]
            break
    changed = {n: chosen[n] for n in names if chosen[n] != base[n]}
    info.update({
        "chosen": "winner" if not changed else ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                                        for k, v in changed.items()),
        "score": chosen_score, "winner_score": own, "candidates": len(cands),
        "runner_up_score": scores[order[1]] if len(order) > 1 else math.nan,
        "scan_score_ratio": guard if guard is not None else 1.0,
        "seconds": time.perf_counter() - t0,
    })
    return chosen, info
