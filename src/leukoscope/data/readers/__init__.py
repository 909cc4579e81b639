"""Dataset readers: each known layout is one registered `Reader`; `read_dataset` picks one by looking.

Adding a format = one module here that calls `register_reader(Reader(...))`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leukoscope.data.readers import allidb2, cnmc, folder, manifest  # noqa: F401  (they register)
from leukoscope.data.readers._base import READERS, Reader, register_reader
from leukoscope.errors import DataError

__all__ = ["READERS", "Reader", "detect_layout", "read_dataset", "register_reader"]

_KNOWN = "a C-NMC folder, an ALL-IDB2 folder, an image folder (one sub-folder per class) or a CSV manifest"


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError("dataset not found", path=path, hint=f"pass {_KNOWN}")
    return path


def detect_layout(path: str | Path) -> str:
    """Name of the first reader (by priority) that recognises `path`; DataError when none does."""
    path = _existing(path)
    for reader in sorted((READERS.get(n) for n in READERS.names()), key=lambda r: (r.priority, r.name)):
        if reader.detect(path):
            return reader.name
    what = "folder holds no images in a known layout" if path.is_dir() else "file is not a CSV manifest"
    raise DataError(what, path=path, hint=f"pass {_KNOWN}")


def read_dataset(path: str | Path, reader: str | None = None) -> pd.DataFrame:
    """Read a dataset into the sample table (see `leukoscope.data.table`), detecting its layout unless told.

    Files that the reader could not place are in `table.attrs["problems"]`; unreadable images are kept
    (decoding is `data check`'s and the cache's job).
    """
    path = _existing(path)
    name = reader or detect_layout(path)
    table = READERS.get(name).read(path)
    table.attrs["layout"] = name
    table.attrs["root"] = str(path)
    return table
