"""The joint trainer: structure search, joint Gaussian + program training, evaluation, run folders.

Public API:

- :class:`TrainConfig` and its nested dataclasses (:mod:`splat.config`), :func:`validate_config`,
  :func:`save_config` / :func:`load_config` (config.json round trip).
- :func:`train` (trainer.py): run or resume a run -> :class:`TrainResult`.
- :class:`JointTrainer` (joint.py), :func:`evaluate` (evaluate.py),
  :class:`TrainData` / :func:`train_data` (data.py: train frames only), logging (logger.py). Run folders
  and checkpoints: :mod:`splat.runs`; the program's trainable state: :class:`splat.program.ProgramFit`.
"""

from splat.config import (
    DensifyConfig,
    EvalConfig,
    GaussianConfig,
    LogConfig,
    LossConfig,
    OptimConfig,
    SearchConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
    validate_config,
)
from splat.train.trainer import TrainResult, train

__all__ = [
    "DensifyConfig",
    "EvalConfig",
    "GaussianConfig",
    "LogConfig",
    "LossConfig",
    "OptimConfig",
    "SearchConfig",
    "TrainConfig",
    "TrainResult",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
    "train",
    "validate_config",
]
