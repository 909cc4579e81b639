"""The workflow's data and preprocessing rules as package calls: files in, files out, one log line each."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoscope.data.synth import write_cnmc_synth
from leukoscope.errors import DataError
from leukoscope.preprocess.stages import crop_stage, samples_stage
from preprocess.helpers import stage_chain

TARGET = {"all": 20, "hem": 20}


@pytest.fixture(scope="module")
def cnmc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stages") / "C-NMC_Leukemia"
    write_cnmc_synth(root, subjects=6, cells_per_subject=3, size=48, prelim=4, final=2, seed=5)
    return root


def test_the_chain_writes_each_rules_files(
    cnmc: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"augment": {"target": TARGET, "shards": 2}, "preprocess": {"image_size": 24}}
    with caplog.at_level(logging.INFO, logger="leukoscope.preprocess.stages"):
        f = stage_chain(cnmc, tmp_path, stats={"images": "original"}, **settings)
    summary = json.loads(f["summary.json"].read_text())
    sheet = pd.read_parquet(f["sheet.parquet"])
    assert summary["preprocess"]["crop"] in ("cell", "center") and summary["augment"]["target"] == TARGET
    assert summary["data_check"]["usable"] and json.loads(f["check.json"].read_text())["problems"] == []
    for part in ("train", "val", "final"):
        index = pd.read_parquet(f[f"{part}.parquet"])
        assert np.load(f[f"{part}.npy"]).shape == (len(index), 24, 24, 3) and index["ok"].all()
        assert len(index) == summary["parts"][part]["images"] == int((sheet["part"] == part).sum())
    augmented = pd.read_parquet(f["augment.parquet"])
    assert augmented["label"].value_counts().to_dict() == TARGET  # oversampled to the target
    assert sum(len(np.load(f[f"shard_{k}.npy"])) for k in (0, 1)) == 40
    train = np.load(f["train.npy"])
    originals = np.unique(augmented["source"])  # stats over the originals, each once
    stats = json.loads(f["stats.json"].read_text())
    assert stats["n"] == len(originals) == summary["parts"]["train"]["images"]
    assert np.allclose(stats["mean"], (train[originals] / 255.0).mean(axis=(0, 1, 2)), atol=1e-6)
    said = caplog.text
    assert "samples: {'train'" in said and "augment target: {'all': 20, 'hem': 20}" in said
    assert "crop val: 4 images at 24 px" in said and "augment: 40 samples" in said
    assert f"stats over {len(originals)} original images" in said


def test_stats_over_the_augmented_shards(cnmc: Path, tmp_path: Path) -> None:
    f = stage_chain(cnmc, tmp_path, augment={"target": TARGET, "shards": 3}, preprocess={"image_size": 16})
    stats = json.loads(f["stats.json"].read_text())
    shards = np.concatenate([np.load(f[f"shard_{k}.npy"]) for k in range(3)])
    assert stats["images"] == "augmented" and stats["n"] == len(shards) == 40
    assert np.allclose(stats["std"], (shards / 255.0).std(axis=(0, 1, 2)), atol=1e-6)


def test_unreadable_images_stop_the_samples_stage_but_the_check_is_written(
    cnmc: Path, tmp_path: Path
) -> None:
    import shutil

    data = Path(shutil.copytree(cnmc, tmp_path / "data"))
    next(data.rglob("*.bmp")).write_bytes(b"not an image")
    (tmp_path / "record.json").write_text(json.dumps({"path": str(data)}))
    settings = {
        "protocol": "paper", "folds": 3, "val_fold": 2, "val_fraction": 0.2, "inner_fraction": 0.2,
        "classes": None, "positive_class": None, "limit_per_class": None, "seed": 0, "verify": False,
        "skip_unreadable": False, "crop": "center", "black_threshold": 10,
    }  # fmt: skip
    augment = {"target": None, "total": None, "enabled": True}
    outs = [tmp_path / n for n in ("sheet.parquet", "summary.json", "check.json")]
    with pytest.raises(DataError, match="1 unreadable image"):
        samples_stage(tmp_path / "record.json", settings, augment, *outs)
    assert outs[2].is_file() and not outs[0].exists() and not outs[1].exists()
    summary = samples_stage(tmp_path / "record.json", settings | {"skip_unreadable": True}, augment, *outs)
    assert any("1 unreadable image(s) left out" in n for n in summary["notes"])
    assert summary["preprocess"] == {"crop": "center", "reason": "preprocess.crop center as configured"}
    index = crop_stage(
        outs[0], outs[1], "train", {"image_size": 16}, tmp_path / "t.npy", tmp_path / "t.parquet"
    )
    assert index["ok"].all() and pd.read_parquet(tmp_path / "t.parquet").equals(index)
