"""Training logs: TensorBoard scalars and render/target image pairs, and a tqdm bar with the loss."""

from __future__ import annotations

from pathlib import Path

import torch


class TrainLogger:
    """TensorBoard writer (created lazily under ``tb_dir``) plus an optional tqdm progress bar.

    Args:
        tb_dir: folder of the event files.
        total: number of steps of the bar.
        initial: step the bar starts at (resume).
        progress: show the bar.
    """

    def __init__(self, tb_dir: Path, *, total: int, initial: int = 0, progress: bool = True):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(tb_dir))
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True, leave=True)

    def scalars(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", float(value), step)

    def image_pair(self, step: int, render: torch.Tensor, target: torch.Tensor, tag: str = "train/render_target") -> None:
        """Log ``render`` and ``target`` ([H, W, 3] in [0, 1]) side by side."""
        pair = torch.cat([render.detach().clamp(0, 1), target.detach().clamp(0, 1)], dim=1)
        self.writer.add_image(tag, pair.cpu(), step, dataformats="HWC")

    def advance(self, loss: float, n: int = 1, **extra: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", **{k: f"{v:.3g}" for k, v in extra.items()})
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.writer.flush()
        self.writer.close()
