"""Where each training job's time went: its first step (graph tracing / XLA compile) and its steady speed.

On a GPU the first step of a job can take minutes (DenseNet201's XLA compile on an H200: 225 s, as long
as several epochs), so a run's wall time is not read from images/s alone. The training job records both
in its `metrics.json` (`timing`, written by `leukoscope.train.callbacks.Throughput`); this table puts
the jobs side by side. A job resumed after an interruption reports the part its last process trained.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

COLUMNS = [
    "backbone",
    "loss",
    "seed",
    "device",
    "precision",
    "first step (s)",
    "steady images/s",
    "epochs timed",
    "fit (s)",
    "first step, % of fit",
]


def _read(source: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    return json.loads(Path(source).read_text(encoding="utf-8"))


def timing_table(metrics: Mapping[str, Mapping[str, Any] | str | Path]) -> pd.DataFrame:
    """One row per training job from {"backbone/loss[/seed_N]": metrics.json (path or dict)}; n/a where a job
    has no timing (trained before it was recorded, or a finished state was only collected)."""
    rows = []
    for name, source in metrics.items():
        backbone, _, rest = str(name).partition("/")
        loss, _, seed = rest.partition("/")
        timing = _read(source).get("timing") or {}
        first, fit = timing.get("first_step_s"), timing.get("fit_s")
        rows.append(
            {
                "backbone": backbone,
                "loss": loss,
                "seed": seed.removeprefix("seed_") or None,
                "device": timing.get("device"),
                "precision": timing.get("policy"),
                "first step (s)": None if first is None else round(float(first), 1),
                "steady images/s": _round(timing.get("steady_images_per_s"), 1),
                "epochs timed": timing.get("epochs_timed"),
                "fit (s)": _round(fit, 0),
                "first step, % of fit": (
                    round(100.0 * float(first) / float(fit), 1) if first is not None and fit else None
                ),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def _round(value: Any, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def timing_notes() -> list[str]:
    return [
        "First step: the job's first training step, which traces the train function (and compiles it "
        "with XLA where XLA is on); its data wait is included.",
        "Steady images/s: every later training step of the job, input waits between steps included, "
        "validation passes excluded. Fit: the job's whole `model.fit`, validation included.",
        "A resumed job reports the epochs its last process trained; n/a: no timing recorded.",
    ]
