"""What the Snakefile asks of `leukoscope.workflow.plan`: targets, per-job settings, parse-time checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from snakemake.exceptions import WorkflowError

from leukoscope.errors import ConfigError
from leukoscope.workflow import plan
from leukoscope.workflow.config import WorkflowConfig


def _cfg(**overrides: object) -> WorkflowConfig:
    return WorkflowConfig.from_dict(dict(overrides))


def _checked(config: dict) -> WorkflowConfig:
    """What a real run has checked before its first job: the config, then the data (`onstart`)."""
    cfg = WorkflowConfig.from_dict(config)
    plan.preflight(cfg)
    return cfg


def test_cv_scopes_and_each_protocols_splits() -> None:
    cfg = _cfg(protocol="cv", cv={"folds": 4})
    assert cfg.scopes == [f"cv/fold_{k}/" for k in range(4)]
    assert plan.fold_of("cv/fold_3/") == 3 and plan.fold_of("") is None
    assert cfg.crop_parts == ["pool"] and cfg.eval_splits == ["val", "test"] and cfg.scored_split == "test"
    paper, heldout = _cfg(), _cfg(protocol="heldout")
    assert paper.crop_parts == ["train", "val", "final"] and paper.scored_split == "val"
    assert heldout.crop_parts == ["train", "val", "test", "final"] and heldout.scored_split == "test"


def test_seeds_are_a_grid_dimension() -> None:
    cfg = _cfg(grid={"backbones": ["simplecnn"], "losses": ["bce"], "seeds": [1, 2]})
    assert plan.models(cfg) == ["simplecnn/bce"]
    one, two = (plan.train_settings(cfg, "simplecnn", "bce", s) for s in (1, 2))
    assert one["train"]["seed"] == 1 and two["train"]["seed"] == 2


def test_touching_one_losss_config_changes_only_its_jobs() -> None:
    before, after = _cfg(), _cfg(losses={"focal_hinge": {"gamma": 3.0}})
    for backbone, loss in (m.split("/") for m in plan.models(before)):
        same = plan.train_settings(before, backbone, loss, 42) == plan.train_settings(
            after, backbone, loss, 42
        )
        assert same == (loss != "focal_hinge"), (backbone, loss)


def test_runtime_settings_do_not_retrain() -> None:
    before, after = _cfg(), _cfg(resources={"threads": 4, "gpus": "none", "mem_mb": 1000})
    assert plan.train_settings(before, "densenet201", "bce", 42) == plan.train_settings(
        after, "densenet201", "bce", 42
    )
    assert plan.train_settings(before, "densenet201", "bce", 42) != plan.train_settings(
        _cfg(train={"epochs": 2}), "densenet201", "bce", 42
    )


def test_a_missing_local_dataset_plans_then_stops_before_the_first_job(tmp_path: Path) -> None:
    cfg = _cfg(dataset={"path": str(tmp_path / "nowhere")})  # the plan is made
    assert "no dataset at" in plan.missing_data_note(cfg) and "kaggle" in plan.missing_data_note(cfg)
    with pytest.raises(WorkflowError, match=r"dataset\.path does not exist") as info:
        plan.started(cfg)  # onstart: a real run stops here, before any job, in one line
    assert "\n" not in str(info.value).strip()


def test_onstart_leaves_the_checks_to_the_cli_that_made_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`leukoscope workflow` / `demo` check before Snakemake starts (`runner.preflight_file`) and say so:
    onstart does not import Keras a second time; a plain `snakemake` run still checks there."""
    cfg = _cfg(dataset={"path": str(tmp_path / "nowhere")})
    monkeypatch.setenv(plan.CHECKED_ENV, "1")
    plan.started(cfg)
    monkeypatch.setenv(plan.CHECKED_ENV, "")
    with pytest.raises(WorkflowError, match=r"dataset\.path does not exist"):
        plan.started(cfg)


def _folders(root: Path, counts: dict[str, int]) -> Path:
    import numpy as np

    from leukoscope.data.synth import SubjectStyle, encode_bmp, render_cell

    rng = np.random.default_rng(0)
    for label, n in counts.items():
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(n):
            style = SubjectStyle.draw(rng)
            (folder / f"{i}.bmp").write_bytes(encode_bmp(render_cell(rng, "all", style, size=32)))
    return root


@pytest.mark.parametrize(
    ("counts", "config", "message"),
    [
        ({"all": 3}, {"protocol": "cv"}, "only one class (all)"),
        ({"blast": 4, "normal": 4}, {}, "protocol paper validates on the data's labelled preliminary test"),
        ({"blast": 4, "normal": 4}, {"protocol": "heldout"}, "use protocol: cv"),
        ({"blast": 4, "normal": 2}, {"protocol": "cv"}, "class 'normal' has 2 images (each its own subject)"),
        ({"blast": 4, "normal": 4, "empty": 0}, {"protocol": "cv"}, "class folder 'empty' holds no images"),
        (
            {"Kelas 1": 4, "Kelas 2": 4},
            {"protocol": "cv", "augment": {"target": {"hem": 5, "all": 5}}},
            "augment.target names 'all', 'hem', not in the data",
        ),
        ({"a": 4, "b": 4}, {"protocol": "cv", "dataset": {"classes": ["a", "c"]}}, "names 'c'"),
        ({"a": 4, "b": 4}, {"protocol": "cv", "dataset": {"positive_class": "x"}}, "positive_class 'x'"),
    ],
)
def test_data_that_cannot_run_is_one_line_before_any_job(
    tmp_path: Path, counts: dict[str, int], config: dict, message: str
) -> None:
    from leukoscope.errors import LeukoScopeError

    root = _folders(tmp_path / "cells", counts)
    config = config | {"dataset": {"path": str(root), **config.get("dataset", {})}}
    with pytest.raises(LeukoScopeError) as info:
        _checked(config)
    assert message in info.value.one_line() and "\n" not in info.value.one_line()


def test_targets_resolve_from_the_data(tmp_path: Path) -> None:
    root = _folders(tmp_path / "cells", {"Kelas 1": 6, "Kelas 2": 3})
    found = plan.preflight(_cfg(protocol="cv", dataset={"path": str(root)}))
    assert found["classes"] == ["Kelas 1", "Kelas 2"] and found["target"] == {"Kelas 1": 6, "Kelas 2": 6}
    found = plan.preflight(_cfg(protocol="cv", dataset={"path": str(root)}, augment={"total": 20}))
    assert found["target"] == {"Kelas 1": 10, "Kelas 2": 10}


def test_the_order_of_keys_in_the_config_is_not_a_change() -> None:
    a = _cfg(augment={"target": {"hem": 3, "all": 2}}, losses={"focal": {"gamma": 2.0, "alpha": 0.5}})
    b = _cfg(augment={"target": {"all": 2, "hem": 3}}, losses={"focal": {"alpha": 0.5, "gamma": 2.0}})
    assert repr(plan.augment_settings(a)) == repr(plan.augment_settings(b))  # Snakemake compares text
    assert repr(plan.train_settings(a, "densenet201", "focal", 42)) == repr(
        plan.train_settings(b, "densenet201", "focal", 42)
    )


def test_a_start_weights_file_is_checked_at_parse_time_and_is_a_training_input(tmp_path: Path) -> None:
    synthetic = {"dataset": {"source": "synthetic"}}  # no dataset to check: only the weights
    notop = tmp_path / "efficientnetb2_notop.h5"
    notop.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    one = {"grid": {"backbones": ["efficientnetb2"]}}
    cfg = _checked({**synthetic, **one, "model": {"weights": str(notop)}})
    assert plan.start_weights(cfg) == str(notop) and not cfg.uses_imagenet()
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"PK\x03\x04" + bytes(64))
    cfg = _checked({**synthetic, **one, "model": {"weights": str(folder)}})
    assert plan.start_weights(cfg) == str(folder / "model.keras")
    assert plan.start_weights(_cfg()) is None and plan.start_weights(_cfg(model={"weights": "none"})) is None
    (tmp_path / "page.h5").write_text("<html>")
    for weights, message in (
        (tmp_path / "nowhere.h5", "the start weights file does not exist"),
        (tmp_path / "page.h5", r"page\.h5 is not a Keras weights file"),
    ):
        with pytest.raises(ConfigError, match=message) as info:
            _checked({**synthetic, **one, "model": {"weights": str(weights)}})
        assert "\n" not in info.value.one_line() and str(weights) in info.value.one_line()
    with pytest.raises(ConfigError, match="a weights file fits one"):  # the paper's two backbones
        _checked({**synthetic, "model": {"weights": str(notop)}})
