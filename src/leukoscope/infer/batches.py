"""Feeding a model many images: the one batching loop every predictor and every caller uses, and a sample
table's preprocessed images through the cache.

`predict_batched` reads a memory map one batch at a time, so a split of any size never has to fit in
memory, and averages test-time augmentation views per batch. The backends call it with their own batch
size (Keras, LiteRT, SavedModel 32; onnxruntime 64) and the callers that walk a whole split (evaluate,
ensembles, calibration) call it again around them with theirs, so both levels keep the sizes they were
measured with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from leukoscope.config import PreprocessConfig
from leukoscope.infer.tta import tta_predict

BATCH_SIZE = 32
Run = Callable[[np.ndarray], np.ndarray]


def predict_batched(
    run: Run, images: Any, batch_size: int = BATCH_SIZE, *, tta: str = "none", width: int | None = None
) -> np.ndarray:
    """`run(batch)` over `batch_size` images at a time, concatenated in order.

    `images`: (N, H, W, 3) (an array or a read-only memory map: each batch is a writable copy) or one
    (H, W, 3) image. `tta`: views averaged per batch (`tta_predict`). No images: a (0, `width`) array.
    """
    if np.ndim(images) == 3:
        images = np.asarray(images)[None]
    if len(images) == 0:
        return np.zeros((0, width or 0), dtype=np.float32)
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = np.array(images[start : start + batch_size])
        outputs.append(run(batch) if tta == "none" else tta_predict(run, batch, tta))
    return np.concatenate(outputs)


def center_crops(table: Any) -> list[int] | None:
    """The table's `center_crop` column (0 where empty), or None when it has none."""
    import pandas as pd

    if "center_crop" not in table.columns:
        return None
    return [int(c) if pd.notna(c) and str(c) != "" else 0 for c in table["center_crop"]]


def table_images(
    table: Any,
    pre: PreprocessConfig,
    cache_dir: str | Path | None = None,
    *,
    workers: int = 0,
    progress: bool = False,
) -> Any:
    """The `PreprocessCache`'s `CachedImages` (array, ok, errors) of a sample table's paths, in its order."""
    from leukoscope.preprocess.cache import PreprocessCache

    return PreprocessCache(cache_dir).load(
        list(table["path"]), pre, center_crops(table), workers=workers, progress=progress
    )
