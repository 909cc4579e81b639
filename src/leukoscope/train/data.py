"""From a RunConfig to `FitInputs`: read, split without leakage, cache, and training-only statistics.

Every data problem (no images, one class, a subject in two splits) surfaces here as a one-line
`DataError`, before TensorFlow builds anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope.config import PreprocessConfig, RunConfig
from leukoscope.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """Cached images of the fit splits in one memmap, plus the rows that describe them.

    `frame` is aligned with `images` (row i <-> image i) and has the sample-table columns plus `split`
    (train / val: this run's assignment), `y` (class index, -1 when unlabelled) and `ok`.
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


FIT_SPLITS = ("train", "val")  # what training caches and reads; test is listed in splits.csv only


def load_splits(cfg: RunConfig) -> dict[str, pd.DataFrame]:
    from leukoscope.data.readers import read_dataset
    from leukoscope.data.splits import assert_disjoint, make_splits

    if not cfg.data.data:
        raise ConfigError("no training data given", hint="pass --data FOLDER (or data.data in the config)")
    table = read_dataset(cfg.data.data)
    splits = make_splits(table, cfg.data, cfg.train.seed)
    assert_disjoint(splits)
    return splits


def sample_frame(
    splits: dict[str, pd.DataFrame], class_names: list[str], names: tuple[str, ...] = FIT_SPLITS
) -> pd.DataFrame:
    """Splits in one table: `dataset_split` keeps the data's own split, `split` is this run's role."""
    frames = []
    for name in names:
        part = splits.get(name)
        if part is None or part.empty:
            continue
        part = part[part["label"].isin(class_names)]
        frames.append(part.rename(columns={"split": "dataset_split"}).assign(split=name))
    frame = pd.concat(frames, ignore_index=True)
    lookup = {c: i for i, c in enumerate(class_names)}
    frame["y"] = frame["label"].map(lookup).fillna(-1).astype(np.int64)
    return frame


def prepare_data(cfg: RunConfig) -> TrainingData:
    from leukoscope.data.protocols import choose_classes
    from leukoscope.preprocess import PreprocessCache, resolve_normalization

    splits = load_splits(cfg)
    class_names = choose_classes(splits["train"], cfg.data.classes, cfg.data.data, setting="data.classes")
    frame = sample_frame(splits, class_names)  # test is never cached or seen here
    if not (frame["split"] == "val").any():
        raise DataError("no validation images", path=cfg.data.data, hint="pass --val or --val-fold")
    crops = frame["center_crop"].fillna(0).astype(int).tolist() if "center_crop" in frame else None
    pre = _resolved_crop(cfg.preprocess, frame[frame["split"] == "train"])
    cache = PreprocessCache(cfg.data.cache_dir).load(
        frame["path"].tolist(), pre, center_crops=crops, workers=2, progress=cfg.train.progress
    )
    frame["ok"] = np.asarray(cache.ok, dtype=bool)
    _report_unreadable(frame, cache.errors)
    data = TrainingData(cache.array, frame, class_names, pre, cache.directory, dict(cache.errors))
    data.held_out = sample_frame(splits, class_names, ("test",)) if "test" in splits else None
    _check_trainable(data, cfg)
    data.preprocess = resolve_normalization(pre, cache, data.indices("train"))
    return data


def _resolved_crop(pre: PreprocessConfig, train: pd.DataFrame) -> PreprocessConfig:
    """`crop: auto` (the workflow config's) chosen from the training images, as its samples rule does."""
    import dataclasses

    from leukoscope.preprocess.crop import sample_crop

    if pre.crop != "auto":
        return pre
    crop, reason = sample_crop(train, pre.black_threshold)
    log.info("%s", reason)
    return dataclasses.replace(pre, crop=crop)


def fit_inputs_from_config(cfg: RunConfig) -> tuple[Any, TrainingData]:
    """(FitInputs, TrainingData): the training rows (oversampled when asked), validation, statistics."""
    from leukoscope.data.protocols import choose_positive
    from leukoscope.preprocess.balance import oversample_indices, resolve_target
    from leukoscope.train.inputs import FitInputs
    from leukoscope.train.tfdata import ImageSource

    data = prepare_data(cfg)
    y = data.frame["y"].to_numpy(np.int64)
    rows = data.indices("train")
    if cfg.train.balance == "oversample":
        target = cfg.train.oversample_to
        if isinstance(target, str):  # auto / balance: resolved against this data, as the workflow does
            counts = np.bincount(y[rows], minlength=len(data.class_names)).tolist()
            target, why = resolve_target(target, data.class_names, counts, protocol="heldout")
            log.info("oversampling to %s: %s", target, why)
        rows = rows[oversample_indices(y[rows], data.class_names, target, cfg.train.seed)]
    val_rows = data.indices("val")
    inputs = FitInputs(
        train=ImageSource.from_array(data.images, rows, y[rows]),
        val=ImageSource.from_array(data.images, val_rows, y[val_rows]),
        class_names=data.class_names,
        preprocess=data.preprocess,
        positive_class=choose_positive(data.class_names, cfg.data.positive_class, "data.positive_class"),
        fingerprint=data.cache_dir.name if data.cache_dir is not None else "",
        data_summary=data_summary(data),
    )
    return inputs, data


def _report_unreadable(frame: pd.DataFrame, errors: dict[str, str]) -> None:
    bad = frame[~frame["ok"]]
    if bad.empty:
        return
    per_split = ", ".join(f"{k} {v}" for k, v in bad["split"].value_counts().items())
    example = next(iter(errors.values()), "")
    log.warning("skipping %d unreadable images (%s); e.g. %s", len(bad), per_split, example)


def _check_trainable(data: TrainingData, cfg: RunConfig) -> None:
    counts = data.class_counts("train")
    if sum(counts) == 0:
        raise DataError("no readable training images", path=cfg.data.data, hint="run `leukoscope data check`")
    empty = [c for c, n in zip(data.class_names, counts, strict=True) if n == 0]
    if empty:
        raise DataError(f"class {empty[0]!r} has no readable training images", path=cfg.data.data)
    if not len(data.indices("val")):
        raise DataError("the validation split has no readable images", path=cfg.data.data)


def data_summary(data: TrainingData) -> dict[str, Any]:
    """Counts per split and class, subjects, and whether subjects were known (the model card's record)."""
    frame = data.frame
    out: dict[str, Any] = {"class_names": data.class_names, "unreadable": int((~frame["ok"]).sum())}
    for split, part in frame.groupby("split", sort=False):
        ok = part[part["ok"]]
        out[str(split)] = {
            "images": len(ok),
            "per_class": {str(k): int(v) for k, v in ok["label"].value_counts().sort_index().items()},
            "subjects": int(ok["subject"].nunique()),
            "subjects_known": bool(ok["subject_known"].all()) if len(ok) else False,
        }
    return out


def splits_table(data: TrainingData) -> pd.DataFrame:
    """Which file went to which split (test files too, though training never reads them)."""
    frames = [data.frame] + ([data.held_out] if data.held_out is not None else [])
    table = pd.concat(frames, ignore_index=True)
    columns = ["path", "label", "subject", "subject_known", "dataset_split", "split", "ok"]
    return table[[c for c in columns if c in table.columns]]


def write_splits(path: Path, data: TrainingData) -> None:
    from leukoscope._io import atomic_path

    with atomic_path(path) as tmp:
        splits_table(data).to_csv(tmp, index=False)
