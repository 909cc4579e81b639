"""What the Snakefile asks of `leukoscope.workflow.plan`: targets, per-job settings, parse-time checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from leukoscope.errors import ConfigError, DataError
from leukoscope.workflow import plan, schema
from leukoscope.workflow.config import WorkflowConfig


def _cfg(**overrides: object) -> WorkflowConfig:
    return WorkflowConfig.from_dict(schema.check(dict(overrides)))


def test_official_targets_are_the_papers_tables_and_figures() -> None:
    targets = plan.targets(_cfg())
    for t in ("table1", "table2", "table3"):
        assert f"results/tables/{t}.csv" in targets and f"results/tables/{t}.md" in targets
    assert "results/figures/curves_densenet201.png" in targets and "results/figures/f1_heatmap.png" in targets
    assert "results/ensemble/ensemble.json" in targets and plan.SUBMISSION in targets


def test_cv_targets_and_scopes() -> None:
    cfg = _cfg(protocol="cv", folds=4)
    assert plan.CV_SUMMARY in plan.targets(cfg)
    assert cfg.scopes == [f"cv/fold_{k}/" for k in range(4)]
    assert plan.fold_of("cv/fold_3/") == 3 and plan.fold_of("") is None
    assert cfg.crop_parts == ["pool", "test", "final"]


def test_touching_one_losss_config_changes_only_its_jobs() -> None:
    before, after = _cfg(), _cfg(losses={"focal_hinge": {"gamma": 3.0}})
    for backbone, loss in plan.models(before):
        same = plan.train_settings(before, backbone, loss) == plan.train_settings(after, backbone, loss)
        assert same == (loss != "focal_hinge"), (backbone, loss)


def test_runtime_settings_do_not_retrain() -> None:
    before, after = _cfg(), _cfg(train={"threads": 4, "gpus": "none", "mem_mb": 1000})
    assert plan.train_settings(before, "densenet201", "bce") == plan.train_settings(
        after, "densenet201", "bce"
    )
    assert plan.train_settings(before, "densenet201", "bce") != plan.train_settings(
        _cfg(train={"epochs": 2}), "densenet201", "bce"
    )


def test_a_missing_local_dataset_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dataset\.path does not exist") as info:
        plan.load(schema.check({"dataset": {"path": str(tmp_path / "nowhere")}}))
    assert "\n" not in info.value.one_line()


def test_a_one_class_dataset_is_one_line(tmp_path: Path) -> None:
    import numpy as np

    from leukoscope.data.synth import SubjectStyle, encode_bmp, render_cell

    folder = tmp_path / "cells" / "all"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    style = SubjectStyle.draw(rng)
    for i in range(3):
        (folder / f"{i}.bmp").write_bytes(encode_bmp(render_cell(rng, "all", style, size=48)))
    with pytest.raises(DataError, match="only one class"):
        plan.load(schema.check({"dataset": {"path": str(tmp_path / "cells")}}))


def test_the_order_of_keys_in_the_config_is_not_a_change() -> None:
    a = _cfg(augment={"target": {"hem": 3, "all": 2}}, losses={"focal": {"gamma": 2.0, "alpha": 0.5}})
    b = _cfg(augment={"target": {"all": 2, "hem": 3}}, losses={"focal": {"alpha": 0.5, "gamma": 2.0}})
    assert repr(plan.augment_settings(a)) == repr(plan.augment_settings(b))  # Snakemake compares text
    assert repr(plan.train_settings(a, "densenet201", "focal")) == repr(
        plan.train_settings(b, "densenet201", "focal")
    )


def test_a_start_weights_file_is_checked_at_parse_time_and_is_a_training_input(tmp_path: Path) -> None:
    synthetic = {"dataset": {"source": "synthetic"}}  # no dataset to check: only the weights
    notop = tmp_path / "efficientnetb2_notop.h5"
    notop.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    one = {"grid": {"backbones": ["efficientnetb2"]}}
    cfg = plan.load(schema.check({**synthetic, **one, "train": {"weights": str(notop)}}))
    assert plan.start_weights(cfg) == str(notop) and not cfg.uses_imagenet()
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"PK\x03\x04" + bytes(64))
    cfg = plan.load(schema.check({**synthetic, **one, "train": {"weights": str(folder)}}))
    assert plan.start_weights(cfg) == str(folder / "model.keras")
    assert plan.start_weights(_cfg()) is None and plan.start_weights(_cfg(train={"weights": "none"})) is None
    (tmp_path / "page.h5").write_text("<html>")
    for weights, message in (
        (tmp_path / "nowhere.h5", "the start weights file does not exist"),
        (tmp_path / "page.h5", r"page\.h5 is not a Keras weights file"),
    ):
        with pytest.raises(ConfigError, match=message) as info:
            plan.load(schema.check({**synthetic, **one, "train": {"weights": str(weights)}}))
        assert "\n" not in info.value.one_line() and str(weights) in info.value.one_line()
    with pytest.raises(ConfigError, match="a weights file fits one"):  # the paper's two backbones
        plan.load(schema.check({**synthetic, "train": {"weights": str(notop)}}))
