"""Stage (b): joint training of the procedural Gaussians and the program's continuous parameters.

One training view per step (drawn from the run's ``torch.Generator``); the loss is the photometric
L1 + D-SSIM, alpha-vs-mask, expected depth vs the depth map, Chamfer between the program's surface
samples and the scan, and the surface/scale regularisers (see :mod:`splat.train.losses`). Adam per
Gaussian attribute (one optimizer per parameter, so densification resizes them in one place), one for
the program's normalised float parameters and one for the placement; every learning rate decays
exponentially (Gaussians to ``lr_final_ratio``, program/placement to ``lr_program_final_ratio`` of
their start), and the program/placement ones are 0 before ``program_start``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from splat.gaussians import Densifier, ProceduralGaussians, canonical_surface_samples
from splat.ops import sample_surface
from splat.ops.mesh_raster import render_mesh
from splat.render import rasterize
from splat.config import TrainConfig
from splat.train.data import TrainData, downscale_data
from splat.train.losses import (
    SurfaceRegulariser,
    chamfer_loss,
    depth_loss,
    erode_mask,
    mask_loss,
    occluded_pixels,
    photometric_loss,
    scale_loss,
)
from splat.maths import rotvec_to_rotmat
from splat.program import ProgramFit


@dataclass
class StepStats:
    """Scalars of one step (for logs and the progress bar)."""

    loss: float
    l1: float
    photo: float
    mask: float
    depth: float
    chamfer: float
    surface: float
    scale: float
    num_gaussians: int
    mesh_silhouette: float = 0.0
    mesh_depth: float = 0.0


def gaussian_lrs(cfg: TrainConfig) -> dict[str, float]:
    o = cfg.optim
    return {"means": o.lr_means, "quats": o.lr_quats, "log_scales": o.lr_scales,
            "opacity_logits": o.lr_opacities, "sh0": o.lr_colors, "shN": o.lr_colors / 20.0,
            "residuals": o.lr_residuals}


def make_optimizers(cfg: TrainConfig, gaussians: ProceduralGaussians, fit: ProgramFit,
                    exposure: torch.nn.Parameter | None = None,
                    pose: torch.nn.Parameter | None = None) -> dict[str, torch.optim.Adam]:
    # fused=True: torch's one-kernel Adam (CPU and CUDA), the same update; on the CPU the nine
    # optimizers' steps took 2-6 ms per training step with the default for-each implementation, 0.75 ms
    # fused (25k Gaussians, bench/RESULTS.md 2026-12-01)
    adam = functools.partial(torch.optim.Adam, fused=True)
    lrs = gaussian_lrs(cfg)
    opts = {name: adam([p], lr=lrs[name], eps=1e-15) for name, p in gaussians.params.items()}
    opts["program"] = adam(fit.program_parameters(), lr=cfg.optim.lr_program)
    opts["placement"] = adam(fit.placement_parameters(), lr=cfg.optim.lr_placement)
    if exposure is not None:
        opts["exposure"] = adam([exposure], lr=cfg.optim.lr_exposure)
    if pose is not None:
        opts["pose"] = adam([pose], lr=cfg.optim.lr_pose)
    return opts


def base_lr(cfg: TrainConfig, name: str) -> float:
    if name == "program":
        return cfg.optim.lr_program
    if name == "placement":
        return cfg.optim.lr_placement
    if name == "exposure":
        return cfg.optim.lr_exposure
    if name == "pose":
        return cfg.optim.lr_pose
    return gaussian_lrs(cfg)[name]


def identity_exposure(num_views: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[V, 3, 4]`` per-view affine colour corrections ``[A | b]`` at the identity."""
    return torch.eye(3, 4, dtype=dtype).expand(num_views, 3, 4).clone()


def apply_exposure(rgb: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """``rgb [H, W, 3]`` through one view's ``[3, 4]`` correction: ``A rgb + b``."""
    return rgb @ affine[:, :3].T + affine[:, 3]


def corrected_viewmat(viewmat: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``viewmat [4, 4]`` (world->camera) corrected by ``delta [6]`` (rotation vector, translation in
    metres) on the camera side: ``[R(w) | t] @ viewmat``."""
    d = torch.eye(4, dtype=viewmat.dtype, device=viewmat.device)
    d = torch.cat([torch.cat([rotvec_to_rotmat(delta[:3].to(viewmat.dtype)), delta[3:, None].to(viewmat.dtype)], 1),
                   d[3:]], 0)
    return d @ viewmat



def set_learning_rates(cfg: TrainConfig, opts: dict[str, torch.optim.Optimizer], step: int) -> None:
    """Exponential decay to lr_final_ratio at the last step; program/placement frozen before program_start."""
    frac = step / max(cfg.optim.steps - 1, 1)
    for name, opt in opts.items():
        if name in ("program", "placement"):
            lr = base_lr(cfg, name) * cfg.optim.lr_program_final_ratio ** frac
            if step < cfg.optim.program_start:
                lr = 0.0
        else:
            lr = base_lr(cfg, name) * cfg.optim.lr_final_ratio ** frac
        for g in opt.param_groups:
            g["lr"] = lr


class JointTrainer:
    """Holds the joint stage's state (explicit, checkpointable) and runs its steps.

    Args:
        cfg: the run's config.
        data: train frames only.
        fit: program parameters and placement.
        gaussians: the procedural Gaussians.
        generator: the run's CPU generator (view order, Chamfer samples, splits).
    """

    def __init__(self, cfg: TrainConfig, data: TrainData, fit: ProgramFit, gaussians: ProceduralGaussians,
                 generator: torch.Generator):
        self.cfg, self.data, self.fit, self.gaussians, self.generator = cfg, data, fit, gaussians, generator
        self.coarse = downscale_data(data, cfg.optim.downscale)
        # per-train-view colour corrections (only with optim.lr_exposure > 0: clean renders need none)
        self.exposure = (torch.nn.Parameter(identity_exposure(data.num_views, data.images.dtype))
                         if cfg.optim.lr_exposure > 0 else None)
        # per-train-view pose corrections (only with optim.lr_pose > 0: SLAM poses off by centimetres)
        self.pose = (torch.nn.Parameter(torch.zeros(data.num_views, 6, dtype=data.viewmats.dtype))
                     if cfg.optim.lr_pose > 0 else None)
        self.opts = make_optimizers(cfg, gaussians, fit, self.exposure, self.pose)
        self.densifier = Densifier(cfg.densify, len(gaussians))
        self.raster = dataclasses.replace(cfg.raster, render_mode="RGB+ED")  # colours + expected depth
        samples = canonical_surface_samples(gaussians.keys, 4096, torch.Generator().manual_seed(cfg.seed))
        self.surface_reg = SurfaceRegulariser(samples, band=cfg.loss.surface_band)
        self.extent = data.extent
        # a fixed subset of the scan for the per-step Chamfer loss (the KD-tree is rebuilt per call)
        keep = torch.randperm(data.scan.shape[0], generator=torch.Generator().manual_seed(cfg.seed))
        self.chamfer_scan = data.scan[keep[: cfg.loss.chamfer_scan_points].sort().values]
        self.step = 0
        self._held_geometry = None  # see _step_geometry

    # --- checkpoint state ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "gaussians": self.gaussians.state(),
            "fit": self.fit.state(),
            "optimizers": {k: o.state_dict() for k, o in self.opts.items()},
            "densifier": self.densifier.state(),
            "surface_reg": self.surface_reg.state(),
            "exposure": None if self.exposure is None else self.exposure.detach().clone(),
            "pose": None if self.pose is None else self.pose.detach().clone(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        g = state["gaussians"]
        self.gaussians.set_params({k: torch.nn.Parameter(v.clone()) for k, v in g["params"].items()}, g["prim"].clone(),
                                  g.get("copy"))
        self.fit.load_state(state["fit"])
        if self.exposure is not None:
            with torch.no_grad():
                self.exposure.copy_(state["exposure"])
        if self.pose is not None:
            with torch.no_grad():
                if state.get("pose") is not None:
                    self.pose.copy_(state["pose"])
        self.opts = make_optimizers(self.cfg, self.gaussians, self.fit, self.exposure, self.pose)
        for k, o in self.opts.items():
            o.load_state_dict(state["optimizers"][k])
        self.densifier.load_state(state["densifier"])
        self.surface_reg.load_state(state["surface_reg"])
        self.step = int(state["step"])
        self._held_geometry = None

    # --- one step ----------------------------------------------------------------------------------

    def data_at(self, step: int) -> TrainData:
        """The train data of a step: downscaled, or full resolution for the last ``full_res_steps``."""
        o = self.cfg.optim
        return self.data if step >= o.steps - o.full_res_steps else self.coarse

    def render(self, viewmat: torch.Tensor, K: torch.Tensor, geometry: Any | None = None,
               data: TrainData | None = None):
        """Render one camera at ``data``'s size (default full): (RasterResult, WorldGaussians)."""
        geo = self.fit.geometry() if geometry is None else geometry
        data = self.data if data is None else data
        world = self.gaussians.pushforward(geo)
        res = rasterize(world.means, world.opacities, world.sh, viewmat[None], K[None], data.width,
                        data.height, covars=world.covars, sh_degree=self.gaussians.sh_degree,
                        backgrounds=self.data.background.to(world.means.dtype), settings=self.raster)
        return res, world

    def train_step(self) -> tuple[StepStats, torch.Tensor, torch.Tensor]:
        """One optimisation step; returns the stats and the (render, target) pair of the view used."""
        cfg, step = self.cfg, self.step
        data = self.data_at(step)
        set_learning_rates(cfg, self.opts, step)
        v = int(torch.randint(data.num_views, (1,), generator=self.generator))
        lc = cfg.loss
        geometry_trains = ((cfg.optim.lr_program > 0 or cfg.optim.lr_placement > 0)
                           and step >= cfg.optim.program_start)
        geo = self._step_geometry(geometry_trains)
        viewmat = data.viewmats[v] if self.pose is None else corrected_viewmat(data.viewmats[v], self.pose[v])
        res, world = self.render(viewmat, data.Ks[v], geo if lc.gaussian_geometry_grad else geo.detached(), data)
        res.means2d.retain_grad()
        rgb, ed, alpha = res.colors[0, ..., :3], res.colors[0, ..., 3], res.alphas[0, ..., 0]
        if self.exposure is not None:
            rgb = apply_exposure(rgb, self.exposure[v])
        target = data.images[v]
        mask = data.masks[v] if data.masks is not None else None
        depth = data.depths[v] if data.depths is not None else None
        visible = None  # pixels not hidden by an occluder the model does not hold
        if lc.occlusion_margin > 0 and depth is not None:
            visible = ~occluded_pixels(ed, alpha, depth, lc.occlusion_margin)
        keep = visible
        # the mask without its outer mask_erode pixels (a capture's edge mixes object and background)
        inner = erode_mask(mask, lc.mask_erode) if mask is not None else None
        if lc.photometric_region == "mask" and inner is not None:
            keep = inner if keep is None else keep & inner
        photo, l1 = photometric_loss(rgb, target, lc.ssim, keep)
        loss = photo
        zero = photo.new_zeros(())
        l_mask = mask_loss(alpha, mask, visible) if (mask is not None and lc.mask > 0) else zero
        l_depth = zero
        if depth is not None and lc.depth > 0:
            region = mask if visible is None else (visible if mask is None else mask & visible)
            l_depth = depth_loss(ed, depth, region, max_residual=lc.depth_max_residual)
        loss = loss + lc.mask * l_mask + lc.depth * l_depth / self.extent
        if self.exposure is not None and lc.exposure > 0:
            ident = identity_exposure(1, self.exposure.dtype)[0]
            loss = loss + lc.exposure * (self.exposure[v] - ident).square().sum()
        if self.pose is not None and lc.pose > 0:
            loss = loss + lc.pose * self.pose[v].square().sum()
        l_cham = l_msil = l_mdepth = zero
        use_sil = lc.mesh_silhouette > 0 and mask is not None
        use_mdepth = lc.mesh_depth > 0 and depth is not None
        rm = geo.realize() if geometry_trains and (lc.chamfer > 0 or use_sil or use_mdepth) else None
        if rm is not None and lc.chamfer > 0 and data.scan.shape[0] > 0:
            s = sample_surface(rm.verts, rm.faces, cfg.loss.chamfer_samples, self.generator,
                               face_active=rm.face_active)
            l_cham = chamfer_loss(s.points[0], self.chamfer_scan, self.extent, trim=lc.chamfer_trim)
            loss = loss + cfg.loss.chamfer * l_cham
        if rm is not None and (use_sil or use_mdepth):
            # the program's own mesh in this view: its outline and depth have their optimum at the true
            # surfaces (the Gaussians' do not: they blur past the edges)
            mv = render_mesh(rm.verts[0], rm.faces, rm.vert_part, rm.face_part, viewmat, data.Ks[v], data.width,
                             data.height, rm.face_active[0])
            if use_sil:
                if lc.mesh_silhouette_mode == "carve":
                    cover = inner if visible is None else inner & visible
                    l_msil = ((1.0 - mv.alpha) * cover).sum()
                    if depth is not None:  # seen-through space outside the mask
                        free = (depth > 0) & ~mask & (mv.face >= 0) & (depth > mv.depth.detach() + lc.mesh_max_residual)
                        l_msil = l_msil + (mv.alpha * free).sum()
                    l_msil = l_msil / cover.sum().clamp_min(1)
                else:
                    l_msil = mask_loss(mv.alpha, mask, visible)
                loss = loss + lc.mesh_silhouette * l_msil
            if use_mdepth:
                region = (mv.face >= 0) if mask is None else (mv.face >= 0) & mask
                if visible is not None:
                    region = region & visible
                l_mdepth = depth_loss(mv.depth, depth, region, max_residual=lc.mesh_max_residual)
                loss = loss + lc.mesh_depth * l_mdepth / self.extent
        l_surf = zero
        if cfg.loss.surface > 0:
            maps = self._linear_maps(geo)
            l_surf = self.surface_reg(self.gaussians.params["means"], self.gaussians.prim, maps, self.extent,
                                      step)
            loss = loss + cfg.loss.surface * l_surf
        l_scale = scale_loss(world.factors, cfg.loss.max_scale) if cfg.loss.scale > 0 else zero
        loss = loss + cfg.loss.scale * l_scale

        for o in self.opts.values():
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in self.opts.values():
            o.step()
        self.fit.clamp_()

        if cfg.densify.collects(step) and res.means2d.grad is not None:
            self.densifier.accumulate(res.means2d.grad[0], res.radii[0], world.source, data.width, data.height,
                                      world.copy)
            if cfg.densify.due(step):
                self._densify(world)
        self.step += 1
        f = [float(x.detach()) for x in (loss, l1, photo, l_mask, l_depth, l_cham, l_surf, l_scale)]
        stats = StepStats(*f, num_gaussians=len(self.gaussians), mesh_silhouette=float(l_msil.detach()),
                          mesh_depth=float(l_mdepth.detach()))
        return stats, rgb.detach(), target

    def _step_geometry(self, geometry_trains: bool) -> Any:
        """The program's geometry for this step. While nothing can move it (before ``program_start``, or
        with program and placement learning rates 0) and the Gaussians' losses do not reach it
        (``loss.gaussian_geometry_grad`` off), every use is detached and it is the same each step: it
        is evaluated once and held (the program's evaluation is ~7 ms of a step on the CPU)."""
        if geometry_trains or self.cfg.loss.gaussian_geometry_grad:
            self._held_geometry = None
            return self.fit.geometry()
        if self._held_geometry is None:
            self._held_geometry = self.fit.geometry().detached()
        return self._held_geometry

    def _linear_maps(self, geo: Any) -> list[torch.Tensor | None]:
        """Per key, the first active copy's ``A = M S`` (detached)."""
        out: list[torch.Tensor | None] = [None] * len(self.gaussians.keys)
        index = {k: i for i, k in enumerate(self.gaussians.keys)}
        for part in geo.parts:
            i = index.get(part.key)
            if i is None or out[i] is not None or not bool(part.active[0]):
                continue
            out[i] = (part.transform[0, :3, :3] @ part.shape_map[0]).detach()
        return out

    @torch.no_grad()
    def _densify(self, world: Any) -> None:
        n = len(self.gaussians)
        lengths = world.factors.detach().square().sum(-2).amax(-1).sqrt()  # longest world axis per Gaussian
        scale = torch.zeros(n, dtype=lengths.dtype).scatter_reduce(0, world.source, lengths, "amax", include_self=True)
        self.densifier.step(self.gaussians, self.opts, scale, self.generator)
        self.surface_reg.invalidate()

    def run(self, *, on_step: Callable[["JointTrainer", StepStats], None] | None = None,
            logger: Any = None, checkpoint: Callable[[], None] | None = None) -> StepStats | None:
        """Train from ``self.step`` to ``cfg.optim.steps``; log, checkpoint and call ``on_step`` after each step."""
        cfg = self.cfg
        stats = None
        while self.step < cfg.optim.steps:
            stats, render, target = self.train_step()
            if not math.isfinite(stats.loss):
                raise FloatingPointError(f"loss became {stats.loss} at step {self.step}")
            s = self.step
            if logger is not None:
                if s % cfg.log.every == 0 or s == cfg.optim.steps:
                    logger.scalars(s, {k: v for k, v in vars(stats).items()})
                    logger.scalars(s, {n: v for n, v in self.fit.assignment().items()
                                       if n in self.fit.float_names}, prefix="params")
                if cfg.log.image_every and (s % cfg.log.image_every == 0 or s == cfg.optim.steps):
                    logger.image_pair(s, render, target)
                logger.advance(stats.loss, n_gauss=stats.num_gaussians)
            if checkpoint is not None and cfg.log.checkpoint_every and s % cfg.log.checkpoint_every == 0:
                checkpoint()
            if on_step is not None:
                on_step(self, stats)
        return stats
