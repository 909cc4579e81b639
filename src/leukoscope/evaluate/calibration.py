"""Calibration: expected calibration error, reliability diagrams, temperature scaling.

ECE uses equal-width confidence bins. Mode `top-label` (the default, Guo et al. 2017) bins the
probability of the predicted class and compares it with accuracy; it works for any number of classes.
Mode `positive` (two classes) bins P(positive class) and compares it with the positive rate, which is
what a clinician reading "P(ALL) = 0.8" relies on. Reports state which mode they used.

Temperature scaling divides logits by one scalar T fitted on VALIDATION logits by minimising the negative
log-likelihood over log T (scipy `minimize_scalar`, bounded); it changes confidence, never the ranking
(AUC) or argmax. The fitted T goes into `card.temperature`, which every predictor (infer.predictor) applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leukoscope.errors import DataError

ECE_MODES = ("top-label", "positive")
LOG_T_BOUNDS = (-4.6, 4.6)  # T in [0.01, 100]


def _confidence_outcome(
    y_true: np.ndarray, probs: np.ndarray, mode: str, positive_index: int
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int).ravel()
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(y):
        raise DataError(f"calibration needs (N, C) probabilities for N labels, got {probs.shape} / {len(y)}")
    if mode == "top-label":
        return probs.max(axis=1), (probs.argmax(axis=1) == y).astype(np.float64)
    if mode == "positive":
        if probs.shape[1] != 2:
            raise DataError("ECE mode 'positive' needs two classes; use 'top-label'")
        return probs[:, positive_index], (y == positive_index).astype(np.float64)
    raise DataError(f"unknown ECE mode {mode!r}", hint=f"choose one of: {', '.join(ECE_MODES)}")


def reliability_bins(
    y_true: np.ndarray,
    probs: np.ndarray,
    n_bins: int = 15,
    mode: str = "top-label",
    positive_index: int = 1,
) -> dict[str, Any]:
    """Per equal-width bin: count, mean confidence, observed frequency; plus ECE and MCE."""
    conf, outcome = _confidence_outcome(y_true, probs, mode, positive_index)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.float64)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    sum_out = np.bincount(idx, weights=outcome, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, sum_conf / counts, np.nan)
        freq = np.where(counts > 0, sum_out / counts, np.nan)
    gaps = np.where(counts > 0, np.abs(freq - mean_conf), 0.0)
    n = max(1.0, counts.sum())
    return {
        "mode": mode,
        "n_bins": n_bins,
        "edges": edges,
        "counts": counts.astype(int),
        "confidence": mean_conf,
        "frequency": freq,
        "ece": float((counts * gaps).sum() / n),
        "mce": float(gaps.max()) if counts.any() else 0.0,
    }


def expected_calibration_error(
    y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15, mode: str = "top-label", positive_index: int = 1
) -> float:
    """ECE = sum_b (n_b / N) * |frequency_b - confidence_b| over equal-width bins."""
    return reliability_bins(y_true, probs, n_bins, mode, positive_index)["ece"]


def reliability_diagram(
    y_true: np.ndarray,
    probs: np.ndarray,
    out_path: str | Path | None = None,
    n_bins: int = 15,
    mode: str = "top-label",
    positive_index: int = 1,
    title: str = "Reliability diagram",
) -> bytes:
    """PNG bytes (and `out_path`, written atomically) of frequency vs confidence with a count histogram."""
    from leukoscope._io import atomic_path
    from leukoscope._plot import new_figure, png_bytes

    bins = reliability_bins(y_true, probs, n_bins, mode, positive_index)
    centers = (bins["edges"][:-1] + bins["edges"][1:]) / 2
    width = 1.0 / n_bins
    fig, (ax, axh) = new_figure(
        4.6, 5.2, 2, 1, layout="tight", gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    filled = bins["counts"] > 0
    ax.bar(centers[filled], bins["frequency"][filled], width=width * 0.95, color="#4c72b0", label="observed")
    ax.bar(
        centers[filled],
        bins["confidence"][filled] - bins["frequency"][filled],
        bottom=bins["frequency"][filled],
        width=width * 0.95,
        color="#dd8452",
        alpha=0.45,
        label="gap",
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    ylabel = "accuracy" if mode == "top-label" else "positive rate"
    ax.set(ylim=(0, 1), xlim=(0, 1), ylabel=ylabel, title=f"{title} (ECE {bins['ece']:.3f}, {mode})")
    ax.legend(loc="upper left", fontsize=8)
    axh.bar(centers, bins["counts"], width=width * 0.95, color="#888888")
    axh.set(xlabel="confidence" if mode == "top-label" else "P(positive)", ylabel="images")
    data = png_bytes(fig)
    if out_path is not None:
        with atomic_path(out_path) as tmp:
            tmp.write_bytes(data)
    return data


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    if z.ndim == 1:  # two classes, logit of the positive class; y in {0, 1} = is positive
        return float(np.mean(np.logaddexp(0.0, z) - y * z))
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probs[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """T minimising validation NLL of softmax(logits / T) (sigmoid for (N,) two-class logits).

    `y`: for (N,) logits, 1 where the image is the positive class; for (N, C) logits, class indices.
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y).astype(int).ravel()
    if len(logits) != len(y) or len(y) == 0:
        raise DataError(f"temperature scaling needs logits for every label, got {len(logits)} / {len(y)}")
    result = minimize_scalar(
        lambda log_t: _nll(logits, y, float(np.exp(log_t))),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (N, C) from logits / T; (N,) two-class logits give [1 - p, p] (positive last)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    if z.ndim == 1:
        p = 1.0 / (1.0 + np.exp(-z))
        return np.stack([1.0 - p, p], axis=1)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def calibration_summary(
    y_true: np.ndarray, probs: np.ndarray, positive_index: int = 1, n_bins: int = 15
) -> dict[str, Any]:
    """ECE (top-label; plus positive-class ECE for two classes), MCE and Brier score, for metrics.json."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true).astype(int)
    top = reliability_bins(y, probs, n_bins, "top-label")
    onehot = np.eye(probs.shape[1])[y]
    out: dict[str, Any] = {
        "ece": top["ece"],
        "mce": top["mce"],
        "ece_mode": "top-label",
        "ece_bins": n_bins,
        "brier": float(np.mean(np.sum((probs - onehot) ** 2, axis=1))),
    }
    if probs.shape[1] == 2:
        out["ece_positive"] = reliability_bins(y, probs, n_bins, "positive", positive_index)["ece"]
    return out
