"""The one sample table every reader yields.

A `pandas.DataFrame` with columns:

| column  | meaning |
| ---     | --- |
| path    | absolute path of the image file (str) |
| label   | class name (str), or "" when unlabelled (e.g. C-NMC final test) |
| subject | subject id (str); where none is known, the image's own id and `subject_known` is False |
| split   | the dataset's own split or fold ("fold_0", "prelim", "final", "train", ...) or "" |
| source  | the reader that produced the row ("cnmc", "allidb2", "folder", "csv") |
| subject_known | whether `subject` came from the data (True) or is the image itself (False) |

Extra columns are allowed, e.g. `center_crop` (int): side of the centred square to keep (C-NMC final test
images are 600x600 and must be centre-cropped to 450). Readers list what they could not place (unparsable
names, label conflicts) in `table.attrs["problems"]` (see `table_problems`) instead of guessing.
"""

from __future__ import annotations

import os

import pandas as pd

COLUMNS = ["path", "label", "subject", "split", "source", "subject_known"]


def make_table(rows: list[dict]) -> pd.DataFrame:
    """Build a table with the standard columns and dtypes (missing optional fields become empty)."""
    df = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = True if col == "subject_known" else ""
    df = df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]
    for col in ("path", "label", "subject", "split", "source"):
        df[col] = df[col].fillna("").astype(str)
    df["subject_known"] = df["subject_known"].astype(bool)
    if "center_crop" in df.columns:
        df["center_crop"] = df["center_crop"].fillna(0).astype(int)
    return df.reset_index(drop=True)


def class_names(table: pd.DataFrame) -> list[str]:
    """Labelled classes in a stable order (sorted by name)."""
    return sorted(c for c in table["label"].unique() if c)


def problem(kind: str, path: str | os.PathLike[str], message: str) -> dict[str, str]:
    """One finding about one file: `kind` is a short machine-readable tag, `message` says what to do.

    A `Path` is made absolute (as table paths are); a str is kept as given (e.g. "manifest.csv:12").
    """
    where = os.path.abspath(path) if isinstance(path, os.PathLike) else str(path)
    return {"kind": kind, "path": where, "message": message}


def table_problems(table: pd.DataFrame) -> list[dict[str, str]]:
    """What the reader noticed but did not guess about (unparsable names, label conflicts, ...)."""
    return list(table.attrs.get("problems", []))


def with_problems(table: pd.DataFrame, problems: list[dict[str, str]]) -> pd.DataFrame:
    table.attrs["problems"] = list(problems)
    return table
