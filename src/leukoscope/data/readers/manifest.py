"""A CSV manifest `path,label[,subject][,split]`, paths relative to the CSV file (or absolute).

The most general layout: any data a lab has can be described by one CSV, subjects included. Rows without
a subject become their own subject (`subject_known` False). Missing files are kept: `data check` reports
them, as it does any unreadable image.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from leukoscope.data.readers._base import Reader, finish_table, register_reader
from leukoscope.data.table import problem
from leukoscope.errors import DataError

REQUIRED = ("path", "label")


def detect(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".csv"


def read(path: Path) -> pd.DataFrame:
    df = _load(path)
    problems: list[dict[str, str]] = []
    base = path.parent
    rows: list[dict] = []
    for i, rec in enumerate(df.to_dict("records"), start=2):  # line 1 is the header
        rel = rec["path"]
        if not rel:
            problems.append(problem("bad_row", f"{path}:{i}", "empty path; row ignored"))
            continue
        full = os.path.abspath(base / rel)
        subject = rec.get("subject", "")
        rows.append(
            {
                "path": full,
                "label": rec["label"],
                "subject": subject or Path(rel).as_posix(),
                "split": rec.get("split", ""),
                "source": "csv",
                "subject_known": bool(subject),
            }
        )
    return finish_table(
        rows,
        problems,
        path,
        empty="CSV manifest lists no images",
        hint="add rows: path,label[,subject][,split]",
    )


def _load(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(
            f"cannot parse CSV manifest ({type(exc).__name__})", path=path, hint="save it as UTF-8 CSV"
        ) from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(
            f"CSV manifest lacks column(s) {', '.join(missing)}",
            path=path,
            hint="the header must be path,label[,subject][,split]",
        )
    return df.apply(lambda col: col.str.strip())


register_reader(
    Reader(
        name="csv",
        detect=detect,
        read=read,
        priority=10,
        description="CSV manifest: path,label[,subject][,split], paths relative to the CSV",
    )
)
