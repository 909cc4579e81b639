"""The workflow's preprocessing files: cropped splits, the oversampled augmented set, its statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoscope.config import PreprocessConfig
from leukoscope.preprocess.artifacts import augment_set, augmentation_plan, crop_images, shard_statistics
from leukoscope.preprocess.augment import RandomAugment


def _cell(side: int, value: int) -> np.ndarray:
    image = np.zeros((side, side, 3), np.uint8)
    image[side // 4 : side // 2, side // 4 : 3 * side // 4] = value  # a 2:1 box on black
    return image


def test_crop_images_writes_one_npy_and_flags_unreadable_files(tmp_path: Path) -> None:
    import cv2

    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), _cell(40, 100 + 50 * i))
        paths.append(str(path))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    paths.append(str(tmp_path / "bad.png"))
    rows = pd.DataFrame(
        {
            "path": paths,
            "label": ["all", "hem", "all", "hem"],
            "y": [0, 1, 0, 1],
            "subject": list("abcd"),
            "subject_known": True,
            "row": range(4),
            "center_crop": 0,
        }
    )
    index = crop_images(rows, PreprocessConfig(image_size=16), tmp_path / "out.npy", workers=2)
    images = np.load(tmp_path / "out.npy", mmap_mode="r")
    assert images.shape == (4, 16, 16, 3) and images.dtype == np.uint8
    assert index["ok"].tolist() == [True, True, True, False] and "bad.png" in index["error"][3]
    assert images[3].max() == 0 and images[0].max() > 0
    assert images[0][0].max() == 0 and images[0][8].max() > 0  # the cell, padded square (aspect kept)
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_plan_reaches_the_targets_and_keeps_each_original_once() -> None:
    labels = np.array([0] * 6 + [1] * 3)
    plan = augmentation_plan(labels, ["all", "hem"], {"all": 10, "hem": 8}, seed=1)
    assert plan["y"].value_counts().to_dict() == {0: 10, 1: 8}
    originals = plan[~plan["augmented"]]
    assert sorted(originals["source"]) == list(range(9))  # every image once as it is
    counts = plan["source"].value_counts()
    assert counts[counts.index >= 6].between(2, 3).all()  # 8 from 3: 2 or 3 copies each, never 0
    again = augmentation_plan(labels, ["all", "hem"], {"all": 10, "hem": 8}, seed=1)
    assert again.equals(plan)
    default = augmentation_plan(labels, ["all", "hem"], None, seed=1)
    assert default["y"].value_counts().to_dict() == {0: 6, 1: 6}  # to the majority's count


def test_augment_set_is_seeded_and_sharded(tmp_path: Path) -> None:
    images = np.stack([_cell(16, 60 + 20 * i) for i in range(5)])
    plan = augmentation_plan(np.array([0, 0, 0, 1, 1]), ["a", "b"], {"a": 6, "b": 6}, seed=0)
    aug = RandomAugment(True, True, 45.0, 0.5)
    outs = [tmp_path / f"s{k}.npy" for k in range(3)]
    index = augment_set(images, plan, aug, 7, outs)
    shards = [np.load(p) for p in outs]
    assert [len(s) for s in shards] == [4, 4, 4] and index["shard"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    for _, row in index.iterrows():
        image = shards[row["shard"]][row["row"]]
        if not row["augmented"]:
            assert np.array_equal(image, images[row["source"]])
    second = [tmp_path / f"t{k}.npy" for k in range(3)]
    augment_set(images, plan, aug, 7, second)
    assert all(np.array_equal(np.load(a), np.load(b)) for a, b in zip(outs, second, strict=True))


def test_shard_statistics_match_numpy() -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8) for n in (3, 5, 0)]
    mean, std, n = shard_statistics(arrays)
    everything = np.concatenate(arrays).reshape(-1, 3).astype(np.float64) / 255.0
    assert n == 8
    assert np.allclose(mean, everything.mean(axis=0)) and np.allclose(std, everything.std(axis=0))
    with pytest.raises(Exception, match="no training images"):
        shard_statistics([arrays[2]])
