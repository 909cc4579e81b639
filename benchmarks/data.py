"""The benchmarks' data: synthetic C-NMC BMPs and the workflow's artifacts made from them, built once.

`leukoscope.data.synth` draws 450x450 24-bit BMPs in C-NMC's layout (608,454 bytes each, like the real
ones). From them the same engine functions the workflow's rules call build, per image size:

- samples -> crop: the sample sheet (heldout: C-NMC folds, fold 2 validates), each split cropped to the cell
  and resized into one uint8 `.npy` (rules `samples`, `crop`);
- augment: the training rows oversampled to the paper's 10,778 HEM + 9,272 ALL = 20,050 samples, the
  copies flipped / rotated / CLAHE-enhanced, in shards + a parquet index (rule `augment`);
- stats: the shards' mean / std (rule `stats`);
- a folder of the same images as BMP files, one folder per class, for the Keras baselines
  (`flow_from_directory`, `image_dataset_from_directory`), which read image files: the first 1,024
  training samples (the augmented set is shuffled, so both classes) and 64 validation crops drawn at
  random (`val-subset.parquet` lists them for the workflow job).

Everything lives in `benchmarks/work/` (git-ignored) and is reused while its `.complete.json` marker
records the same request.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Settings, log

PAPER_TARGET = {"hem": 10_778, "all": 9_272}  # the paper's 20,050 augmented training samples
TINY_TARGET = {"hem": 40, "all": 24}
SHARDS = 8
FILES = 1024  # training samples also written as BMP files (the baselines read files)
VAL_FILES = 64
SEED = 42
OFFLINE_AUGMENT = {"hflip": True, "vflip": True, "rotation": 90.0, "clahe_p": 0.5, "clahe_grid": 8}


def _reuse(folder: Path, request: dict[str, Any]) -> bool:
    marker = folder / ".complete.json"
    if marker.is_file():
        try:
            return json.loads(marker.read_text()) == request
        except ValueError:
            return False
    return False


def _mark(folder: Path, request: dict[str, Any]) -> None:
    (folder / ".complete.json").write_text(json.dumps(request))


def cnmc_dataset(settings: Settings) -> Path:
    """The synthetic C-NMC folder every benchmark shares (1,800 images at 450 px; 60 at 96 px when tiny)."""
    from leukoscope.data.synth import write_cnmc_synth

    request = {
        "subjects": settings.pick(30, 10),
        "cells_per_subject": settings.pick(60, 6),
        "size": settings.pick(450, 96),
        "prelim": settings.pick(60, 6),  # heldout scores on a labelled preliminary test
        "seed": 0,
        "difficulty": 0.3,
    }
    root = settings.work / "datasets" / ("cnmc-tiny" if settings.tiny else "cnmc")
    if not _reuse(root, request):
        shutil.rmtree(root, ignore_errors=True)
        n = request["subjects"] * request["cells_per_subject"]
        log(f"generating {n} synthetic {request['size']} px C-NMC BMPs into {root} (once)")
        write_cnmc_synth(root, **request)
        _mark(root, request)
    return root


def sample_sheet(settings: Settings) -> Any:
    from leukoscope.data.samples import build_sample_sheet

    return build_sample_sheet(cnmc_dataset(settings), protocol="heldout", val_fold=2, seed=SEED)


def image_files(settings: Settings, n: int) -> list[str]:
    """`n` of the synthetic BMPs (every one, repeated, when fewer exist), in a fixed order."""
    sheet = sample_sheet(settings)
    paths = sheet.frame[sheet.frame["part"].isin(["train", "val"])]["path"].tolist()
    reps = -(-n // len(paths))
    return (paths * reps)[:n]


@dataclass
class Artifact:
    """The workflow's preprocessing outputs for one image size (what its train rule reads)."""

    folder: Path
    image_size: int
    class_names: list[str]
    positive_class: str | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def shard_paths(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.npy"))

    def index(self) -> Any:
        import pandas as pd

        return pd.read_parquet(self.folder / "augment-index.parquet")

    def shards(self) -> list[np.ndarray]:
        return [np.load(p, mmap_mode="r") for p in self.shard_paths]

    @property
    def files(self) -> Path:
        return self.folder / "files"

    @property
    def val_files(self) -> Path:
        return self.folder / "val-files"

    @property
    def val_subset(self) -> Path:
        """The validation rows the benchmarks use (row, y, ok), the same images as `val_files`."""
        return self.folder / "val-subset.parquet"


def artifact(settings: Settings, size: int) -> Artifact:
    """The augmented training set (20,050 samples; 64 when tiny) at `size` px, its stats and val crops.

    The first 1,024 training samples (32 when tiny) and 64 validation crops (8) are also written as BMP
    files in a folder per class, for the baselines that read image files.
    """
    from leukoscope.config import PreprocessConfig
    from leukoscope.preprocess.artifacts import augment_set, augmentation_plan, crop_images, shard_statistics
    from leukoscope.preprocess.augment import RandomAugment

    target = settings.pick(PAPER_TARGET, TINY_TARGET)
    files, val_files = settings.pick(FILES, 32), settings.pick(VAL_FILES, 8)
    request = {"size": size, "target": target, "shards": SHARDS, "seed": SEED, "augment": OFFLINE_AUGMENT}
    request |= {"files": files, "val_files": val_files, "dataset": str(cnmc_dataset(settings))}
    request["val_pick"] = "seeded shuffle of the readable rows"  # both classes, not the first rows
    folder = settings.work / "artifacts" / f"{'tiny-' if settings.tiny else ''}{size}px"
    sheet = sample_sheet(settings)
    if not _reuse(folder, request):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        n = sum(target.values())
        log(f"building the workflow's artifacts at {size} px: crop, augment to {n:,} samples, stats (once)")
        cfg = PreprocessConfig(image_size=size)
        train_index = crop_images(sheet.part("train"), cfg, folder / "train.npy", workers=2)
        val_index = crop_images(sheet.part("val"), cfg, folder / "val.npy", workers=2)
        train_index.to_parquet(folder / "train-index.parquet", index=False)
        val_index.to_parquet(folder / "val-index.parquet", index=False)
        ok = train_index[train_index["ok"] & (train_index["y"] >= 0)]
        plan = augmentation_plan(ok["y"].to_numpy(np.int64), sheet.class_names, target, SEED)
        plan["source"] = ok["row"].to_numpy(np.int64)[plan["source"].to_numpy()]
        plan["label"] = [sheet.class_names[i] for i in plan["y"]]
        crops = np.load(folder / "train.npy", mmap_mode="r")
        outs = [folder / f"shard-{k:02d}.npy" for k in range(SHARDS)]
        index = augment_set(crops, plan, RandomAugment(**OFFLINE_AUGMENT), SEED, outs)
        index.to_parquet(folder / "augment-index.parquet", index=False)
        shards = [np.load(p, mmap_mode="r") for p in outs]
        mean, std, _ = shard_statistics(shards)
        (folder / "stats.json").write_text(json.dumps({"mean": mean, "std": std, "images": "augmented"}))
        summary = {
            "class_names": sheet.class_names,
            "positive_class": sheet.positive_class,
            "protocol": "heldout",
        }
        (folder / "summary.json").write_text(json.dumps(summary))
        _write_files(folder / "files", shards, index, files)
        val_ok = val_index[val_index["ok"] & (val_index["y"] >= 0)]
        picked = val_ok.iloc[np.random.default_rng(SEED).permutation(len(val_ok))[:val_files]]
        picked.sort_values("row").to_parquet(folder / "val-subset.parquet", index=False)
        val_images = np.load(folder / "val.npy", mmap_mode="r")
        _write_val_files(folder / "val-files", val_images, picked, sheet.class_names)
        _mark(folder, request)
    stats = json.loads((folder / "stats.json").read_text())
    return Artifact(
        folder, size, list(sheet.class_names), sheet.positive_class, tuple(stats["mean"]), tuple(stats["std"])
    )


def _write_files(folder: Path, shards: list[np.ndarray], index: Any, n: int) -> None:
    import cv2

    for j, rec in enumerate(index.head(n).itertuples()):
        target = folder / str(rec.label) / f"sample-{j:05d}.bmp"
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), np.ascontiguousarray(shards[int(rec.shard)][int(rec.row)][..., ::-1]))


def _write_val_files(folder: Path, images: np.ndarray, index: Any, class_names: list[str]) -> None:
    import cv2

    for rec in index.itertuples():
        target = folder / class_names[int(rec.y)] / f"val-{int(rec.row):05d}.bmp"
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), np.ascontiguousarray(images[int(rec.row)][..., ::-1]))


def training_source(art: Artifact, limit: int | None = None) -> Any:
    """The augmented shards as an `ImageSource` (the first `limit` samples, in index order)."""
    from leukoscope.train.tfdata import ImageSource

    index = art.index()
    lookup = {name: i for i, name in enumerate(art.class_names)}
    source = ImageSource.from_shards(art.shards(), [lookup[x] for x in _by_shard(index)["label"]])
    if limit is None:
        return source
    # from_shards lists rows shard after shard; keep the first `limit` samples of the index, same order
    position = {(int(s), int(r)): i for i, (s, r) in enumerate(source.index.tolist())}
    picks = np.array([position[(int(s), int(r))] for s, r in index[["shard", "row"]].head(limit).to_numpy()])
    return ImageSource(source.shards, source.index[picks], source.labels[picks])


def _by_shard(index: Any) -> Any:
    return index.sort_values(["shard", "row"], kind="stable")


def cell_images(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` synthetic cells drawn straight at `size` px, in memory, and their labels (0 / 1): data for a
    machine that has none of the above (the GPU script), made in seconds."""
    from leukoscope.data.synth import SubjectStyle, render_cell

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = np.stack(
        [
            render_cell(rng, "all" if y else "hem", SubjectStyle.draw(rng), size=size, difficulty=0.3)
            for y in labels
        ]
    )
    return images, labels.astype(np.int64)
