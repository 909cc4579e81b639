"""The workflow's preprocessing artifacts: cropped splits, the augmented training set, its statistics.

- `crop_images`: one split's images, decoded, cropped to the cell, resized: one (N, S, S, 3) uint8 `.npy`
  (memory-mappable) whose row i is the sample sheet's row i of that split; unreadable images stay black
  with `ok` False and their reason in the index.
- `augment_set`: the training rows oversampled to per-class targets (the paper: 10,778 HEM + 9,272 ALL =
  20,050), every extra copy randomly flipped, rotated and CLAHE-enhanced from its own seeded generator,
  shuffled and written as a fixed number of shards (not one file per sample).
- `shard_statistics`: per-channel mean/std over shards, streamed, exact (float64 sums).

Every file is written to a temporary name and renamed when complete, so an interrupted job never leaves
a file that looks finished. The rules that read and write these files: `preprocess.stages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope._io import atomic_path
from leukoscope.config import PreprocessConfig
from leukoscope.errors import DataError

CHUNK = 64  # images decoded per task


def write_npy(path: str | Path, shape: tuple[int, ...], fill: Any) -> Path:
    """Create `path` as a uint8 .npy of `shape`, let `fill(array)` write it, then rename it into place."""
    path = Path(path)
    with atomic_path(path, keep_suffix=True) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        fill(array)
        array.flush()
        del array
    return path


def crop_images(rows: pd.DataFrame, cfg: PreprocessConfig, out: str | Path, workers: int = 1) -> pd.DataFrame:
    """Preprocess `rows` (sample-sheet rows of one split, in `row` order) into `out`; the index table."""
    from leukoscope.data.images import read_image
    from leukoscope.preprocess.pipeline import check_config, preprocess_image

    check_config(cfg)
    rows = rows.sort_values("row").reset_index(drop=True)
    paths = rows["path"].tolist()
    crops = rows["center_crop"].astype(int).tolist() if "center_crop" in rows else [0] * len(paths)
    ok = np.zeros(len(paths), dtype=bool)
    errors = [""] * len(paths)
    size = cfg.image_size

    def work(array: np.ndarray, start: int) -> None:
        for i in range(start, min(start + CHUNK, len(paths))):
            try:
                array[i] = preprocess_image(read_image(paths[i], center_crop=crops[i]), cfg)
                ok[i] = True
            except DataError as exc:
                errors[i] = exc.one_line()

    def fill(array: np.ndarray) -> None:
        starts = range(0, len(paths), CHUNK)
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:  # OpenCV releases the GIL while decoding/resizing
                list(pool.map(lambda s: work(array, s), starts))
        else:
            for s in starts:
                work(array, s)

    write_npy(out, (len(paths), size, size, 3), fill)
    keep = [
        c
        for c in ("path", "label", "y", "subject", "subject_known", "dataset_split", "fold", "inner")
        if c in rows
    ]
    return rows[keep].assign(row=np.arange(len(rows)), ok=ok, error=errors)


def augmentation_plan(
    labels: np.ndarray,
    class_names: Sequence[str],
    target: dict[str, int] | None,
    seed: int,
    keep_originals: bool = True,
    oversample: bool = True,
) -> pd.DataFrame:
    """Which source row becomes which sample, and whether it is augmented; shuffled, seeded.

    `source` indexes `labels`; without oversampling every row appears once, unaugmented.
    """
    from leukoscope.preprocess.balance import oversample_indices

    labels = np.asarray(labels, dtype=np.int64)
    picks = oversample_indices(labels, class_names, target, seed) if oversample else np.arange(len(labels))
    order = np.random.default_rng([int(seed), 11]).permutation(len(picks))
    picks = picks[order]
    seen = pd.Series(picks).duplicated(keep="first").to_numpy()
    augmented = seen if keep_originals else np.ones(len(picks), dtype=bool)
    if not oversample:
        augmented = np.zeros(len(picks), dtype=bool)
    return pd.DataFrame({"source": picks, "y": labels[picks], "augmented": augmented})


def augment_set(
    images: np.ndarray,
    plan: pd.DataFrame,
    augment: Any,
    seed: int,
    outs: Sequence[str | Path],
) -> pd.DataFrame:
    """Write the plan's samples into `len(outs)` shards (near-equal, in plan order); the shard index.

    `augment` is a `RandomAugment`; sample j draws from `sample_rng(seed, j)` whatever shard it lands in.
    """
    from leukoscope.preprocess.augment import sample_rng

    n = len(plan)
    bounds = np.linspace(0, n, len(outs) + 1).round().astype(int)
    source = plan["source"].to_numpy()
    augmented = plan["augmented"].to_numpy(bool)
    shape = tuple(images.shape[1:])
    shard_of = np.zeros(n, dtype=np.int64)
    row_of = np.zeros(n, dtype=np.int64)
    for k, out in enumerate(outs):
        lo, hi = int(bounds[k]), int(bounds[k + 1])

        def fill(array: np.ndarray, lo: int = lo, hi: int = hi) -> None:
            for j in range(lo, hi):
                image = np.asarray(images[source[j]])
                array[j - lo] = augment(image, sample_rng(seed, j)) if augmented[j] else image

        write_npy(out, (hi - lo, *shape), fill)
        shard_of[lo:hi], row_of[lo:hi] = k, np.arange(hi - lo)
    return plan.assign(shard=shard_of, row=row_of)


def shard_statistics(
    arrays: Sequence[np.ndarray],
) -> tuple[tuple[float, float, float], tuple[float, float, float], int]:
    """(mean, std, images) per RGB channel in [0, 1] units over every row of every array."""
    from leukoscope.preprocess.normalize import compute_mean_std

    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for array in arrays:
        if not len(array):
            continue
        mean, std = (np.asarray(v, dtype=np.float64) for v in compute_mean_std(array))
        weight = len(array)
        total += mean * weight
        total_sq += (std**2 + mean**2) * weight
        count += weight
    if count == 0:
        raise DataError("no training images to compute mean/std from", hint="check the augment stage")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return _triple(mean), _triple(std), count


def _triple(v: np.ndarray) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])
