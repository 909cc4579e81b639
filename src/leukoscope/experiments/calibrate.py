"""Calibrate a trained run on VALIDATION data: temperature (and optionally the decision threshold).

Both are written into the run's model card (atomically), where every predictor (temperature) and
prediction (threshold) pick them up; an export made before calibrating is then stale and skipped. Nothing
else about the model changes: temperature scaling needs raw logits, which is what the saved model
returns. The validation set must not be a test split: tuning on the test set would make its scores
optimistic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leukoscope.errors import ModelError
from leukoscope.infer.batches import predict_batched


def raw_logits(predictor: Any, images: Any, batch_size: int = 64) -> np.ndarray:
    """Logits before any temperature (the saved model returns logits): (N,) for two classes, (N, C)
    otherwise; `batch_size` rows of the memory map at a time."""
    return predict_batched(predictor.logits, images, batch_size).astype(np.float64)


def logits_targets(logits: np.ndarray, y: np.ndarray, card: Any) -> np.ndarray:
    """What the NLL compares logits with: is-positive for one two-class logit, class indices otherwise."""
    return (y == card.positive_index).astype(int) if logits.ndim == 1 else y


def probs_from_logits(logits: np.ndarray, card: Any, temperature: float) -> np.ndarray:
    """(N, C) probabilities in class_names order, as a predictor would give with this temperature."""
    from leukoscope.evaluate.calibration import apply_temperature

    probs = apply_temperature(logits, temperature)
    if logits.ndim == 1 and card.positive_index == 0:
        probs = probs[:, ::-1]  # apply_temperature puts the positive class last
    return np.ascontiguousarray(probs)


def calibrate_run(
    run_dir: str | Path,
    val: str | Path,
    *,
    threshold: str = "fixed",
    n_bins: int = 15,
    cache_dir: str | None = None,
    val_split: str | None = None,
) -> dict[str, Any]:
    """Fit T (and the threshold) on `val`, store them in the card, write before/after reliability diagrams."""
    from leukoscope.evaluate.calibration import calibration_summary, fit_temperature, reliability_diagram
    from leukoscope.evaluate.thresholds import tune_for_classes
    from leukoscope.experiments._data import drop_unreadable, labels_of, validation_table
    from leukoscope.infer.batches import table_images
    from leukoscope.infer.loading import load_model_predictor
    from leukoscope.models.card import ModelCard

    run_dir = Path(run_dir)
    card = ModelCard.load(run_dir)
    table = validation_table(val, card.class_names, [run_dir], val_split)
    cached = table_images(table, card.preprocess, cache_dir)
    ok = np.asarray(cached.ok, dtype=bool)
    table = drop_unreadable(table, ok, "validation")
    predictor = load_model_predictor(run_dir, backend="keras", precision="fp32")
    logits = raw_logits(predictor, cached.array)[ok]
    y = labels_of(table, card.class_names)
    if len(np.unique(y)) < 2:
        raise ModelError("calibration needs validation images of at least two classes", path=val)
    temperature = fit_temperature(logits, logits_targets(logits, y, card))
    before = probs_from_logits(logits, card, 1.0)
    after = probs_from_logits(logits, card, temperature)
    out = run_dir / "calibration"
    pos = card.positive_index
    reliability_diagram(y, before, out / "reliability_before.png", n_bins, title="before (T=1)")
    reliability_diagram(y, after, out / "reliability_after.png", n_bins, title=f"after (T={temperature:.2f})")
    new_threshold = card.threshold
    if card.num_classes == 2:
        new_threshold = tune_for_classes(
            threshold, y, after, card.class_names, card.positive_class, card.threshold
        )
    result = {
        "run_dir": str(run_dir),
        "n": len(y),
        "temperature": temperature,
        "threshold": new_threshold,
        "threshold_method": threshold,
        "before": calibration_summary(y, before, pos, n_bins) | {"nll": _nll(y, before)},
        "after": calibration_summary(y, after, pos, n_bins) | {"nll": _nll(y, after)},
        "val": str(val),
    }
    card.temperature = float(temperature)
    card.threshold = float(new_threshold)
    card.metrics = dict(card.metrics) | {"calibration": result}
    card.save(run_dir)  # atomic
    return result


def _nll(y: np.ndarray, probs: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))))
