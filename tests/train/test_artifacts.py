"""FitInputs from the workflow's files: shards for training, a cropped split for validation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leukoscope.config import PreprocessConfig
from leukoscope.errors import DataError
from leukoscope.train.artifacts import fingerprint, load_fit_inputs


def _files(tmp_path: Path) -> dict:
    rng = np.random.default_rng(0)
    shards = []
    for k, n in enumerate((3, 2)):
        path = tmp_path / f"shard_{k}.npy"
        np.save(path, rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8))
        shards.append(path)
    index = pd.DataFrame(
        {
            "shard": [0, 0, 0, 1, 1],
            "row": [0, 1, 2, 0, 1],
            "y": [0, 1, 0, 1, 1],
            "augmented": [False, False, True, True, False],
        }
    )
    index.to_parquet(tmp_path / "index.parquet")
    np.save(tmp_path / "val.npy", rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8))
    (tmp_path / "stats.json").write_text(
        json.dumps({"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6], "n": 5})
    )
    return {
        "shards": shards,
        "index_path": tmp_path / "index.parquet",
        "val_images": tmp_path / "val.npy",
        "stats_path": tmp_path / "stats.json",
    }


def test_inputs_read_the_shards_and_skip_unreadable_validation_rows(tmp_path: Path) -> None:
    files = _files(tmp_path)
    val_rows = pd.DataFrame({"row": [0, 1, 2, 3], "y": [0, 1, 1, -1], "ok": [True, False, True, True]})
    inputs = load_fit_inputs(
        **files,
        val_rows=val_rows,
        samples_summary={"class_names": ["all", "hem"], "positive_class": "all"},
        preprocess=PreprocessConfig(image_size=8),
    )
    assert len(inputs.train) == 5 and inputs.train.labels.tolist() == [0, 1, 0, 1, 1]
    assert np.array_equal(inputs.train.read(np.array([3])), np.load(files["shards"][1])[:1])
    assert len(inputs.val) == 2 and inputs.val.labels.tolist() == [0, 1]
    assert inputs.preprocess.mean == (0.1, 0.2, 0.3) and inputs.positive_class == "all"
    assert inputs.data_summary["train"]["augmented"] == 2


def test_fingerprint_follows_the_files(tmp_path: Path) -> None:
    files = _files(tmp_path)
    before = fingerprint(files["shards"])
    assert fingerprint(files["shards"]) == before
    os.utime(files["shards"][0], ns=(1, 1))
    assert fingerprint(files["shards"]) != before


def test_a_shard_that_does_not_match_its_index_is_refused(tmp_path: Path) -> None:
    files = _files(tmp_path)
    np.save(files["shards"][1], np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="shard 1 holds 1 images"):
        load_fit_inputs(
            **files,
            val_rows=pd.DataFrame({"row": [0], "y": [0], "ok": [True]}),
            samples_summary={"class_names": ["a", "b"]},
            preprocess=PreprocessConfig(),
        )


def test_the_train_rule_trains_on_the_preprocessing_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`train_stage` on what the preprocessing rules wrote: weighted BCE's class counts are the original
    training images' (not the oversampled set's), and the model folder holds the rule's outputs."""
    import logging

    from leukoscope.data.synth import write_cnmc_synth
    from leukoscope.train.artifacts import train_stage
    from leukoscope.workflow import plan
    from leukoscope.workflow.config import WorkflowConfig
    from preprocess.helpers import stage_chain

    data = tmp_path / "data"
    write_cnmc_synth(data, subjects=6, cells_per_subject=3, size=32, prelim=4, seed=2)
    overrides = {
        "augment": {"target": {"all": 16, "hem": 16}, "shards": 2},
        "preprocess": {"image_size": 24},
        "model": {"weights": "none"},
        "train": {"epochs": 1, "batch_size": 8, "run_eagerly": True},
        "grid": {"backbones": ["simplecnn"], "losses": ["weighted_bce"], "seeds": [1]},
    }
    f = stage_chain(data, tmp_path / "files", **overrides)
    cfg = WorkflowConfig.from_dict(overrides)
    model = tmp_path / "model" / "model.keras"
    with caplog.at_level(logging.INFO, logger="leukoscope.train.artifacts"):
        out = train_stage(
            plan.train_settings(cfg, "simplecnn", "weighted_bce", 1),
            shards=[f["shard_0.npy"], f["shard_1.npy"]],
            index=f["augment.parquet"],
            val_images=f["val.npy"],
            val_index=f["val.parquet"],
            stats=f["stats.json"],
            samples_summary=f["summary.json"],
            fold=None,
            model_out=model,
            state_dir=tmp_path / "state",
        )
    assert out == model.parent and model.is_file() and (out / "metrics.json").is_file()
    summary = json.loads(f["summary.json"].read_text())
    originals = [summary["parts"]["train"]["per_class"][c] for c in summary["class_names"]]
    assert f"weighted_bce: class counts of the original training set {originals}" in caplog.text
    assert "train simplecnn / weighted_bce / seed 1: 32 samples" in caplog.text
    assert "best epoch 1: validation weighted F1" in caplog.text and not (tmp_path / "state").exists()
