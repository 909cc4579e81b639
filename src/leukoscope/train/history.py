"""Per-epoch history of a run from its CSV logs, across resumes.

Each (re)start of a run writes a new `logs/csv/version_<k>/metrics.csv` (Lightning's CSVLogger would
delete an existing file). Epochs redone after a resume appear twice; the later version wins.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

CSV_DIR = "csv"
EPOCH_COLUMNS = (
    "train/loss",
    "val/loss",
    "train/weighted_f1",
    "val/weighted_f1",
    "train/accuracy",
    "val/accuracy",
)


def _version(path: Path) -> int:
    match = re.search(r"version_(\d+)", str(path))
    return int(match.group(1)) if match else -1


def read_history(logs_dir: str | Path) -> pd.DataFrame:
    """One row per epoch with the epoch-level columns that were logged (empty frame when none)."""
    files = sorted(Path(logs_dir, CSV_DIR).glob("version_*/metrics.csv"), key=_version)
    frames = []
    for order, path in enumerate(files):
        try:
            frame = pd.read_csv(path)
        except (pd.errors.EmptyDataError, OSError):
            continue
        if "epoch" in frame.columns:
            frames.append(frame.assign(_order=order))
    if not frames:
        return pd.DataFrame(columns=["epoch", *EPOCH_COLUMNS])
    rows = pd.concat(frames, ignore_index=True).dropna(subset=["epoch"])
    columns = [c for c in rows.columns if c in EPOCH_COLUMNS or c == "train/images_per_s"]
    per_epoch = rows.groupby(["epoch", "_order"])[columns].last()  # last value logged in that run
    latest = per_epoch.reset_index().sort_values(["epoch", "_order"]).groupby("epoch").last()
    out = latest.drop(columns="_order").reset_index()
    out["epoch"] = out["epoch"].astype(int)
    return out
