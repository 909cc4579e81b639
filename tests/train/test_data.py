"""From a RunConfig to FitInputs: oversampling to the paper's targets, statistics from the training split
only, unreadable images skipped, one class refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leukoscope.config import RunConfig
from leukoscope.errors import ConfigError, DataError
from leukoscope.preprocess import compute_mean_std
from leukoscope.preprocess.balance import oversample_indices, oversample_targets
from leukoscope.train.data import fit_inputs_from_config, prepare_data
from leukoscope.train.inputs import class_counts_param, class_weights

from .conftest import write_cnmc


def _cfg(data: Path, cache: Path, **over: object) -> RunConfig:
    base = {
        "data.data": str(data), "data.cache_dir": str(cache), "data.val_fold": 2, "preprocess.image_size": 32,
        "model.backbone": "simplecnn", "model.weights": "none", "train.batch_size": 4,
        "train.progress": False,
    }  # fmt: skip
    return RunConfig().override(base | over)


def test_oversample_reaches_paper_targets() -> None:
    labels = np.array([0] * 7272 + [1] * 3389)  # C-NMC training: all, hem
    picked = oversample_indices(labels, ["all", "hem"], {"hem": 10778, "all": 9272}, seed=0)
    counts = np.bincount(labels[picked])
    assert counts.tolist() == [9272, 10778] and len(picked) == 20050
    uses = np.bincount(picked, minlength=len(labels))
    assert uses[labels == 1].min() == 3 and uses[labels == 1].max() == 4  # floor/ceil of 10778/3389
    assert uses[labels == 0].min() >= 1  # every image is used


def test_oversample_defaults_to_majority_and_checks_names() -> None:
    labels = np.array([0, 0, 0, 0, 0, 1, 1])
    assert oversample_targets(labels, ["a", "b"], None) == {"a": 5, "b": 5}
    picked = oversample_indices(labels, ["a", "b"], None, seed=1)
    assert np.bincount(labels[picked]).tolist() == [5, 5]
    with pytest.raises(ConfigError, match="unknown classes"):
        oversample_targets(labels, ["a", "b"], {"c": 3})


@pytest.fixture(scope="module")
def unbalanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 leukemic and 2 healthy subjects: training folds hold 4x more ALL than HEM cells."""
    root = write_cnmc(
        tmp_path_factory.mktemp("unbal"), {"1": 0, "2": 0, "3": 1, "4": 1, "5": 2, "H1": 0, "H2": 2}
    )
    bad = root / "training_data" / "fold_1" / "all" / "UID_3_9_1_all.bmp"
    bad.write_bytes(b"BM not really a bitmap")  # unreadable: must be skipped, not crash training
    return root


def test_oversampled_inputs_and_stats_from_train_only(unbalanced: Path, cache_dir: Path) -> None:
    cfg = _cfg(unbalanced, cache_dir, **{"train.balance": "oversample"})
    inputs, data = fit_inputs_from_config(cfg)
    assert data.class_counts("train") == [16, 4]  # all, hem; the broken file is skipped
    assert (~data.frame["ok"]).sum() == 1
    assert inputs.train.class_counts(2) == [16, 16] and len(inputs.val) == 8
    assert inputs.class_names == ["all", "hem"] and inputs.positive_class == "all"
    mean, std = compute_mean_std(data.images, data.indices("train"))
    assert inputs.preprocess.mean == pytest.approx(mean) and inputs.preprocess.std == pytest.approx(std)
    everything = compute_mean_std(data.images, np.flatnonzero(data.frame["ok"]))
    assert inputs.preprocess.mean != pytest.approx(everything[0])  # validation images did not leak in
    assert inputs.fingerprint == data.cache_dir.name  # the cache key: files, sizes, times, settings
    batch = inputs.train.read(np.arange(4))
    assert batch.shape == (4, 32, 32, 3) and batch.dtype == np.uint8


def test_one_class_is_a_data_error(tmp_path: Path, cache_dir: Path) -> None:
    root = write_cnmc(tmp_path / "one", {"1": 0, "2": 1, "3": 2})
    with pytest.raises(DataError, match="only one class"):
        prepare_data(_cfg(root, cache_dir))


def test_classes_are_chosen_as_the_workflow_chooses_them(cells_dir: Path, cache_dir: Path) -> None:
    """`leukoscope train` and the sample sheet share `data.protocols.choose_classes` / `choose_positive`;
    the messages name the CLI's settings."""
    data = prepare_data(_cfg(cells_dir, cache_dir, **{"data.classes": ["hem", "all"]}))
    assert data.class_names == ["hem", "all"]  # the configured order
    cfg = _cfg(cells_dir, cache_dir, **{"data.positive_class": "hem"})
    assert fit_inputs_from_config(cfg)[0].positive_class == "hem"
    with pytest.raises(DataError, match=r"data\.positive_class 'blast' is not one of the classes"):
        fit_inputs_from_config(_cfg(cells_dir, cache_dir, **{"data.positive_class": "blast"}))


def test_weighted_losses_get_the_training_counts_and_class_weight_mode(
    cells_dir: Path, cache_dir: Path
) -> None:
    cfg = _cfg(cells_dir, cache_dir, **{"loss.name": "weighted_bce"})
    assert class_counts_param(cfg, [30, 10]) == {"class_counts": [30, 10]}
    given = _cfg(
        cells_dir, cache_dir, **{"loss.name": "weighted_bce", "loss.params": {"class_counts": [1, 1]}}
    )
    assert class_counts_param(given, [30, 10]) == {"class_counts": [1, 1]}  # an explicit setting wins
    assert class_counts_param(_cfg(cells_dir, cache_dir), [30, 10]) == {}
    assert class_weights([30, 10]) == pytest.approx({0: 40 / 60, 1: 40 / 20})
