"""The workflow's `train` rule (`train_stage`): `FitInputs` from its files, augmented shards for training,
a cropped split for validation, then the same `fit_inputs` as `leukoscope train`.

Nothing is loaded into memory: shards and crops are memory-mapped and `ImageSource` reads one batch of
rows at a time. The fingerprint (part of the resume key) is the identity of every input file, so a
training job restarted on the same files resumes, and one whose inputs were regenerated starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leukoscope.config import PreprocessConfig
from leukoscope.errors import DataError
from leukoscope.train.inputs import FitInputs
from leukoscope.train.tfdata import ImageSource

log = logging.getLogger(__name__)


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


def train_stage(
    settings: dict[str, Any],
    *,
    shards: Sequence[str | Path],
    index: str | Path,
    val_images: str | Path,
    val_index: str | Path,
    stats: str | Path,
    samples_summary: str | Path,
    fold: int | None,
    model_out: str | Path,
    state_dir: str | Path,
    keras_home: str | Path | None = None,
    gpu: int | None = None,
    threads: int = 1,
) -> Path:
    """Train one backbone x loss x seed (`settings`: a RunConfig as a dict) on the workflow's files; the
    model folder (`model_out`'s). The resume state lives in `state_dir`, outside the rule's outputs
    (Snakemake deletes those when a job fails), so a restarted job continues from its last epoch.

    `keras_home`: where the `weights` rule put the ImageNet files; set before Keras is imported.
    """
    if keras_home is not None:
        os.environ["KERAS_HOME"] = str(Path(keras_home).absolute())
    from leukoscope.config import RunConfig
    from leukoscope.data.samples import scope_rows
    from leukoscope.train.fit import fit_inputs

    settings = json.loads(json.dumps(dict(settings)))  # a deep, plain copy
    settings["train"].update(state_dir=str(state_dir), progress=False)
    summary = json.loads(Path(samples_summary).read_text(encoding="utf-8"))
    settings["preprocess"]["crop"] = summary["preprocess"]["crop"]  # `auto` resolved by the samples rule
    counts_from = settings["loss"].pop("class_counts_from", None)
    out = Path(model_out).parent
    cfg = RunConfig.from_dict(settings | {"out": str(out)})
    inputs = load_fit_inputs(
        shards=list(shards),
        index_path=index,
        val_images=val_images,
        val_rows=scope_rows(pd.read_parquet(val_index), "val", fold),
        stats_path=stats,
        samples_summary=summary,
        preprocess=cfg.preprocess,
    )
    if counts_from is not None:  # weighted BCE's W_i = N / (c n_i): the original or the augmented counts
        cfg.loss.params["class_counts"] = class_counts_for(inputs, index, counts_from)
    where = f"GPU {gpu}" if gpu is not None else f"CPU, {threads} threads"
    log.info(
        "train %s / %s / seed %s: %d samples, %d val (%s)",
        cfg.model.backbone, cfg.loss.name, cfg.train.seed, len(inputs.train), len(inputs.val), where,
    )  # fmt: skip
    if counts_from is not None:
        counts = cfg.loss.params["class_counts"]
        log.info("%s: class counts of the %s training set %s", cfg.loss.name, counts_from, counts)
    fit_inputs(inputs, cfg, out)
    _log_result(json.loads((out / "metrics.json").read_text(encoding="utf-8")))
    return out


def _log_result(metrics: dict[str, Any]) -> None:
    """The best epoch, and where the job's time went (also in the report's timing table)."""
    f1 = metrics.get("weighted_f1", float("nan"))
    log.info("best epoch %s: validation weighted F1 %.4f", metrics.get("epoch"), f1)
    timing = metrics.get("timing")
    if timing:
        steady = timing.get("steady_images_per_s")
        log.info(
            "timing: first step (trace / compile) %.1f s, steady %s images/s over %s epoch(s), fit %.0f s",
            timing["first_step_s"], "n/a" if steady is None else f"{steady:.1f}", timing["epochs_timed"],
            timing["fit_s"],
        )  # fmt: skip
