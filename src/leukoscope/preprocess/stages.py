# ruff: noqa: RUF009  (`opt` returns a dataclasses.field)
"""The workflow's data and preprocessing rules, one function each: files in, files out, a log line.

- `samples_stage` (rule `samples`): the sample sheet, the data check and what the data decide of the
  crop and augment stages (`resolve_stage_settings`).
- `crop_stage` (rule `crop`): one part of the sheet cropped into one `.npy` and its index.
- `augment_stage` (rule `augment`): a chain's training rows oversampled, augmented, in shards.
- `stats_stage` (rule `stats`): the training set's per-channel mean / std.

The arrays themselves are made in `preprocess.artifacts`; here is only what reads the rules' inputs,
resolves their settings and writes their outputs (atomically), so the scripts and tests call one function.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from leukoscope._io import atomic_path, read_json, write_json
from leukoscope.config import AugmentConfig, TrainConfig, opt
from leukoscope.errors import DataError

log = logging.getLogger(__name__)
SHEET_SETTINGS = (  # the samples rule's settings that `build_sample_sheet` takes
    "protocol", "folds", "val_fold", "val_fraction", "inner_fraction", "classes", "positive_class",
    "limit_per_class", "seed",
)  # fmt: skip


_AUG, _TRAIN = AugmentConfig(), TrainConfig()  # the offline stage draws as the online one does
TargetRule = Literal["auto", "balance"]
StatsImages = Literal["augmented", "original"]


@dataclass
class OfflineAugmentConfig:
    """The offline augmentation stage: the oversampled, augmented training set (the paper's 20,050)."""

    enabled: bool = opt(True, "false: the training set as cropped, no oversampling", paper=True)
    target: TargetRule | dict[str, int] | None = opt(
        "auto",
        "samples per class after oversampling: auto (the paper's 10,778 HEM / 9,272 ALL on C-NMC under "
        "paper / heldout, else balance), balance (every class to the largest's count; null too), or a "
        "{class: count} mapping naming every class",
        paper=True,
    )
    total: int | None = opt(
        None, "balance / auto without the paper's counts: this many samples in all", minimum=2
    )
    keep_originals: bool = opt(
        True, "each image's first copy is kept as it is; only extra copies are augmented"
    )
    hflip: bool = opt(_AUG.hflip, "random horizontal flips", paper=True)
    vflip: bool = opt(_AUG.vflip, "random vertical flips", paper=True)
    rotation: float = opt(_AUG.rotation, "random rotation, degrees in [-r, r]", minimum=0.0)
    clahe_p: float = opt(_AUG.clahe_p, "probability of CLAHE", paper=True, minimum=0.0, maximum=1.0)
    shards: int = opt(8, "number of .npy shards the set is written as", paper=False, minimum=1)
    seed: int = opt(_TRAIN.seed, "seed of the oversampling and the augmentation draws")


@dataclass
class StatsConfig:
    images: StatsImages = opt(
        "augmented", "mean/std over the augmented training set (what the network sees) or the originals"
    )


def samples_stage(
    dataset_record: str | Path,
    settings: Mapping[str, Any],
    augment: Mapping[str, Any],
    sheet_out: str | Path,
    summary_out: str | Path,
    check_out: str | Path,
    workers: int = 1,
) -> dict[str, Any]:
    """The sample sheet (parquet), its summary and the data check of the dataset `dataset_record` names.

    The first step that decodes every image: unreadable files stop the run here, listed in `check_out`
    (written even then), unless `settings['skip_unreadable']`. The summary it returns and writes also
    says how `crop: auto` and `augment.target` resolved (downloads are only readable from here on).
    """
    from leukoscope.data.check import check_dataset
    from leukoscope.data.samples import build_sample_sheet

    path = Path(read_json(dataset_record)["path"])
    s = dict(settings)
    sheet = build_sample_sheet(path, **{k: s[k] for k in SHEET_SETTINGS})
    report = check_dataset(path, verify_checksums=bool(s["verify"]), workers=workers)
    write_json(check_out, report.to_dict())
    unreadable = {p["path"] for p in report.problems if p["kind"] == "unreadable"}
    notes = sheet.drop_unreadable(unreadable, bool(s["skip_unreadable"]), check_out)
    resolved = resolve_stage_settings(sheet, dict(augment), s["crop"], s["black_threshold"])
    with atomic_path(sheet_out) as tmp:
        sheet.frame.to_parquet(tmp, index=False)
    summary = sheet.summary() | resolved
    summary["data_check"] = {"problems": report.problem_counts(), "usable": report.usable}
    summary["notes"] = [*summary["notes"], *notes]
    write_json(summary_out, summary)
    counts = {k: v["images"] for k, v in summary["parts"].items()}
    log.info("samples: %s, classes %s; %s", counts, sheet.class_names, "; ".join(summary["notes"]))
    log.info("crop: %s (%s)", resolved["preprocess"]["crop"], resolved["preprocess"]["reason"])
    log.info("augment target: %s (%s)", resolved["augment"]["target"], resolved["augment"]["reason"])
    return summary


def resolve_stage_settings(
    sheet: Any, augment: dict[str, Any], crop: str, black_threshold: int
) -> dict[str, Any]:
    """What the data decide of the crop and augment stages, said once in the sample summary.

    `crop: auto` -> cell or center from a sample of the training images' backgrounds; `augment.target`
    checked against the classes and resolved on the whole training pool (each chain's augment job
    resolves it again on its own training images: balance counts follow the chain's class sizes).
    """
    from leukoscope.preprocess.balance import resolve_target
    from leukoscope.preprocess.crop import sample_crop

    train = sheet.part("train" if sheet.protocol != "cv" else "pool")
    if crop == "auto":
        crop, reason = sample_crop(train, black_threshold)
    else:
        reason = f"preprocess.crop {crop} as configured"
    counts = [int((train["y"] == i).sum()) for i in range(len(sheet.class_names))]
    target, why = resolve_target(
        augment.get("target"), sheet.class_names, counts, protocol=sheet.protocol, total=augment.get("total")
    )
    if not augment.get("enabled", True):
        target, why = dict(zip(sheet.class_names, counts, strict=True)), "augment.enabled false: as cropped"
    return {
        "preprocess": {"crop": crop, "reason": reason},
        "augment": {
            "target": target,
            "reason": why,
            "training_images": dict(zip(sheet.class_names, counts, strict=True)),
        },
    }


def crop_stage(
    sheet_path: str | Path,
    summary_path: str | Path,
    part: str,
    settings: Mapping[str, Any],
    images_out: str | Path,
    index_out: str | Path,
    workers: int = 1,
) -> pd.DataFrame:
    """Crop the sheet's `part` into `images_out` with `settings` (the `preprocess` section; its `crop`
    as the samples stage resolved it); the index, also written to `index_out`."""
    from leukoscope.config import PreprocessConfig
    from leukoscope.data.samples import read_sample_sheet
    from leukoscope.preprocess.artifacts import crop_images

    sheet = read_sample_sheet(sheet_path)
    crop = read_json(summary_path)["preprocess"]["crop"]
    cfg = PreprocessConfig(**(dict(settings) | {"crop": crop}))
    index = crop_images(sheet[sheet["part"] == part], cfg, images_out, workers=workers)
    with atomic_path(index_out) as tmp:
        index.to_parquet(tmp, index=False)
    bad = int((~index["ok"]).sum())
    log.info(
        "crop %s: %d images at %d px (%s), %d unreadable", part, len(index), cfg.image_size, cfg.crop, bad
    )
    return index


def augment_stage(
    crop_images_path: str | Path,
    crop_index_path: str | Path,
    summary_path: str | Path,
    fold: int | None,
    settings: Mapping[str, Any],
    shards_out: Sequence[str | Path],
    index_out: str | Path,
) -> pd.DataFrame:
    """The chain's (`fold`'s; None outside cv) readable training rows oversampled to `settings['target']`
    resolved on their own class counts, extra copies augmented, written as `shards_out`; the index."""
    from leukoscope.data.samples import scope_rows
    from leukoscope.preprocess.artifacts import augment_set, augmentation_plan
    from leukoscope.preprocess.augment import RandomAugment
    from leukoscope.preprocess.balance import resolve_target

    a = dict(settings)
    classes = read_json(summary_path)["class_names"]
    index = pd.read_parquet(crop_index_path)
    train = readable_training_rows(scope_rows(index, "train", fold), classes, crop_index_path)
    labels = train["y"].to_numpy(np.int64)
    counts = np.bincount(labels, minlength=len(classes)).tolist()
    target, why = resolve_target(a["target"], classes, counts, protocol=a["protocol"], total=a["total"])
    plan = augmentation_plan(labels, classes, target, a["seed"], a["keep_originals"], a["enabled"])
    plan["source"] = train["row"].to_numpy(np.int64)[plan["source"].to_numpy()]  # rows of the crop file
    plan["label"] = [classes[i] for i in plan["y"]]
    augment = RandomAugment(
        a["hflip"], a["vflip"], float(a["rotation"]), float(a["clahe_p"]), a["clahe_grid"]
    )
    images = np.load(crop_images_path, mmap_mode="r")
    out = augment_set(images, plan, augment, a["seed"], list(shards_out))
    with atomic_path(index_out) as tmp:
        out.to_parquet(tmp, index=False)
    log.info(
        "augment: %d samples %s (%d augmented) from %d images; target: %s",
        len(out), out["label"].value_counts().to_dict(), int(out["augmented"].sum()), len(train), why,
    )  # fmt: skip
    return out


def readable_training_rows(rows: pd.DataFrame, classes: Sequence[str], where: str | Path) -> pd.DataFrame:
    """Labelled rows that decoded; a class left without any is one line (nothing can oversample it)."""
    train = rows[rows["ok"] & (rows["y"] >= 0)]
    present = np.bincount(train["y"].to_numpy(np.int64), minlength=len(classes))
    if (present == 0).any():
        missing = classes[int(np.flatnonzero(present == 0)[0])]
        raise DataError(
            f"class {missing!r} has no readable training images",
            path=where,
            hint="see results/samples/check.json for the unreadable files",
        )
    return train


def stats_stage(
    images: str,
    shards: Sequence[str | Path],
    augment_index: str | Path,
    crop_images_path: str | Path,
    stats_out: str | Path,
) -> dict[str, Any]:
    """Per-channel mean / std in [0, 1] units, written to `stats_out`: over every augmented sample
    (`images` 'augmented') or over the original training images the augment index drew from, each once."""
    from leukoscope.preprocess.artifacts import shard_statistics
    from leukoscope.preprocess.normalize import compute_mean_std

    if images == "augmented":
        mean, std, n = shard_statistics([np.load(s, mmap_mode="r") for s in shards])
    else:
        rows = np.unique(pd.read_parquet(augment_index)["source"].to_numpy(np.int64))
        mean, std = compute_mean_std(np.load(crop_images_path, mmap_mode="r"), rows)
        n = len(rows)
    stats = {"mean": mean, "std": std, "n": n, "images": images, "units": "[0, 1]"}
    write_json(stats_out, stats)
    log.info("stats over %d %s images: mean %s, std %s", n, images, mean, std)
    return stats
