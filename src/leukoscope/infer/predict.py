"""Batch prediction over files, folders and globs: decode in threads, one row per image.

Decoding runs in a thread pool (OpenCV releases the GIL) one batch ahead of the model, so at most two
batches of decoded images are in memory however many files there are. A file that cannot be read or
decoded becomes a row with an `error`, never an aborted batch: a lab running thousands of images wants
every good result plus the list of files to look at.
"""

from __future__ import annotations

import csv
import glob
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leukoscope.config import PreprocessConfig
from leukoscope.data.images import DEFAULT_MAX_PIXELS, is_image_name, read_image
from leukoscope.errors import ConfigError, DataError, LeukoScopeError
from leukoscope.infer.predictor import Predictor, predict_with_tta, predicted_labels
from leukoscope.infer.tta import check_mode

GLOB_CHARS = ("*", "?", "[")
OUTPUT_SUFFIXES = (".csv", ".json", ".parquet")
PREFETCH = 2  # batches decoded ahead of the one being predicted


@dataclass
class Prediction:
    path: str
    predicted: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    model: str = ""
    error: str = ""

    def row(self, class_names: Sequence[str]) -> dict[str, Any]:
        """Flat record: path, predicted, p_<class>..., model, error (probabilities None on error rows)."""
        probs = {f"p_{c}": self.probabilities.get(c) for c in class_names}
        return {
            "path": self.path,
            "predicted": self.predicted,
            **probs,
            "model": self.model,
            "error": self.error,
        }


def default_workers() -> int:
    """Decoding threads: the cores (OpenCV decodes without holding the GIL), at most 8."""
    return min(8, max(1, os.cpu_count() or 1))


def find_images(inputs: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """Expand files, folders (recursive, image suffixes) and globs -> [(path, error)] in input order.

    Files named explicitly are kept whatever their suffix (decoding decides); a missing path or a glob
    that matches nothing becomes an error entry so the user sees it next to the results.
    """
    found: dict[Path, str] = {}
    for raw in inputs:
        text = str(raw)
        if any(ch in text for ch in GLOB_CHARS) and not Path(text).exists():
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
            if not matches:
                found.setdefault(Path(text), "no files match this pattern")
            for match in matches:
                _add_path(Path(match), found, explicit=False)
        else:
            _add_path(Path(text).expanduser(), found, explicit=True)
    if not found:
        raise DataError("no images to predict", hint="pass image files, folders or glob patterns")
    return list(found.items())


def _add_path(path: Path, found: dict[Path, str], *, explicit: bool) -> None:
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file() and is_image_name(p)):
            found.setdefault(child, "")
    elif path.is_file():
        if explicit or is_image_name(path):
            found.setdefault(path, "")
    elif explicit:
        found.setdefault(path, "file not found")


def load_item(
    item: tuple[Path, str], cfg: PreprocessConfig, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray | None, str]:
    """Decode + preprocess one file; errors are returned, not raised, so one file never stops a batch."""
    from leukoscope.preprocess.pipeline import preprocess_image

    path, error = item
    if error:
        return None, error
    try:
        return preprocess_image(read_image(path, max_pixels=max_pixels), cfg), ""
    except LeukoScopeError as exc:
        return None, exc.what
    except Exception as exc:  # a decoder or OpenCV failure on a hostile file must stay one row
        return None, f"cannot preprocess image ({type(exc).__name__}: {exc})"


Decoded = list[tuple[int, np.ndarray | None, str]]


def decoded_batches(
    items: Sequence[tuple[Path, str]], cfg: PreprocessConfig, batch_size: int, workers: int
) -> Iterator[Decoded]:
    """(index, image or None, error) per item, a batch at a time, decoded `PREFETCH` batches ahead."""
    starts = range(0, len(items), batch_size)
    if workers <= 0:
        for start in starts:
            chunk = range(start, min(start + batch_size, len(items)))
            yield [(i, *load_item(items[i], cfg)) for i in chunk]
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending: deque[list[tuple[int, Future[tuple[np.ndarray | None, str]]]]] = deque()
        for start in starts:
            chunk = range(start, min(start + batch_size, len(items)))
            pending.append([(i, pool.submit(load_item, items[i], cfg)) for i in chunk])
            if len(pending) > PREFETCH:
                yield _collect(pending.popleft())
        while pending:
            yield _collect(pending.popleft())


def _collect(batch: list[tuple[int, Future[tuple[np.ndarray | None, str]]]]) -> Decoded:
    return [(i, *future.result()) for i, future in batch]


def predict_paths(
    predictor: Predictor,
    inputs: Iterable[str | Path],
    *,
    tta: str = "none",
    batch_size: int = 32,
    workers: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[Prediction]:
    """One `Prediction` per found file, in input order. `workers`: decoding threads (0: this thread)."""
    check_mode(tta)
    if batch_size < 1:
        raise ConfigError(f"batch size is {batch_size}", hint="use 1 or more")
    items = find_images(inputs)
    workers = default_workers() if workers is None else max(0, workers)
    results: list[Prediction | None] = [None] * len(items)
    for batch in decoded_batches(items, predictor.card.preprocess, batch_size, workers):
        for index, prediction in _predict_batch(predictor, items, batch, tta):
            results[index] = prediction
        if on_batch is not None:
            on_batch(len(batch))
    return [r for r in results if r is not None]


def _predict_batch(
    predictor: Predictor, items: Sequence[tuple[Path, str]], batch: Decoded, tta: str
) -> Iterable[tuple[int, Prediction]]:
    card, model_id = predictor.card, predictor.model_id
    good = [(i, img) for i, img, err in batch if not err and img is not None]
    for i, _, err in batch:
        if err:
            yield i, Prediction(str(items[i][0]), None, model=model_id, error=err)
    if not good:
        return
    probs = predict_with_tta(predictor, np.stack([img for _, img in good]), tta)
    labels = predicted_labels(probs, card)
    for (i, _), p, label in zip(good, probs, labels, strict=True):
        values = {c: float(v) for c, v in zip(card.class_names, p, strict=True)}
        yield i, Prediction(str(items[i][0]), label, values, model=model_id)


def write_predictions(predictions: Sequence[Prediction], class_names: Sequence[str], out: str | Path) -> Path:
    """CSV, JSON or Parquet by suffix, written atomically."""
    from leukoscope._io import atomic_open, atomic_path, write_json

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(
            f"cannot write predictions as {suffix or 'a file without suffix'}",
            path=out,
            hint="use .csv, .json or .parquet",
        )
    rows = [p.row(class_names) for p in predictions]
    columns = list(rows[0]) if rows else list(Prediction("", None).row(class_names))
    if suffix == ".json":
        return write_json(out, rows)
    if suffix == ".parquet":
        import pandas as pd

        frame = pd.DataFrame(rows, columns=columns)
        for c in class_names:
            frame[f"p_{c}"] = frame[f"p_{c}"].astype("float64")
        with atomic_path(out) as tmp:
            frame.to_parquet(tmp, index=False, engine="pyarrow")
        return out
    with atomic_open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return out
