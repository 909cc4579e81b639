"""What the real C-NMC 2019 dataset is, file by file, so a user's copy can be checked against it.

The facts (path, class folder, sha256, byte size of each of its 15,115 files) are embedded compressed
(`cnmc_manifest.csv.gz`); the images themselves are not redistributable and never ship.
"""

from __future__ import annotations

import gzip
import io
from functools import cache
from importlib import resources

import pandas as pd

ROOT_NAME = "C-NMC_Leukemia"


@cache
def cnmc_manifest() -> pd.DataFrame:
    """Columns path (relative to the dataset root, posix), label_from_folder, lfs_sha256, bytes, part."""
    blob = resources.files("leukoscope.data").joinpath("cnmc_manifest.csv.gz").read_bytes()
    df = pd.read_csv(io.BytesIO(gzip.decompress(blob)), dtype={"bytes": "int64"}, keep_default_na=False)
    df["path"] = df["path"].str.removeprefix(f"{ROOT_NAME}/")
    df["part"] = df["path"].map(part_of)
    return df


def part_of(relpath: str) -> str:
    """The folder a file sits in ('training_data/fold_0/all'), which is how C-NMC's parts are counted."""
    head, _, _ = relpath.rpartition("/")
    return head or "."
