"""Real data from ../shared/data, read in place (skipped with a reason where it is absent)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from leukoscope.data import read_dataset
from leukoscope.data.known import cnmc_manifest

pytestmark = pytest.mark.shared

PBC_CLASSES = [
    "basophil",
    "eosinophil",
    "erythroblast",
    "ig",
    "lymphocyte",
    "monocyte",
    "neutrophil",
    "platelet",
]


def test_pbc_mini_reads_as_an_image_folder(shared_data: Path) -> None:
    table = read_dataset(shared_data / "pbc-mini")
    assert table.attrs["layout"] == "folder"
    assert len(table) == 800
    assert table["label"].value_counts().sort_index().to_dict() == dict.fromkeys(PBC_CLASSES, 100)
    assert not table["subject_known"].any() and table["subject"].is_unique
    assert table.attrs["problems"] == []


def test_embedded_manifest_is_the_shared_one(shared_data: Path) -> None:
    shared = pd.read_csv(shared_data / "cnmc-manifest.csv", keep_default_na=False)
    embedded = cnmc_manifest()
    assert len(embedded) == len(shared) == 15_115
    assert (("C-NMC_Leukemia/" + embedded["path"]).tolist()) == shared["path"].tolist()
    assert embedded["lfs_sha256"].tolist() == shared["lfs_sha256"].tolist()
    assert embedded["bytes"].tolist() == shared["bytes"].tolist()
