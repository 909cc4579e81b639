"""`FitInputs` from the workflow's files: augmented shards for training, a cropped split for validation.

Nothing is loaded into memory: shards and crops are memory-mapped and `ImageSource` reads one batch of
rows at a time. The fingerprint (part of the resume key) is the identity of every input file, so a
training job restarted on the same files resumes, and one whose inputs were regenerated starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope.config import PreprocessConfig
from leukoscope.errors import DataError
from leukoscope.train.input import ImageSource
from leukoscope.train.inputs import FitInputs


def fingerprint(paths: Sequence[str | Path]) -> str:
    """Identity of files (name, size, mtime): what changes when a rule rewrites them."""
    digest = hashlib.sha256()
    for path in paths:
        st = os.stat(path)
        digest.update(f"{Path(path).name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def training_source(shards: Sequence[str | Path], index: pd.DataFrame) -> ImageSource:
    """Every sample of the augmented set (index columns shard, row, y), shards memory-mapped."""
    arrays = [np.load(str(s), mmap_mode="r") for s in shards]
    for k, array in enumerate(arrays):
        expected = int((index["shard"] == k).sum())
        if len(array) != expected:
            raise DataError(f"shard {k} holds {len(array)} images, its index {expected}", path=shards[k])
    pairs = index[["shard", "row"]].to_numpy(np.int64)
    return ImageSource(arrays, pairs, index["y"].to_numpy(np.int64))


def validation_source(images: str | Path, rows: pd.DataFrame) -> ImageSource:
    """Rows (`row`, `y`, `ok`) of one cropped split; unreadable and unlabelled images are left out."""
    keep = rows[rows["ok"].astype(bool) & (rows["y"] >= 0)]
    if keep.empty:
        raise DataError("the validation split has no readable labelled images", path=images)
    array = np.load(str(images), mmap_mode="r")
    return ImageSource.from_array(array, keep["row"].to_numpy(np.int64), keep["y"].to_numpy(np.int64))


def load_fit_inputs(
    *,
    shards: Sequence[str | Path],
    index_path: str | Path,
    val_images: str | Path,
    val_rows: pd.DataFrame,
    stats_path: str | Path,
    samples_summary: dict[str, Any],
    preprocess: PreprocessConfig,
) -> FitInputs:
    """The FitInputs of one train job; `preprocess` gets the stats stage's mean/std."""
    import dataclasses

    index = pd.read_parquet(index_path)
    stats = json.loads(Path(stats_path).read_text(encoding="utf-8"))
    class_names = list(samples_summary["class_names"])
    pre = dataclasses.replace(preprocess, mean=tuple(stats["mean"]), std=tuple(stats["std"]))
    train = training_source(shards, index)
    val = validation_source(val_images, val_rows)
    counts = train.class_counts(len(class_names))
    val_counts = val.class_counts(len(class_names))
    summary = {
        "class_names": class_names,
        "train": {
            "images": len(train),
            "per_class": dict(zip(class_names, counts, strict=True)),
            "augmented": int(index["augmented"].sum()) if "augmented" in index else 0,
        },
        "val": {"images": len(val), "per_class": dict(zip(class_names, val_counts, strict=True))},
        "stats": {"images": stats.get("images"), "n": stats.get("n")},
        "protocol": samples_summary.get("protocol"),
    }
    files = [*shards, index_path, val_images, stats_path]
    return FitInputs(
        train=train,
        val=val,
        class_names=class_names,
        preprocess=pre,
        positive_class=samples_summary.get("positive_class"),
        fingerprint=fingerprint(files),
        data_summary=summary,
    )


def class_counts_for(inputs: FitInputs, index_path: str | Path, counts_from: str) -> list[int]:
    """Class counts for weighted BCE: of the augmented set, or of the original images it was drawn from
    (each source image once: before oversampling, the paper's 7,272 ALL / 3,389 HEM on C-NMC)."""
    if counts_from == "augmented":
        return [int(c) for c in inputs.train.class_counts(len(inputs.class_names))]
    index = pd.read_parquet(index_path)
    originals = index.drop_duplicates("source")
    counts = np.bincount(originals["y"].to_numpy(np.int64), minlength=len(inputs.class_names))
    return [int(c) for c in counts]
