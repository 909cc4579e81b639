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

Extra columns are allowed (e.g. `crop_box` for C-NMC final test images that must be centre-cropped).
"""

from __future__ import annotations

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
    return df.reset_index(drop=True)


def class_names(table: pd.DataFrame) -> list[str]:
    """Labelled classes in a stable order (sorted by name)."""
    return sorted(c for c in table["label"].unique() if c)
