"""Tiny datasets and two trained runs (simplecnn, 32 px, seconds each) that serve as ensemble members."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from leukoscope.config import RunConfig

TINY = {
    "model.backbone": "simplecnn",
    "model.weights": "none",
    "preprocess.image_size": 32,
    "train.epochs": 1,
    "train.batch_size": 8,
    "train.max_steps_per_epoch": 2,
    "train.progress": False,
    "optim.lr": 1e-3,
}


@pytest.fixture(scope="session")
def cnmc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """C-NMC layout: 9 subjects x 4 cells in the three official folds + 8 preliminary-test images."""
    from leukoscope.data.synth import write_cnmc_synth

    root = tmp_path_factory.mktemp("exp") / "cnmc"
    write_cnmc_synth(root, subjects=9, cells_per_subject=4, size=96, seed=1, difficulty=0.2, prelim=8)
    return root


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_cfg(cache_dir: Path) -> Any:
    def make(data: Path | str, **extra: Any) -> RunConfig:
        return RunConfig().override(TINY | {"data.data": str(data), "data.cache_dir": str(cache_dir)} | extra)

    return make


@pytest.fixture(scope="session")
def folder_set(cnmc: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of cells as an image folder (one sub-folder per class): no subjects known."""
    from leukoscope.data import read_dataset

    root = tmp_path_factory.mktemp("folder") / "cells"
    table = read_dataset(cnmc)
    for row in table[table["split"].str.startswith("fold_")].itertuples():
        target = root / row.label / Path(row.path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(row.path, target)
    return root


@pytest.fixture(scope="session")
def prelim_manifest(cnmc: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The preliminary-test images (in no fold) as a validation manifest for ensembles and calibration."""
    from leukoscope.data import read_dataset

    table = read_dataset(cnmc)
    path = tmp_path_factory.mktemp("val") / "val.csv"
    table[table["split"] == "prelim"][["path", "label", "subject"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def fold_runs(cnmc: Path, tiny_cfg: Any, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A run validated on official fold 0 and trained on folds 1-2 (`leukoscope train --val-fold 0`),
    and a second, untrained member of the same architecture (an ensemble needs two; training it too
    would only cost time)."""
    from infer.helpers import make_model_dir
    from leukoscope.train.fit import fit

    root = tmp_path_factory.mktemp("runs")
    trained = fit(tiny_cfg(cnmc, **{"data.val_fold": 0, "out": str(root / "fold_0")}))
    return [trained, make_model_dir(root / "other", seed=1)]


@pytest.fixture
def member_runs(fold_runs: list[Path], tmp_path: Path) -> list[Path]:
    """Copies of the two members (tests may change their cards)."""
    return [
        Path(shutil.copytree(run, tmp_path / f"member_{k}", ignore=shutil.ignore_patterns("logs")))
        for k, run in enumerate(fold_runs)
    ]


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False)


def open_in_chromium(report: Path) -> tuple[list[str], list[bool], list[str]]:
    """(console errors, per-image loaded flags, requested URLs) of `report` in headless Chromium."""
    from chromium_page import open_file

    return open_file(report)[:3]
