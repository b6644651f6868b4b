"""Fit a shape program and its procedural Gaussians to a scene: ``python train.py --scene chair``.

``--scene`` picks a preset from the registry in ``configs/`` (or takes a path to any scene folder);
every field of the preset can be overridden (``--optim.steps 500 --gaussians.sh-degree 1``);
``--resume`` continues the latest (or ``--run NAME``) run of the scene from its last checkpoint.
Results: ``outputs/<scene>/<run>/`` (config.json, metrics.json, assets/, renders/, tb/ for TensorBoard).
"""

from __future__ import annotations

import json
import sys


def _scene_arg(argv: list[str]) -> str:
    for i, a in enumerate(argv):
        if a == "--scene" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--scene="):
            return a.split("=", 1)[1]
    return "chair"


def parse_config(argv: list[str]):
    """The preset named by ``--scene`` with the command line's overrides applied, validated."""
    import tyro

    import configs
    from splat.train import TrainConfig, validate_config

    base = configs.preset(_scene_arg(argv))
    cfg = tyro.cli(TrainConfig, default=base, args=argv, description=__doc__.split("\n\n")[0])
    return validate_config(cfg)


def main(argv: list[str] | None = None) -> None:
    from splat.train import train

    cfg = parse_config(list(sys.argv[1:] if argv is None else argv))
    result = train(cfg)
    summary = {"run": str(result.run_dir.root), "seconds": round(result.seconds, 1)}
    test = result.metrics.get("test", {})
    if "psnr" in test:
        summary["test_psnr"] = round(test["psnr"], 2)
        summary["test_ssim"] = round(test["ssim"], 4)
    pe = result.metrics.get("param_errors")
    if pe:
        summary["discrete_structure_recovered"] = pe["discrete_structure_recovered"]
        summary["continuous_max_err_pct"] = round(pe["continuous_max_pct"], 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    from splat.cli import run_cli

    run_cli(main)
