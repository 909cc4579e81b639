"""LightningDataModule over the preprocessing cache: uint8 memmap -> Train/EvalPreset -> tensors.

Images are decoded, cropped and resized once (the cache); each epoch only augments and standardises,
which is what keeps a 2-core CPU busy with the model rather than with JPEG/BMP decoding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from leukoscope.config import PreprocessConfig, RunConfig
from leukoscope.preprocess.cache import release_pages
from leukoscope.train.balance import oversample_indices, sample_weights

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """Cached images of every split in one memmap, plus the rows that describe them.

    `frame` is aligned with `images` (row i <-> image i) and has the sample-table columns plus `split`
    (train / val / test: this run's assignment), `y` (class index, -1 when unlabelled) and `ok`.
    `preprocess` carries the normalisation mean/std, computed on the training split only.
    """

    images: np.ndarray  # (N, S, S, 3) uint8
    frame: pd.DataFrame
    class_names: list[str]
    preprocess: PreprocessConfig
    cache_dir: Path | None = None
    errors: dict[str, str] = field(default_factory=dict)
    held_out: pd.DataFrame | None = None  # the test split: listed in splits.csv, never loaded for training

    def indices(self, split: str) -> np.ndarray:
        """Rows of `split` whose image decoded (unreadable images are skipped, and counted elsewhere)."""
        mask = (self.frame["split"] == split).to_numpy() & self.frame["ok"].to_numpy(bool)
        return np.flatnonzero(mask)

    def labels(self, split: str) -> np.ndarray:
        return self.frame["y"].to_numpy(np.int64)[self.indices(split)]

    def class_counts(self, split: str = "train") -> list[int]:
        return np.bincount(self.labels(split), minlength=len(self.class_names)).astype(int).tolist()


RELEASE_EVERY = 256  # images read between drops of the memmap's pages from RSS (they stay page-cached)


class CachedCells(Dataset):
    """`(image tensor, class index)` for chosen rows of the cache (rows may repeat: oversampling).

    Pickles without its memmap and reopens it in each worker, so spawned workers do not copy GBs.
    """

    def __init__(
        self, images: np.ndarray, rows: np.ndarray, labels: np.ndarray, transform: Any, source: Path | None
    ) -> None:
        self.images = images
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform
        self.source = source

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        self._reads = getattr(self, "_reads", 0) + 1
        if self._reads % RELEASE_EVERY == 0:
            release_pages(self.images)  # keeps RSS to what training needs, not the whole cache
        return self.transform(np.asarray(self.images[self.rows[i]])), int(self.labels[i])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.source is not None and isinstance(self.images, np.memmap):
            state["images"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.images is None:
            self.images = np.load(self.source, mmap_mode="r")


class CellDataModule(pl.LightningDataModule):
    """Training and validation loaders with the configured class balance."""

    def __init__(self, data: TrainingData, cfg: RunConfig) -> None:
        super().__init__()
        self.data = data
        self.cfg = cfg
        self.train_rows = np.zeros(0, dtype=np.int64)
        self.sampler_weights: np.ndarray | None = None

    def setup(self, stage: str | None = None) -> None:
        rows = self.data.indices("train")
        labels = self.data.frame["y"].to_numpy(np.int64)[rows]
        balance = self.cfg.train.balance
        if balance == "oversample":
            picked = oversample_indices(
                labels, self.data.class_names, self.cfg.train.oversample_to, self.cfg.train.seed
            )
            rows = rows[picked]
        elif balance == "sampler":
            self.sampler_weights = sample_weights(labels, len(self.data.class_names))
        self.train_rows = rows

    def _dataset(self, rows: np.ndarray, train: bool) -> CachedCells:
        from leukoscope.preprocess.presets import EvalPreset, TrainPreset

        pre = self.data.preprocess
        transform = TrainPreset(pre, self.cfg.augment) if train else EvalPreset(pre)
        labels = self.data.frame["y"].to_numpy(np.int64)[rows]
        return CachedCells(self.data.images, rows, labels, transform, self._source())

    def _source(self) -> Path | None:
        return self.data.cache_dir / "images.npy" if self.data.cache_dir is not None else None

    def _loader(self, dataset: Dataset, shuffle: bool, sampler: Any = None) -> DataLoader:
        workers = self.cfg.data.num_workers
        return DataLoader(
            dataset,
            batch_size=self.cfg.train.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        sampler = None
        if self.sampler_weights is not None:
            weights = torch.as_tensor(self.sampler_weights, dtype=torch.double)
            sampler = WeightedRandomSampler(weights, num_samples=len(weights), replacement=True)
        return self._loader(self._dataset(self.train_rows, train=True), shuffle=True, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._dataset(self.data.indices("val"), train=False), shuffle=False)
