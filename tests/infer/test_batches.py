"""`predict_batched`: the one loop that runs a model over many images (backends, evaluate, ensembles,
calibration all go through it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from leukoscope.infer.batches import center_crops, predict_batched
from leukoscope.infer.tta import tta_predict


def _model(calls: list[np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """A 'model' whose output depends on each image and on its orientation; it records every batch."""

    def run(batch: np.ndarray) -> np.ndarray:
        calls.append(batch)
        corner = batch[:, 0, 0, 0].astype(np.float64) / 255.0
        return np.stack([corner, 1.0 - corner], axis=1).astype(np.float32)

    return run


def _images(n: int, size: int = 4) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_batches_in_order_at_most_batch_size(tmp_path: Path) -> None:
    images = _images(10)
    np.save(tmp_path / "images.npy", images)
    memmap = np.load(tmp_path / "images.npy", mmap_mode="r")
    calls: list[np.ndarray] = []
    out = predict_batched(_model(calls), memmap, 4)
    assert [len(c) for c in calls] == [4, 4, 2]
    assert all(c.flags.writeable and not isinstance(c, np.memmap) for c in calls)  # copies, not views
    np.testing.assert_allclose(out, _model([])(images))


def test_one_image_and_no_images() -> None:
    calls: list[np.ndarray] = []
    one = _images(1)[0]
    assert predict_batched(_model(calls), one, 8).shape == (1, 2) and calls[0].shape == (1, 4, 4, 3)
    empty = predict_batched(_model(calls), np.zeros((0, 4, 4, 3), np.uint8), 8, width=2)
    assert empty.shape == (0, 2) and len(calls) == 1


@pytest.mark.parametrize("tta", ["flips", "d8"])
def test_tta_is_averaged_per_batch(tta: str) -> None:
    images = _images(7)
    calls: list[np.ndarray] = []
    out = predict_batched(_model(calls), images, 3, tta=tta)
    np.testing.assert_allclose(out, tta_predict(_model([]), images, tta), atol=1e-7)
    assert max(len(c) for c in calls) == 3
    assert not np.allclose(out, predict_batched(_model([]), images, 3))  # the views do change the output


def test_center_crops_of_a_table() -> None:
    import pandas as pd

    assert center_crops(pd.DataFrame({"path": ["a"]})) is None
    table = pd.DataFrame({"path": ["a", "b", "c"], "center_crop": [300, None, ""]})
    assert center_crops(table) == [300, 0, 0]
