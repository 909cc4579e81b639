"""Datamodule: class balance (oversampling to targets, weighted sampler), stats from the training split only,
unreadable images skipped; and the LightningModule's loss/target conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import WeightedRandomSampler

from leukoscope.config import RunConfig
from leukoscope.errors import ConfigError, DataError
from leukoscope.preprocess import compute_mean_std
from leukoscope.train.balance import oversample_indices, oversample_targets, sample_weights
from leukoscope.train.data import prepare_data
from leukoscope.train.datamodule import CellDataModule
from leukoscope.train.hardware import resolve_precision
from leukoscope.train.module import CellClassifier

from .conftest import write_cnmc


def _cfg(data: Path, cache: Path, **over: object) -> RunConfig:
    base = {
        "data.data": str(data), "data.cache_dir": str(cache), "data.val_fold": 2, "preprocess.image_size": 32,
        "model.backbone": "test_efficientnet", "model.weights": "none", "train.batch_size": 4,
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


def test_sampler_weights_balance_classes() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    weights = sample_weights(labels, 2)
    assert weights[labels == 0].sum() == pytest.approx(weights[labels == 1].sum())
    drawn = list(
        WeightedRandomSampler(torch.as_tensor(weights), 4000, generator=torch.Generator().manual_seed(0))
    )
    share = np.mean(labels[drawn] == 1)
    assert 0.45 < share < 0.55


@pytest.fixture(scope="module")
def unbalanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 leukemic and 2 healthy subjects: training folds hold 3x more ALL than HEM cells."""
    root = write_cnmc(
        tmp_path_factory.mktemp("unbal"), {"1": 0, "2": 0, "3": 1, "4": 1, "5": 2, "H1": 0, "H2": 2}
    )
    bad = root / "training_data" / "fold_1" / "all" / "UID_3_9_1_all.bmp"
    bad.write_bytes(b"BM not really a bitmap")  # unreadable: must be skipped, not crash training
    return root


def test_oversample_in_datamodule_and_stats_from_train_only(unbalanced: Path, cache_dir: Path) -> None:
    cfg = _cfg(unbalanced, cache_dir, **{"train.balance": "oversample"})
    data = prepare_data(cfg)
    assert data.class_counts("train") == [16, 4]  # all, hem; the broken file is skipped
    assert (~data.frame["ok"]).sum() == 1
    dm = CellDataModule(data, cfg)
    dm.setup("fit")
    labels = data.frame["y"].to_numpy()[dm.train_rows]
    assert np.bincount(labels).tolist() == [16, 16]
    mean, std = compute_mean_std(data.images, data.indices("train"))
    assert data.preprocess.mean == pytest.approx(mean) and data.preprocess.std == pytest.approx(std)
    everything = compute_mean_std(data.images, np.flatnonzero(data.frame["ok"]))
    assert data.preprocess.mean != pytest.approx(everything[0])  # validation images did not leak in
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_sampler_mode_uses_weighted_sampler(unbalanced: Path, cache_dir: Path) -> None:
    cfg = _cfg(unbalanced, cache_dir, **{"train.balance": "sampler"})
    dm = CellDataModule(prepare_data(cfg), cfg)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, WeightedRandomSampler)
    assert len(dm.train_rows) == 20


def test_one_class_is_a_data_error(tmp_path: Path, cache_dir: Path) -> None:
    root = write_cnmc(tmp_path / "one", {"1": 0, "2": 1, "3": 2})
    with pytest.raises(DataError, match="only one class"):
        prepare_data(_cfg(root, cache_dir))


def test_module_targets_and_weighted_loss(cells_dir: Path, cache_dir: Path) -> None:
    cfg = _cfg(cells_dir, cache_dir, **{"loss.name": "weighted_bce"})
    module = CellClassifier(cfg.to_dict(), ["all", "hem"], [30, 10], positive_class="all")
    y = torch.tensor([0, 1, 1])
    assert module._targets(y).tolist() == [1.0, 0.0, 0.0]  # 1 = "all", the sigmoid's class
    assert module._predict(torch.tensor([2.0, -1.0, 0.0])).tolist() == [0, 1, 0]
    logits = module(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3,)
    loss = module.loss_fn(logits, module._targets(y))
    assert torch.isfinite(loss) and loss.requires_grad
    assert type(module.loss_fn).__name__.lower().startswith("weighted")


def test_precision_resolution() -> None:
    assert resolve_precision("32") == "32-true"
    assert resolve_precision("bf16") == "bf16-mixed"
    auto = resolve_precision("auto", "cpu")
    assert auto in ("bf16-mixed", "32-true")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="needs a GPU"):
            resolve_precision("16", "cpu")


def test_dataset_pickles_without_its_memmap(cells_dir: Path, cache_dir: Path) -> None:
    """Spawned DataLoader workers (macOS, Windows) get a handle, not a copy of the whole cache."""
    import pickle

    cfg = _cfg(cells_dir, cache_dir, **{"data.num_workers": 1})
    dm = CellDataModule(prepare_data(cfg), cfg)
    dm.setup("fit")
    dataset = dm.val_dataloader().dataset
    blob = pickle.dumps(dataset)
    assert len(blob) < dataset.images[:1].nbytes * len(dataset)
    clone = pickle.loads(blob)
    assert torch.equal(clone[3][0], dataset[3][0]) and clone[3][1] == dataset[3][1]
    loader = dm.train_dataloader()
    assert loader.num_workers == 1 and loader.persistent_workers
