"""Synthetic C-NMC datasets for the benchmarks, generated once into `benchmarks/work/` and reused.

`leukoscope.data.synth.write_cnmc_synth` draws 450x450 24-bit BMPs (608,454 bytes, like C-NMC) in the
C-NMC layout. A folder is reused when its `.complete` marker records the same request.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np

from benchmarks.common import Settings, log

CNMC_TRAIN_IMAGES = 10_661  # C-NMC 2019's training set
CNMC_SUBJECTS = 73
BUNDLED = ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2", "mobilenetv2_100")


def cnmc_dataset(
    settings: Settings, n_images: int, name: str, subjects: int | None = None, exact: bool = False
) -> Path:
    """A synthetic C-NMC folder with about `n_images` training images (rounded up to whole subjects).

    `exact` deletes the surplus (the last files by name) so the folder holds exactly `n_images`.
    """
    from leukoscope.data.synth import write_cnmc_synth

    size = 450 if not settings.tiny else 96
    subjects = subjects or max(10, min(CNMC_SUBJECTS, n_images // 40))
    cells = max(1, math.ceil(n_images / subjects))
    request = {"subjects": subjects, "cells_per_subject": cells, "size": size, "seed": 0, "difficulty": 0.3}
    root = settings.work / "datasets" / name
    marker = root / ".complete.json"
    if not (marker.is_file() and json.loads(marker.read_text()) == request):
        if root.exists():
            shutil.rmtree(root)
        log(f"generating {subjects * cells} synthetic {size}x{size} BMPs into {root} (once)")
        write_cnmc_synth(root, **request)
        marker.write_text(json.dumps(request))
    if exact:
        files = sorted((root / "training_data").glob("fold_*/*/*.bmp"))
        for surplus in files[n_images:]:
            surplus.unlink()
    return root


def train_set(settings: Settings) -> Path:
    """The dataset the train, infer and scale benchmarks share (1,280 images; 48 when tiny)."""
    return cnmc_dataset(settings, settings.pick(1280, 48), "train-set")


def image_paths(root: Path) -> list[str]:
    from leukoscope.data.readers import read_dataset

    return read_dataset(root)["path"].tolist()


def preprocessed_images(settings: Settings, n: int, size: int) -> np.ndarray:
    """`n` synthetic cells through leukoscope's deterministic preprocessing: (n, size, size, 3) uint8."""
    from leukoscope.config import PreprocessConfig
    from leukoscope.data.images import read_image
    from leukoscope.preprocess import preprocess_image

    paths = image_paths(train_set(settings))
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(paths), size=min(n, len(paths)), replace=False)
    cfg = PreprocessConfig(image_size=size)
    images = np.stack([preprocess_image(read_image(paths[i]), cfg) for i in chosen])
    if len(images) < n:  # tiny datasets: repeat
        images = np.concatenate([images] * math.ceil(n / len(images)))[:n]
    return images


def saved_model(settings: Settings, backbone: str, size: int) -> Path:
    """A model folder (weights + card) for inference when no trained run is at hand."""
    from leukoscope.config import PreprocessConfig
    from leukoscope.models.card import ModelCard, save_model
    from leukoscope.models.factory import create_classifier
    from leukoscope.preprocess import compute_mean_std

    folder = settings.work / "models" / f"{backbone}-{size}"
    images = preprocessed_images(settings, 64, size)
    mean, std = compute_mean_std(images)
    weights = "bundled" if backbone in BUNDLED else "none"
    model = create_classifier(backbone, 2, weights=weights)
    card = ModelCard(
        backbone=backbone,
        class_names=["hem", "all"],
        preprocess=PreprocessConfig(image_size=size, mean=mean, std=std),
        weights_source=weights,
        positive_class="all",
    )
    return save_model(folder, model.eval(), card)
