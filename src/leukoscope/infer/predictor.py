"""One interface over every kind of saved model, so `predict`, `evaluate`, `serve` and ensembles never care
which runtime does the work.

`load_predictor(path)` takes a model folder (`model_card.json` + `model.keras`, e.g. a run directory or the
workflow's `results/models/<backbone>/<loss>/`), its `model.keras`, an ensemble spec, or an export made by
`leukoscope export` (`.onnx`, `.tflite`, a SavedModel folder). Every predictor maps preprocessed uint8 NHWC
images to (N, num_classes) float32 probabilities in `card.class_names` order, temperature included.

Backends: `keras` (TensorFlow, the model as trained: `infer.keras_backend`), `onnx` (onnxruntime) and
`tflite` (LiteRT) (`infer.runtimes`); which one `auto` picks, and when an export is built on first use, is
`infer.loading`'s. An ensemble spec loads through `infer.ensemble`, whose members load through
`infer.loading`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from leukoscope.errors import DataError
from leukoscope.infer.batches import predict_batched, table_images
from leukoscope.infer.ensemble import Ensemble, load_ensemble
from leukoscope.infer.loading import check_backend, export_kind, load_model_predictor
from leukoscope.infer.spec import is_ensemble_spec
from leukoscope.infer.tta import tta_predict
from leukoscope.models.card import ModelCard

log = logging.getLogger(__name__)
TABLE_BATCH = 64  # images per `predict_arrays` call when predicting a whole table (`predict_table`)


class Predictor(Protocol):
    """What every backend offers: the card, and probabilities for preprocessed uint8 NHWC images."""

    card: ModelCard
    model_id: str
    backend: str  # "keras" | "onnx" | "tflite" | "saved_model" (an ensemble: its members')
    precision: str  # "fp32" | "bf16"

    def predict_arrays(self, images: np.ndarray) -> np.ndarray: ...


def preprocess_rgb(rgb: np.ndarray, card: ModelCard) -> np.ndarray:
    """The card's deterministic preprocessing: what the model saw in training."""
    from leukoscope.preprocess.pipeline import preprocess_image

    return preprocess_image(rgb, card.preprocess)


def predict_with_tta(predictor: Predictor, images: np.ndarray, tta: str = "none") -> np.ndarray:
    return tta_predict(predictor.predict_arrays, images, tta)


def predicted_labels(probs: np.ndarray, card: ModelCard) -> list[str]:
    """Two classes: the card's threshold on P(positive); N classes: the most probable class."""
    probs = np.asarray(probs)
    if card.num_classes == 2:
        pos = card.positive_index
        idx = np.where(probs[:, pos] >= card.threshold, pos, 1 - pos)
    else:
        idx = probs.argmax(axis=1)
    return [card.class_names[i] for i in idx]


def model_kind(path: Path) -> str:
    """ensemble | saved_model | onnx | tflite | folder (a model folder, or its model.keras)."""
    return "ensemble" if is_ensemble_spec(path) else export_kind(path)


def load_predictor(
    path: str | Path,
    *,
    backend: str = "auto",
    precision: str = "auto",
    compile: bool = False,
    cache_export: bool = False,
) -> Predictor:
    """The predictor for a model folder, its model.keras, an ensemble spec or an export.

    `precision` (auto is fp32; bf16, fp16) and `compile` (XLA) apply to the Keras backend only.
    `cache_export`: with backend auto, a model folder without an up-to-date export gets one built and
    kept beside its model.keras (`infer.loading.cache_first_export`), so this and later calls run on it.
    """
    check_backend(backend)
    if is_ensemble_spec(path):
        return load_ensemble(path, precision, compile=compile, backend=backend, cache_export=cache_export)
    return load_model_predictor(
        path, backend=backend, precision=precision, compile=compile, cache_export=cache_export
    )


def predict_table(
    predictor: Predictor,
    table: Any,
    *,
    tta: str = "none",
    cache_dir: str | Path | None = None,
    batch_size: int = TABLE_BATCH,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) float32 probabilities of a sample table's images (NaN where unreadable) and the readable mask.

    The images go through the preprocessing cache with the card's preprocessing, as in training; an
    ensemble whose members preprocess differently reads each member's own crops.
    """
    if isinstance(predictor, Ensemble) and not predictor.shared_preprocess:
        member_probs, conf, ok = predictor.table_members(table, tta, cache_dir)
        probs = predictor.combine(member_probs, conf).astype(np.float32)
    else:
        cached = table_images(table, predictor.card.preprocess, cache_dir, workers=2, progress=progress)
        ok = np.asarray(cached.ok, dtype=bool)
        if not ok.all():
            example = next(iter(cached.errors.values()), "")
            log.warning("skipping %d unreadable images; e.g. %s", int((~ok).sum()), example)
        if not ok.any():
            raise DataError(
                "none of the images could be read", hint="run `leukoscope data check` on the data"
            )
        width = predictor.card.num_classes
        probs = predict_batched(predictor.predict_arrays, cached.array, batch_size, tta=tta, width=width)
    probs[~ok] = np.nan
    return probs, ok
