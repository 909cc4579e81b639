"""The C-NMC 2019 (ISBI) challenge's own submission format.

The evaluation server expected a zip holding `isbi_valid.predict`: one line per test image, `1` for ALL
and `0` for HEM, with the images in NUMERIC order of their file names (1.bmp, 2.bmp, ..., 10.bmp; not the
lexicographic 1, 10, 100, 2). A misordered file scores as chance, so the order is enforced here.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path

from leukoscope._io import atomic_path
from leukoscope.errors import DataError

log = logging.getLogger(__name__)

PREDICT_NAME = "isbi_valid.predict"


def numeric_stem(path: str | Path) -> int:
    stem = Path(path).stem
    if not stem.isdigit():
        raise DataError(
            "the ISBI submission needs numerically named images (1.bmp, 2.bmp, ...)",
            path=path,
            hint="use the challenge's test folder as it was released",
        )
    return int(stem)


def labels_to_01(labels: Sequence[str], positive: str = "all") -> list[int]:
    """Class names -> 1 for ALL (the challenge's positive class), 0 otherwise."""
    return [1 if str(label).lower() == positive else 0 for label in labels]


def submission_lines(paths: Sequence[str | Path], labels_01: Sequence[int]) -> list[str]:
    if len(paths) != len(labels_01):
        raise DataError(f"{len(paths)} images but {len(labels_01)} predictions")
    keyed = sorted(zip((numeric_stem(p) for p in paths), labels_01, strict=True), key=lambda t: t[0])
    numbers = [n for n, _ in keyed]
    if len(set(numbers)) != len(numbers):
        dup = next(n for i, n in enumerate(numbers[1:]) if n == numbers[i])
        raise DataError(f"two images share the number {dup}", hint="pass each test image once")
    for _, label in keyed:
        if int(label) not in (0, 1):
            raise DataError(f"ISBI predictions must be 0 or 1, got {label!r}")
    return [str(int(label)) for _, label in keyed]


def write_isbi_submission(paths: Sequence[str | Path], labels_01: Sequence[int], out_zip: str | Path) -> Path:
    """Write `out_zip` containing `isbi_valid.predict` (atomically); returns the zip's path."""
    lines = submission_lines(paths, labels_01)
    out_zip = Path(out_zip)
    with atomic_path(out_zip) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(PREDICT_NAME, "\n".join(lines) + "\n")
    return out_zip


def isbi_submission(
    paths: Sequence[str | Path], labels: Sequence[str], positive: str, out_zip: str | Path
) -> Path:
    """Class names called per image -> the challenge's zip (`positive` -> 1): `leukoscope predict
    --submission isbi` and the workflow's submission rule both write it so."""
    return write_isbi_submission(paths, labels_to_01(labels, positive), out_zip)


def submission_stage(predictions: str | Path, spec: str | Path, out_zip: str | Path) -> Path:
    """The workflow's submission rule: the ensemble's final-test calls at its spec's threshold."""
    import pandas as pd

    from leukoscope._io import read_json
    from leukoscope.evaluate.metrics import decide
    from leukoscope.evaluate.predictions import class_names_of, prob_columns

    settings = read_json(spec)
    table = pd.read_parquet(predictions)
    final = table[table["split"] == "final"]
    classes = class_names_of(table)
    positive = settings.get("positive_class") or classes[-1]
    probs = final[prob_columns(classes)].fillna(0.0).to_numpy()
    pred = decide(probs, float(settings.get("threshold", 0.5)), classes.index(positive)) if len(final) else []
    labels = [classes[i] for i in pred]
    isbi_submission(final["path"].tolist(), labels, positive, out_zip)
    called = sum(1 for label in labels if label == positive)
    log.info("ISBI submission: %d final-test images, %d called %s", len(final), called, positive)
    return Path(out_zip)
