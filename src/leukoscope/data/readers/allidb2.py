"""ALL-IDB2 (Labati et al. 2011): `ImNNN_1.tif` is a blast (ALL), `ImNNN_0.tif` a normal cell (HEM).

The dataset says nothing about patients, so each image is its own subject (`subject_known` False): a
grouped split cannot keep one patient's cells together, and reports must say so.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from leukoscope.data.readers._base import Reader, finish_table, list_images, own_subject_row, register_reader
from leukoscope.data.table import problem

NAME_RE = re.compile(r"^Im\d+_([01])\.tiff?$", re.IGNORECASE)
LABELS = {"1": "all", "0": "hem"}


def detect(path: Path) -> bool:
    for folder in (path, path / "img"):
        if folder.is_dir() and any(NAME_RE.match(p.name) for p in folder.iterdir()):
            return True
    return False


def read(path: Path) -> pd.DataFrame:
    rows: list[dict] = []
    problems: list[dict[str, str]] = []
    for image in list_images(path, recursive=True):
        match = NAME_RE.match(image.name)
        if match is None:
            problems.append(problem("unparsed_name", image, "not named ImNNN_0.tif / ImNNN_1.tif; left out"))
            continue
        rows.append(own_subject_row(image, path, LABELS[match.group(1)], "allidb2"))
    return finish_table(
        rows,
        problems,
        path,
        empty="no ALL-IDB2 images (ImNNN_0.tif / ImNNN_1.tif) found",
        hint="point to the img/ folder",
    )


register_reader(
    Reader(
        name="allidb2",
        detect=detect,
        read=read,
        priority=20,
        description="ALL-IDB2: ImNNN_1.tif = ALL, ImNNN_0.tif = HEM (no subject information)",
    )
)
