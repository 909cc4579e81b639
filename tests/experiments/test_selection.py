"""The workflow's ensemble: per backbone the loss best on validation (seed mean), every seed averaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leukoscope._io import read_json
from leukoscope.evaluate.predictions import score_split
from leukoscope.experiments.ensemble import spec_metrics
from leukoscope.experiments.selection import choose_members, seed_mean_score


def test_a_loss_is_chosen_on_its_seed_mean_and_ties_go_to_the_first() -> None:
    lucky = {"n": 5, "weighted_f1": 0.9, "per_seed": {"0": {"weighted_f1": 0.95}, "1": {"weighted_f1": 0.5}}}
    steady = {"n": 5, "weighted_f1": 0.8, "per_seed": {"0": {"weighted_f1": 0.8}, "1": {"weighted_f1": 0.8}}}
    assert seed_mean_score(lucky, "weighted_f1") == 0.725 and seed_mean_score({"n": 0}, "weighted_f1") is None
    scores = {"a/bce": 0.725, "a/focal": 0.8, "b/bce": 0.7, "b/focal": 0.7}
    assert seed_mean_score(steady, "weighted_f1") == 0.8
    assert choose_members(scores, ["a", "b"], ["bce", "focal"]) == {"a": "focal", "b": "bce"}


def test_ensemble_stage_writes_the_spec_the_choice_and_the_averaged_predictions(tmp_path: Path) -> None:
    import stage_files as S

    files = S.write_chain(tmp_path)
    choice = read_json(files["ensemble/choice"])
    assert choice["chosen"] == {"simplecnn": "focal"} and choice["members"] == ["simplecnn/focal"]
    assert choice["candidates"]["simplecnn"]["focal"] > choice["candidates"]["simplecnn"]["bce"]
    seeds = [pd.read_parquet(tmp_path / "models" / "simplecnn/focal" / f"seed_{s}" / "predictions.parquet")
             for s in S.SEEDS]  # fmt: skip
    ensemble = pd.read_parquet(files["ensemble/predictions"])
    np.testing.assert_allclose(ensemble["p_all"], (seeds[0]["p_all"] + seeds[1]["p_all"]) / 2)
    spec = read_json(files["ensemble/spec"])
    assert spec["method"] == "mean" and len(spec["members"]) == len(choice["models"]) == 2
    assert spec["metrics"] == spec_metrics(score_split(ensemble, "val", S.CLASSES, 0.5, "all"))
