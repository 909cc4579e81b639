"""What a reader is, the registry they join, and the file-listing helpers they share."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from leukoscope.data.images import is_image_name
from leukoscope.data.table import make_table, with_problems
from leukoscope.errors import DataError
from leukoscope.registry import Registry


@dataclass(frozen=True)
class Reader:
    """A dataset layout: `detect` says whether a path looks like it, `read` turns it into a sample table.

    `priority` orders auto-detection (lower first), so a specific layout (C-NMC) wins over a generic one
    (a folder per class) that would also match it.
    """

    name: str
    detect: Callable[[Path], bool]
    read: Callable[[Path], pd.DataFrame]
    priority: int
    description: str


READERS: Registry[Reader] = Registry("dataset reader")


def register_reader(reader: Reader) -> Reader:
    return READERS.register(reader.name)(reader)


def natural_key(path: Path) -> list[object]:
    """Sort 2.bmp before 10.bmp, so tables come out in the order people expect."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def walk_files(root: Path) -> Iterator[Path]:
    """Every non-hidden file under `root` (hidden folders skipped), in a stable order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def list_images(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Image files (by suffix) in `folder`; decoding, and so finding bad files, is `data check`'s job."""
    if not folder.is_dir():
        return []
    files = walk_files(folder) if recursive else (p for p in folder.iterdir() if p.is_file())
    return sorted((p for p in files if is_image_name(p) and not is_hidden(p)), key=natural_key)


def subdirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and not is_hidden(p)), key=natural_key)


def has_image(folder: Path) -> bool:
    return any(is_image_name(p) for p in walk_files(folder))


def abspath(path: Path) -> str:
    return os.path.abspath(path)


def own_subject(path: Path, root: Path) -> str:
    """Where no subject is known each image is its own: its path relative to the dataset root."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return abspath(path)


def own_subject_row(image: Path, root: Path, label: str, source: str) -> dict:
    """A sample-table row of a layout without subjects: the image is its own subject."""
    return {
        "path": abspath(image),
        "label": label,
        "subject": own_subject(image, root),
        "split": "",
        "source": source,
        "subject_known": False,
    }


def finish_table(
    rows: list[dict], problems: list[dict[str, str]], path: Path, *, empty: str, hint: str
) -> pd.DataFrame:
    """The sample table of what a reader found, with its problems; one error (`empty`) when it found none."""
    if not rows:
        raise DataError(empty, path=path, hint=hint)
    return with_problems(make_table(rows), problems)
