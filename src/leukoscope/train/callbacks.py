"""Small Lightning plugins: atomic checkpoint writes and an images/s readout on the progress bar."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from leukoscope._io import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file beside it, then os.replace it into place.

    A run killed mid-write (Ctrl-C, kill -9, power loss) keeps the previous `last.ckpt` intact, so
    `--resume` always finds a loadable checkpoint.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class Throughput(pl.Callback):
    """Training images per second (all ranks), on the progress bar and, per epoch, in the logs."""

    def __init__(self, smoothing: float = 0.8) -> None:
        self.smoothing = smoothing
        self._rate: float | None = None
        self._last = 0.0
        self._epoch_start = 0.0
        self._epoch_images = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = self._last = time.perf_counter()
        self._epoch_images = 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        images = len(batch[0]) * trainer.world_size
        self._epoch_images += images
        now = time.perf_counter()  # batch end to batch end: loading and augmentation count too
        rate, self._last = images / max(now - self._last, 1e-9), now
        self._rate = rate if self._rate is None else self.smoothing * self._rate + (1 - self.smoothing) * rate
        pl_module.log("img/s", self._rate, prog_bar=True, on_step=True, on_epoch=False, logger=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = max(time.perf_counter() - self._epoch_start, 1e-9)
        pl_module.log(
            "train/images_per_s", self._epoch_images / seconds, on_step=False, on_epoch=True, sync_dist=True
        )
