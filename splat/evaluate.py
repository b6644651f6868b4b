"""The one evaluation of a trained run: held-out images, geometry and parameters, as one typed report.

:func:`evaluate_asset` scores an editable asset (program + fitted parameters + placement + Gaussians,
:class:`splat.export.EditableAsset`) on a scene and returns an :class:`EvalReport`; ``report.as_dict()``
is the one JSON schema (``"format": "splat.eval/1"``, every key in docs/evaluation.md). Both writers of
it call that same function:

- the trainer's stage (c) (:func:`splat.train.train`) with the asset it has just written -> ``<run>/metrics.json``;
- ``splat evaluate RUN`` (:func:`evaluate_run`: the asset loaded from the run folder, or from its latest
  checkpoint for a run that was killed) -> ``<run>/eval_metrics.json``.

With the same run, scene and :class:`EvalOptions` (``splat evaluate`` takes them from the run's
config.json) the two files hold the same numbers. No metric is computed here: :mod:`splat.metrics`
does it.

- test images (the scene's ``test`` split, the only frames read): the asset rendered over the background
  (``EvalOptions.background``, else the scene's), PSNR / SSIM over the whole image and over the scene's
  object mask, per view and mean over views;
- geometry: the program's active surface at the fitted parameters (``surface_samples`` area-uniform
  samples, seeded) against ``gt_mesh`` (when the scene names one; the same number of samples) and against
  the scan (``scan.ply``, else the depth of the *train* frames fused inside their masks): Chamfer-L1/L2,
  accuracy, completeness, F-score at 1 / 2 / 5 cm, normal consistency;
- parameters (scenes whose ``gt_params`` belong to the run's program): errors of the active continuous
  parameters in % of their range (mean, max, per parameter), discrete accuracy, whether the whole
  discrete structure was recovered.

Convention: distances in metres (Chamfer-L2 in m^2); images in [0, 1]. In the typed report an undefined
value is NaN (a view without a mask, normal consistency against a bare scan); in the JSON every non-finite
number is ``null`` (so are the PSNR of identical images, +inf, and of a NaN image). A part that does not
apply (no gt mesh, no scan, no ground-truth parameters) is ``None`` / ``null``; every key is always present.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

import numpy as np
import torch
import tyro

from splat.errors import SplatError
from splat.io import read_json

FORMAT = "splat.eval/1"
"""The ``format`` of metrics.json / eval_metrics.json."""
TAUS = (0.01, 0.02, 0.05)
"""F-score thresholds in metres (the keys ``fscore@1cm``, ``fscore@2cm``, ``fscore@5cm``)."""
_FSCORE_KEYS = ("fscore@1cm", "fscore@2cm", "fscore@5cm")


def _num(x: Any) -> float | None:
    """A JSON number: finite float, else None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _nan(x: Any) -> float:
    """Back from JSON: None -> NaN."""
    return math.nan if x is None else float(x)


# ---------------------------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class ViewScores:
    """Image metrics of one test view (NaN: undefined, e.g. masked metrics of a view without a mask)."""

    psnr: float  # dB, whole image
    ssim: float  # whole image (11x11 Gaussian window, "valid")
    psnr_masked: float = math.nan  # dB, over the object-mask pixels
    ssim_masked: float = math.nan  # SSIM map averaged over mask pixels (window centres)
    depth_err_cm: float = math.nan  # median |rendered - sensor depth| (cm) over mask pixels with a reading
    psnr_masked_cc: float = math.nan  # dB, over the mask after a least-squares affine colour fit (see below)

    def as_dict(self) -> dict[str, Any]:
        return {"psnr": _num(self.psnr), "ssim": _num(self.ssim),
                "psnr_masked": _num(self.psnr_masked), "ssim_masked": _num(self.ssim_masked),
                "psnr_masked_cc": _num(self.psnr_masked_cc), "depth_err_cm": _num(self.depth_err_cm)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ViewScores":
        return cls(_nan(d["psnr"]), _nan(d["ssim"]), _nan(d.get("psnr_masked")), _nan(d.get("ssim_masked")),
                   _nan(d.get("depth_err_cm")), _nan(d.get("psnr_masked_cc")))


@dataclass(frozen=True)
class ImageScores:
    """Image metrics on the scene's test views: means over views, and per view."""

    num_views: int
    psnr: float  # mean of the per-view PSNRs; NaN without test views
    ssim: float
    psnr_masked: float  # mean over the views with a non-empty mask; NaN if none has one
    ssim_masked: float
    per_view: Mapping[str, ViewScores] = field(default_factory=dict)  # camera name -> scores, split order
    depth_err_cm: float = math.nan  # median over the views with depth and a mask of their medians
    psnr_masked_cc: float = math.nan  # mean over the masked views of the colour-corrected masked PSNR

    def as_dict(self) -> dict[str, Any]:
        return {"num_views": self.num_views, "psnr": _num(self.psnr), "ssim": _num(self.ssim),
                "psnr_masked": _num(self.psnr_masked), "ssim_masked": _num(self.ssim_masked),
                "psnr_masked_cc": _num(self.psnr_masked_cc), "depth_err_cm": _num(self.depth_err_cm),
                "per_view": {k: v.as_dict() for k, v in self.per_view.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ImageScores":
        return cls(int(d["num_views"]), _nan(d["psnr"]), _nan(d["ssim"]), _nan(d["psnr_masked"]),
                   _nan(d["ssim_masked"]), {k: ViewScores.from_dict(v) for k, v in d["per_view"].items()},
                   _nan(d.get("depth_err_cm")), _nan(d.get("psnr_masked_cc")))


@dataclass(frozen=True)
class GeometryScores:
    """The program's surface against one reference (definitions: :mod:`splat.metrics`)."""

    source: str  # the reference: gt mesh file, "scan.ply" or "train depth fused"
    reference_points: int  # points of the reference (its samples for a mesh)
    chamfer_l1: float  # m: (accuracy + completeness) / 2
    chamfer_l2: float  # m^2: mean of the two one-sided mean squared distances
    accuracy: float  # m: mean distance program samples -> reference
    completeness: float  # m: mean distance reference -> program samples
    fscore_1cm: float  # F-score at tau = 0.01 m
    fscore_2cm: float
    fscore_5cm: float
    normal_consistency: float  # mean |cos| of nearest-neighbour normals, both ways; NaN for a bare scan

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "reference_points": self.reference_points,
                               "chamfer_l1": _num(self.chamfer_l1), "chamfer_l2": _num(self.chamfer_l2),
                               "accuracy": _num(self.accuracy), "completeness": _num(self.completeness)}
        for key, v in zip(_FSCORE_KEYS, (self.fscore_1cm, self.fscore_2cm, self.fscore_5cm)):
            out[key] = _num(v)
        out["normal_consistency"] = _num(self.normal_consistency)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GeometryScores":
        return cls(str(d["source"]), int(d["reference_points"]), _nan(d["chamfer_l1"]), _nan(d["chamfer_l2"]),
                   _nan(d["accuracy"]), _nan(d["completeness"]), *(_nan(d[k]) for k in _FSCORE_KEYS),
                   _nan(d["normal_consistency"]))


@dataclass(frozen=True)
class SizeScores:
    """Outer width, depth and height of the fitted program against the scan's, in the program's axes
    (:func:`splat.metrics.outer_size` on both: the program's mesh as the scene's cameras see it, and the
    scan), metres."""

    source: str  # the scan: "scan.ply" or "train depth fused"
    fitted: tuple[float, float, float]  # (width, depth, height) of the program's seen surface
    scan: tuple[float, float, float]  # the same of the scan

    @property
    def error_cm(self) -> tuple[float, ...]:
        return tuple((a - b) * 100.0 for a, b in zip(self.fitted, self.scan))

    def as_dict(self) -> dict[str, Any]:
        err = self.error_cm
        finite = [abs(e) for e in err if math.isfinite(e)]
        return {"source": self.source, "fitted_m": [_num(x) for x in self.fitted],
                "scan_m": [_num(x) for x in self.scan], "error_cm": [_num(x) for x in err],
                "max_abs_error_cm": _num(max(finite)) if len(finite) == 3 else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SizeScores":
        return cls(str(d["source"]), tuple(_nan(x) for x in d["fitted_m"]), tuple(_nan(x) for x in d["scan_m"]))


@dataclass(frozen=True)
class ParamScores:
    """Fitted parameters against the scene's ground truth, over the parameters active in the ground truth."""

    continuous_mae_pct: float  # mean |fit - gt| / (high - low) * 100 over active floats; NaN if none
    continuous_max_pct: float  # max of the same; NaN if none
    discrete_accuracy: float  # fraction of active int/bool parameters exactly right; NaN if none
    discrete_structure_recovered: bool  # every active int/bool parameter right (True when there is none)
    n_continuous: int
    n_discrete: int
    per_param: Mapping[str, float] = field(default_factory=dict)  # float: % of range; int/bool: 1.0 / 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"continuous_mae_pct": _num(self.continuous_mae_pct),
                "continuous_max_pct": _num(self.continuous_max_pct),
                "discrete_accuracy": _num(self.discrete_accuracy),
                "discrete_structure_recovered": bool(self.discrete_structure_recovered),
                "n_continuous": self.n_continuous, "n_discrete": self.n_discrete,
                "per_param": {k: _num(v) for k, v in self.per_param.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ParamScores":
        return cls(_nan(d["continuous_mae_pct"]), _nan(d["continuous_max_pct"]), _nan(d["discrete_accuracy"]),
                   bool(d["discrete_structure_recovered"]), int(d["n_continuous"]), int(d["n_discrete"]),
                   {k: _nan(v) for k, v in d["per_param"].items()})


@dataclass(frozen=True)
class EvalOptions:
    """How a run is evaluated (the trainer passes its config's values; ``splat evaluate`` reads them from
    the run's config.json)."""

    surface_samples: int = 20000
    """Area-uniform samples of the program's surface (and of the gt mesh) for the geometry metrics."""
    seed: int = 0
    """Seed of the surface sampling."""
    backend: str = "auto"
    """Rasterizer backend (auto, cpu, torch, gsplat)."""
    near_plane: float = 0.01
    """Near clipping plane of the test-view renders (metres)."""
    background: Optional[tuple[float, float, float]] = None
    """Render background (RGB in [0, 1]). None: the scene's background."""

    def as_dict(self) -> dict[str, Any]:
        return {"surface_samples": self.surface_samples, "seed": self.seed, "backend": self.backend,
                "near_plane": self.near_plane,
                "background": None if self.background is None else [float(c) for c in self.background]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EvalOptions":
        bg = d.get("background")
        return cls(int(d["surface_samples"]), int(d["seed"]), str(d["backend"]), float(d["near_plane"]),
                   None if bg is None else tuple(float(c) for c in bg))


@dataclass(frozen=True)
class EvalReport:
    """Everything an evaluation measured; ``as_dict()`` is metrics.json / eval_metrics.json."""

    run: str | None  # the run folder (absolute), if known
    scene: str  # the scene folder (absolute)
    program: str  # the program's name
    params: Mapping[str, Any]  # the evaluated parameter values (JSON scalars)
    num_gaussians: int  # canonical Gaussians of the asset
    test: ImageScores
    geometry_vs_gt_mesh: GeometryScores | None  # None: the scene has no gt_mesh
    geometry_vs_scan: GeometryScores | None  # None: no scan.ply and no train depth
    geometry_vs_test_depth: GeometryScores | None  # the held-out views' depth fused (masked); None: none
    size_vs_scan: SizeScores | None  # outer size against the scan's; None: no scan
    param_errors: ParamScores | None  # None: no gt_params, or not the run's program's
    settings: EvalOptions  # as used (background resolved to the colour rendered over)
    seconds: float  # wall time of the evaluation

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready report (schema ``splat.eval/1``, docs/evaluation.md)."""
        return {
            "format": FORMAT,
            "run": self.run, "scene": self.scene, "program": self.program,
            "params": dict(self.params), "num_gaussians": self.num_gaussians,
            "test": self.test.as_dict(),
            "geometry_vs_gt_mesh": None if self.geometry_vs_gt_mesh is None else self.geometry_vs_gt_mesh.as_dict(),
            "geometry_vs_scan": None if self.geometry_vs_scan is None else self.geometry_vs_scan.as_dict(),
            "geometry_vs_test_depth": (None if self.geometry_vs_test_depth is None
                                       else self.geometry_vs_test_depth.as_dict()),
            "size_vs_scan": None if self.size_vs_scan is None else self.size_vs_scan.as_dict(),
            "param_errors": None if self.param_errors is None else self.param_errors.as_dict(),
            "settings": self.settings.as_dict(),
            "seconds": _num(self.seconds),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, file: Any = None) -> "EvalReport":
        """Read back :meth:`as_dict` (e.g. a metrics.json); SplatError for another format."""
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            got = d.get("format") if isinstance(d, Mapping) else type(d).__name__
            raise SplatError(f"not an evaluation report: format {got!r}, expected {FORMAT!r}", file=file,
                             field="format")
        try:
            def part(key, kind):
                return None if d.get(key) is None else kind.from_dict(d[key])

            return cls(d["run"], str(d["scene"]), str(d["program"]), dict(d["params"]), int(d["num_gaussians"]),
                       ImageScores.from_dict(d["test"]), part("geometry_vs_gt_mesh", GeometryScores),
                       part("geometry_vs_scan", GeometryScores), part("geometry_vs_test_depth", GeometryScores),
                       part("size_vs_scan", SizeScores), part("param_errors", ParamScores),
                       EvalOptions.from_dict(d["settings"]), _nan(d["seconds"]))
        except (KeyError, TypeError, ValueError) as err:
            raise SplatError(f"malformed evaluation report ({type(err).__name__}: {err})", file=file) from None


# ------------------------------------------------------------------------------------------ computing it


def image_scores(world: Any, scene: Any, options: EvalOptions = EvalOptions(), *,
                 renders_dir: Path | None = None) -> ImageScores:
    """The held-out image metrics of world Gaussians (``report.test`` of :func:`evaluate_asset`).

    ``world`` (a :class:`splat.gaussians.WorldGaussians`, or anything with means, covars, opacities, sh)
    is rendered into the scene's ``test`` cameras over ``options.background`` (else the scene's) and
    scored by the same code as an asset's evaluation, so Gaussians that no program owns (the
    unconstrained baseline, :mod:`splat.train.baseline`) are measured exactly as a run is.
    """
    from splat.data import scene_background
    from splat.render.frames import ViewSettings

    vs = ViewSettings(background=scene_background(scene, options.background), backend=options.backend,
                      near_plane=options.near_plane)
    return _image_scores(world, scene, vs, renders_dir)


def _image_scores(world: Any, scene: Any, view_settings: Any, renders_dir: Path | None) -> ImageScores:
    from splat.metrics import psnr, ssim
    from splat.render.frames import render_views

    idx = list(scene.split["test"])
    if not idx:
        return ImageScores(0, math.nan, math.nan, math.nan, math.nan, {})
    views = render_views(world, [scene.cameras[i] for i in idx], view_settings)
    per: dict[str, ViewScores] = {}
    masked: list[ViewScores] = []  # the views with a non-empty mask
    for i, v in zip(idx, views):
        pred = torch.from_numpy(v.rgb).double()
        target_np = np.asarray(scene.images[i])
        target = torch.from_numpy(target_np).double()
        row = {"psnr": float(psnr(pred, target)), "ssim": float(ssim(pred, target))}
        mask = scene.masks[i] if scene.masks is not None else None
        if mask is not None and np.asarray(mask).any():
            m = torch.from_numpy(np.asarray(mask))
            row["psnr_masked"] = float(psnr(pred, target, m))
            row["ssim_masked"] = float(ssim(pred, target, m))
            row["psnr_masked_cc"] = float(psnr(colour_corrected(pred, target, m), target, m))
            depth = scene.depths[i] if scene.depths is not None else None
            if depth is not None:
                d = np.asarray(depth)
                ok = np.asarray(mask) & (d > 0) & np.isfinite(d) & (np.asarray(v.alpha) > 0.5)
                if ok.any():
                    row["depth_err_cm"] = float(np.median(np.abs(np.asarray(v.depth)[ok] - d[ok]))) * 100.0
        per[v.name] = ViewScores(**row)
        if "psnr_masked" in row:
            masked.append(per[v.name])
        if renders_dir is not None:
            from splat.data.images import write_image

            renders_dir.mkdir(parents=True, exist_ok=True)
            write_image(renders_dir / f"{v.name}.png", v.rgb)
            write_image(renders_dir / f"{v.name}_target.png", target_np)

    def mean(key: str, over) -> float:
        return float(np.mean([getattr(s, key) for s in over])) if over else math.nan

    views_ = list(per.values())
    depth_errs = [s.depth_err_cm for s in views_ if math.isfinite(s.depth_err_cm)]
    return ImageScores(len(per), mean("psnr", views_), mean("ssim", views_), mean("psnr_masked", masked),
                       mean("ssim_masked", masked), per,
                       float(np.median(depth_errs)) if depth_errs else math.nan, mean("psnr_masked_cc", masked))


def colour_corrected(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``pred [H, W, 3]`` through the affine colour map ``A rgb + b`` (3x4) that best fits ``target`` on
    ``mask`` in least squares, clipped to [0, 1].

    A capture's held-out photo has its own auto-exposure and white balance, which no model trained on
    other frames can know; this is the colour-corrected PSNR of Mip-NeRF 360 / Zip-NeRF evaluations,
    restricted to the object: 12 numbers per view, which cannot paint detail or geometry.

    Solved by LAPACK's SVD driver ``gelsd``, not torch's CPU default ``gelsy``: torch hands gelsy an
    uninitialised column-pivot array, so stale heap memory can pin columns and the solution changes in
    its last bits from call to call (and is wrong for a rank-deficient fit, e.g. a grey render); a resumed
    run's metrics then differed from an uninterrupted run's (pytorch/pytorch#92537, #187411)."""
    m = mask.reshape(-1)
    x = pred.reshape(-1, 3)[m].double()
    y = target.reshape(-1, 3)[m].double()
    ok = torch.isfinite(x).all(1) & torch.isfinite(y).all(1)  # (a poisoned or broken photo: no fit)
    x, y = x[ok], y[ok]
    if x.shape[0] < 12:
        return pred
    X = torch.cat([x, torch.ones_like(x[:, :1])], 1)  # [n, 4]
    coef = torch.linalg.lstsq(X, y, driver="gelsd").solution  # [4, 3]; deterministic (see above)
    full = torch.cat([pred.reshape(-1, 3).double(), torch.ones_like(pred.reshape(-1, 3)[:, :1]).double()], 1)
    return (full @ coef).clamp(0, 1).reshape(pred.shape).to(pred.dtype)


def _mesh_as_seen(rm: Any, cameras: Any) -> np.ndarray:
    """``[N, 3]`` points of a realized mesh (B = 1) where ``cameras`` see it: its depth in each camera,
    back-projected at the pixel centres (the program's own "scan", for :class:`SizeScores`)."""
    from splat.ops.mesh_raster import render_mesh

    out = []
    for cam in cameras:
        with torch.no_grad():
            mv = render_mesh(rm.verts[0].detach(), rm.faces, rm.vert_part, rm.face_part,
                             torch.as_tensor(cam.viewmat, dtype=rm.verts.dtype),
                             torch.as_tensor(cam.K, dtype=rm.verts.dtype), cam.width, cam.height, rm.face_active[0])
        out.append(cam.backproject(mv.depth.numpy(), valid=(mv.face >= 0).numpy()))
    return np.concatenate(out) if out else np.zeros((0, 3))


def _geometry_scores(gm: Any, source: str, reference_points: int) -> GeometryScores:
    f = {round(s.tau, 6): s.fscore for s in gm.fscores}
    return GeometryScores(source, int(reference_points), gm.chamfer_l1, gm.chamfer_l2, gm.accuracy,
                          gm.completeness, f[0.01], f[0.02], f[0.05], gm.normal_consistency)


def _source_name(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def _param_scores(params: Mapping[str, Any], scene: Any, space: Any) -> ParamScores | None:
    from splat.metrics import param_errors

    if not scene.gt_params or not set(scene.gt_params) <= set(space.names):
        return None
    gt = space.validate(dict(scene.gt_params))
    pe = param_errors(params, gt, space)
    floats = [v for k, v in pe.per_param.items() if space[k].type == "float"]
    return ParamScores(
        continuous_mae_pct=pe.continuous_mae_pct,
        continuous_max_pct=max(floats) if floats else math.nan,
        discrete_accuracy=pe.discrete_accuracy,
        discrete_structure_recovered=pe.n_discrete == 0 or pe.discrete_accuracy == 1.0,
        n_continuous=pe.n_continuous, n_discrete=pe.n_discrete, per_param=dict(pe.per_param))


def evaluate_asset(asset: Any, scene: Any, options: EvalOptions = EvalOptions(), *,
                   run: str | Path | None = None, renders_dir: Path | None = None) -> EvalReport:
    """Score an editable asset on a scene (the one evaluation; see the module doc).

    Args:
        asset: a :class:`splat.export.EditableAsset` (its Gaussians on any device).
        scene: the loaded :class:`splat.data.Scene`; of its frames only the ``test`` split's images and
            masks are read, and the ``train`` split's depth when the scene has no ``scan.ply``.
        options: surface sampling and seed, rasterizer backend and near plane, background.
        run: the run folder, recorded in the report (default: ``asset.root``).
        renders_dir: if given, the test-view renders are written there as ``<view>.png`` beside
            ``<view>_target.png``.
    Raises:
        SplatError: the program has no active surface at the fitted parameters.
    """
    from splat.data import fuse_depth, read_ply_points, scene_background
    from splat.metrics import geometry_metrics, outer_size, sample_mesh
    from splat.render.frames import ViewSettings

    t0 = time.perf_counter()
    if options.surface_samples < 16:
        raise SplatError(f"must be >= 16, got {options.surface_samples}", field="surface_samples")
    background = scene_background(scene, options.background)
    vs = ViewSettings(background=background, backend=options.backend, near_plane=options.near_plane)
    test = _image_scores(asset.world_gaussians(), scene, vs, renders_dir)

    rm = asset.geometry(dtype=torch.float64).realize()
    faces = rm.faces[rm.face_active[0]]
    if faces.shape[0] == 0:
        raise SplatError("the fitted program has no active surface to evaluate", file=asset.root, field="params")
    n = options.surface_samples
    # the program's surface and the gt mesh are sampled from the same seed (a mesh against itself scores 0)
    pred = sample_mesh((rm.verts[0].detach(), faces), n, torch.Generator().manual_seed(options.seed))

    vs_mesh = None
    gt_mesh = scene.extra_path("gt_mesh")
    if gt_mesh is not None and gt_mesh.is_file():
        mesh = load_gt_mesh(gt_mesh)
        ref = sample_mesh((np.asarray(mesh.vertices), np.asarray(mesh.faces)), n,
                          torch.Generator().manual_seed(options.seed))
        vs_mesh = _geometry_scores(geometry_metrics(pred, ref, taus=TAUS), _source_name(gt_mesh, scene.root),
                                   len(ref.points))
    if scene.scan_path is not None:
        scan, src = read_ply_points(scene.scan_path).double().numpy(), _source_name(scene.scan_path, scene.root)
    elif scene.depths is not None and any(scene.depths[i] is not None for i in scene.split["train"]):
        scan, src = fuse_depth(scene, "train", use_masks=True).double().numpy(), "train depth fused"
    else:
        scan, src = None, ""
    vs_scan = size = None
    if scan is not None and len(scan):
        vs_scan = _geometry_scores(geometry_metrics(pred, scan, taus=TAUS), src, len(scan))
        size = SizeScores(src, tuple(outer_size(_mesh_as_seen(rm, scene.cameras), asset.placement)),
                          tuple(outer_size(scan, asset.placement)))
    # the held-out views' own points: for a capture, the geometry check no train frame took part in
    vs_test = None
    test_idx = list(scene.split["test"])
    if scene.depths is not None and any(scene.depths[i] is not None for i in test_idx):
        held = fuse_depth(scene, test_idx, use_masks=True).double().numpy()
        if len(held):
            vs_test = _geometry_scores(geometry_metrics(pred, held, taus=TAUS), "test depth fused", len(held))

    from splat.export.asset import plain_params

    space = asset.program.space
    params = plain_params(asset.params, space)
    root = run if run is not None else asset.root
    return EvalReport(
        run=None if root is None else str(Path(root).resolve()),
        scene=str(Path(scene.root).resolve()),
        program=str(asset.program.name),
        params=params,
        num_gaussians=len(asset.gaussians),
        test=test,
        geometry_vs_gt_mesh=vs_mesh,
        geometry_vs_scan=vs_scan,
        geometry_vs_test_depth=vs_test,
        size_vs_scan=size,
        param_errors=_param_scores(params, scene, space),
        settings=dataclasses.replace(options, background=background),
        seconds=time.perf_counter() - t0,
    )


# ----------------------------------------------------------------------------------- a run on the disk


@dataclass(frozen=True)
class EvalSettings:
    """``splat evaluate RUN``: held-out metrics of a trained run (the trainer's metrics.json schema)."""

    run: tyro.conf.Positional[Path]
    """Run folder (outputs/<scene>/<run>), its assets/ folder, or a checkpoint."""
    scene: Optional[Path] = None
    """Scene folder. Default: the scene named in the run's config.json."""
    out: Optional[Path] = None
    """Output JSON. Default: RUN/eval_metrics.json."""
    surface_samples: Optional[int] = None
    """Surface samples for the geometry metrics. Default: the run's eval.surface_samples, else 20000."""
    seed: int = 0
    """Seed of the surface sampling (the trainer uses 0)."""
    backend: Optional[Literal["auto", "cpu", "torch", "gsplat"]] = None
    """Rasterizer backend. Default: the run's raster.backend, else auto."""
    background: Optional[tuple[float, float, float]] = None
    """Render background. Default: the run's config background, else the scene's."""
    renders: Optional[Path] = None
    """If given, write the test-view renders (and their targets) into this folder."""


def _run_config(root: Path | None) -> dict[str, Any]:
    """The run's config.json as plain JSON ({} when absent or unreadable): only read for defaults."""
    if root is None or not (Path(root) / "config.json").is_file():
        return {}
    try:
        data = read_json(Path(root) / "config.json")
    except SplatError:
        return {}
    return data if isinstance(data, dict) else {}


def load_gt_mesh(path: Path):
    """The scene's ground-truth mesh (trimesh), a damaged file being a SplatError naming it."""
    import trimesh

    from splat.io import check_ply_header

    if path.suffix.lower() == ".ply":
        check_ply_header(path)  # a header claiming more than the file holds is refused before parsing
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
        verts, faces = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces)
    except Exception as err:  # trimesh raises many types for damaged files
        raise SplatError(f"cannot read the ground-truth mesh ({type(err).__name__}: {err})", file=path) from None
    if verts.ndim != 2 or verts.shape[1:] != (3,) or faces.ndim != 2 or faces.shape[1:] != (3,) or not len(faces):
        raise SplatError("the ground-truth mesh has no triangles", file=path)
    if not np.isfinite(verts).all() or faces.min() < 0 or faces.max() >= len(verts):
        raise SplatError("the ground-truth mesh has non-finite vertices or out-of-range faces", file=path)
    return mesh


def run_options(settings: EvalSettings, run_root: Path | None) -> EvalOptions:
    """The options of ``settings`` with unset ones taken from the run's config.json (as the trainer had them)."""
    cfg = _run_config(run_root)
    ev = cfg.get("eval") if isinstance(cfg.get("eval"), dict) else {}
    raster = cfg.get("raster") if isinstance(cfg.get("raster"), dict) else {}
    d = EvalOptions()
    samples = settings.surface_samples if settings.surface_samples is not None else ev.get("surface_samples",
                                                                                          d.surface_samples)
    # raster.backend; a config.json from before the raster section had a top-level "backend"
    backend = settings.backend if settings.backend is not None else raster.get("backend") or cfg.get("backend")
    bg = settings.background if settings.background is not None else cfg.get("background")
    return EvalOptions(surface_samples=int(samples), seed=settings.seed, backend=str(backend or d.backend),
                       near_plane=float(raster.get("near_plane", d.near_plane)),
                       background=None if bg is None else tuple(float(c) for c in bg))


def evaluate_run(settings: EvalSettings) -> EvalReport:
    """Load the run (:func:`splat.workspace.load_run`) and its scene, and :func:`evaluate_asset` it."""
    from splat.data import load_scene
    from splat.workspace import load_run, run_scene_dir

    asset = load_run(settings.run)
    scene = load_scene(run_scene_dir(asset, settings.scene))
    return evaluate_asset(asset, scene, run_options(settings, asset.root), run=asset.root,
                          renders_dir=settings.renders)


def format_table(report: EvalReport) -> str:
    """A short human-readable summary of a report."""
    def f(x: Any, spec: str, scale: float = 1.0) -> str:
        return "-" if x is None or not math.isfinite(x) else format(x * scale, spec)

    t = report.test
    rows = [("program / scene", f"{report.program} / {Path(report.scene).name}"),
            ("test views", str(t.num_views)),
            ("PSNR full / masked (dB)", f"{f(t.psnr, '.2f')} / {f(t.psnr_masked, '.2f')}"),
            ("SSIM full / masked", f"{f(t.ssim, '.4f')} / {f(t.ssim_masked, '.4f')}"),
            ("PSNR masked, colour-corrected (dB)", f(t.psnr_masked_cc, '.2f'))]
    rows.append(("depth error in mask, median (cm)", f(t.depth_err_cm, '.2f')))
    sz = report.size_vs_scan
    if sz is not None:
        rows.append(("outer W x D x H (m): fitted / scan",
                     " x ".join(f(x, '.3f') for x in sz.fitted) + " / " + " x ".join(f(x, '.3f') for x in sz.scan)))
    for g, label in ((report.geometry_vs_gt_mesh, "vs GT mesh"), (report.geometry_vs_scan, "vs scan"),
                     (report.geometry_vs_test_depth, "vs held-out depth")):
        if g is not None:
            rows.append((f"{label}: Chamfer-L1 (mm) / L2 (mm^2)",
                         f"{f(g.chamfer_l1, '.2f', 1e3)} / {f(g.chamfer_l2, '.2f', 1e6)}"))
            rows.append((f"{label}: F@1/2/5cm, NC",
                         f"{f(g.fscore_1cm, '.3f')} / {f(g.fscore_2cm, '.3f')} / {f(g.fscore_5cm, '.3f')}, "
                         f"{f(g.normal_consistency, '.3f')}"))
    pe = report.param_errors
    if pe is not None:
        rows.append(("params: MAE % range / max %", f"{f(pe.continuous_mae_pct, '.2f')} / "
                                                     f"{f(pe.continuous_max_pct, '.2f')}"))
        rows.append(("params: discrete accuracy / structure",
                     f"{f(pe.discrete_accuracy, '.3f')} / {'recovered' if pe.discrete_structure_recovered else 'WRONG'}"))
    rows.append(("Gaussians / eval seconds", f"{report.num_gaussians} / {report.seconds:.1f}"))
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)
