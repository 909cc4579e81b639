"""The per-job timing table: first step (trace / compile) apart from steady images/s, from metrics.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

from leukoscope.report import tables
from leukoscope.report.timing import COLUMNS, timing_notes, timing_table


def test_one_row_per_job_from_metrics_files(tmp_path: Path) -> None:
    timed = {
        "weighted_f1": 0.8,
        "timing": {"first_step_s": 225.04, "steady_images_per_s": 802.37, "steady_steps": 1252,
                   "epochs_timed": 2, "fit_s": 300.0, "device": "GPU 0", "policy": "float32"},
    }  # fmt: skip
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(timed))
    frame = timing_table({"densenet201/focal_hinge": path, "efficientnetb2/bce": {"weighted_f1": 0.7}})
    assert list(frame.columns) == COLUMNS and len(frame) == 2
    dense = frame.iloc[0]
    assert (dense["backbone"], dense["loss"], dense["device"], dense["precision"]) == (
        "densenet201", "focal_hinge", "GPU 0", "float32",
    )  # fmt: skip
    assert dense["first step (s)"] == 225.0 and dense["steady images/s"] == 802.4
    assert dense["epochs timed"] == 2 and dense["fit (s)"] == 300.0
    assert dense["first step, % of fit"] == 75.0  # the compile took three quarters of this short job
    untimed = frame.iloc[1]  # trained before timing was recorded: n/a, not zero
    assert untimed["backbone"] == "efficientnetb2" and all(
        untimed[c] is None or (isinstance(untimed[c], float) and math.isnan(untimed[c])) for c in COLUMNS[2:]
    )
    tables.write_table(frame, tmp_path / "t.csv", tmp_path / "t.md", "Training time per job", timing_notes())
    md = (tmp_path / "t.md").read_text()
    assert "Training time per job" in md and "802.4" in md and "traces the train function" in md
