"""``splat train --scene chair``: fit a shape program and its procedural Gaussians to a scene.

``--scene`` picks a preset (:mod:`splat.presets`) for a shipped scene, or takes a path to any scene
folder; every field of the preset can be overridden (``--optim.steps 500 --gaussians.sh-degree 1``);
``--resume`` continues the latest (or ``--run NAME``) run of the scene from its last checkpoint.
Results: ``outputs/<scene>/<run>/`` (config.json, metrics.json, assets/, renders/, tb/ for TensorBoard).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from splat.errors import SplatError


def _scene_arg(argv: list[str]) -> str:
    for i, a in enumerate(argv):
        if a == "--scene" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--scene="):
            return a.split("=", 1)[1]
    return "chair"


def parse_config(argv: list[str], prog: str = "splat train"):
    """The preset named by ``--scene`` with the command line's overrides applied, validated."""
    import tyro

    from splat.config import TrainConfig, validate_config
    from splat.presets import preset

    base = preset(_scene_arg(argv))
    try:
        cfg = tyro.cli(TrainConfig, default=base, args=argv, prog=prog, description=__doc__.split("\n\n")[0])
    except SplatError as err:  # a settings class that checks itself while tyro builds it
        raise SplatError(err.message, file=err.file, field=_option_of(err.field)) from None
    return validate_config(cfg)


def _option_of(name: str | None) -> str | None:
    """``eps2d`` -> ``--raster.eps2d``: the command-line option of a field a nested section rejected
    (the section that has a field of that name; the bare name when none or several do)."""
    import dataclasses

    from splat.config import TrainConfig

    if not name:
        return name
    hits = []

    def walk(cls, prefix):
        for f in dataclasses.fields(cls):
            sub = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if dataclasses.is_dataclass(sub):
                walk(type(sub), f"{prefix}{f.name}.")
            elif f.name == name and prefix:
                hits.append(prefix + f.name)

    walk(TrainConfig, "")
    return "--" + hits[0].replace("_", "-") if len(hits) == 1 else name


def summary(result: Any) -> dict[str, Any]:
    """The one-line JSON summary printed at the end of a run."""
    def r(x: Any, digits: int) -> float | None:  # the report (splat.eval/1) has null for undefined values
        return None if x is None else round(x, digits)

    out = {"run": str(result.run_dir.root), "seconds": round(result.seconds, 1)}
    test = result.metrics.get("test") or {}
    if test.get("num_views"):
        out["test_psnr"] = r(test.get("psnr"), 2)
        out["test_ssim"] = r(test.get("ssim"), 4)
    pe = result.metrics.get("param_errors")
    if pe:
        out["discrete_structure_recovered"] = pe["discrete_structure_recovered"]
        out["continuous_max_err_pct"] = r(pe["continuous_max_pct"], 2)
    return out


def main(argv: list[str] | None = None, prog: str = "splat train") -> Any:
    from splat.train import train

    cfg = parse_config(list(sys.argv[1:] if argv is None else argv), prog=prog)
    result = train(cfg)
    print(json.dumps(summary(result)))
    return result
