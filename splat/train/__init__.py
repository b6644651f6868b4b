"""The joint trainer: structure search, joint Gaussian + program training, evaluation, run folders.

Public API:

- :func:`train` (trainer.py): run or resume a run -> :class:`TrainResult`. Its configuration is
  :class:`splat.config.TrainConfig` (re-exported here with :func:`validate_config`,
  :func:`save_config` / :func:`load_config`); presets per scene: :mod:`splat.presets`.
- :class:`JointTrainer` (joint.py), :class:`TrainData` / :func:`train_data` (data.py: train frames
  only), logging (logger.py). Stage (c) is :func:`splat.evaluate.evaluate_asset`; run folders and
  checkpoints: :mod:`splat.runs`; the program's trainable state: :class:`splat.program.ProgramFit`.
- :func:`splat.train.baseline.train_baseline` (baseline.py): the unconstrained 3DGS baseline (the same
  JointTrainer, one identity pseudo-primitive, no program), scored like a run's test views.
"""

from splat.config import TrainConfig, load_config, save_config, validate_config
from splat.train.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_config", "save_config", "train", "validate_config"]
