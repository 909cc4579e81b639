"""The workflow's typed config: one source of defaults (RunConfig), the committed schema, config.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from leukoscope.config import RunConfig
from leukoscope.errors import ConfigError
from leukoscope.tree import get as lookup
from leukoscope.tree import plain
from leukoscope.workflow import schema
from leukoscope.workflow.config import WorkflowConfig, run_config

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
REQUIRED = (
    "dataset.path",
    "protocol",
    "cv.folds",
    "grid.backbones",
    "grid.seeds",
    "grid.losses",
    "train.epochs",
    "train.batch_size",
    "preprocess.image_size",
    "model.weights",
    "resources.gpus",
)


def test_committed_schema_is_generated_from_the_dataclasses() -> None:
    committed = SCHEMA.read_text(encoding="utf-8")
    assert committed == schema.render(), (
        "regenerate: python -m leukoscope.workflow.schema > workflow/schemas/..."
    )


def test_the_workflow_nests_the_engines_sections() -> None:
    """One tree: preprocess, model, optim and train are the engine's dataclasses, so a training job's
    RunConfig is those sections merged with what the job adds (no key map between two vocabularies)."""
    cfg = WorkflowConfig.from_dict({"train": {"epochs": 4}, "optim": {"lr": 0.01}})
    run = run_config(cfg, "efficientnetb0", "focal", out="o", state_dir="s", seed=7, crop="center")
    for section in ("optim", "augment"):
        assert getattr(run, section) == (cfg.optim if section == "optim" else cfg.train.augment)
    assert run.train.epochs == 4 and run.train.seed == 7 and run.optim.lr == 0.01
    assert run.model.weights == cfg.model.weights and run.model.backbone == "efficientnetb0"
    assert run.preprocess.image_size == cfg.preprocess.image_size and run.preprocess.crop == "center"
    engine = RunConfig()
    assert WorkflowConfig.from_dict({}).to_dict()["optim"] == plain(engine.to_dict()["optim"])


def test_the_committed_schema_documents_the_defaults_the_config_builds() -> None:
    """The schema file is documentation: its defaults are those `from_dict({})` builds."""
    documented = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    built = WorkflowConfig.from_dict({}).to_dict()
    assert WorkflowConfig.from_dict({}) == WorkflowConfig()
    for section in ("protocol", "val_fold", "losses"):
        assert documented["properties"][section]["default"] == built[section]
    assert documented["properties"]["train"]["properties"]["epochs"]["default"] == built["train"]["epochs"]


def test_config_yaml_is_the_papers_recipe() -> None:
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    for key in REQUIRED:
        lookup(raw, key)  # the keys other tools rely on are spelled out
    cfg = WorkflowConfig.from_dict(raw)
    assert cfg.grid.backbones == ["densenet201", "efficientnetb2"]
    assert cfg.grid.losses == ["bce", "weighted_bce", "focal", "hinge", "focal_hinge"]
    assert cfg.model.weights == "imagenet" and cfg.train.batch_size == 32
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.betas) == ("adam", 1e-5, (0.7, 0.999))
    assert cfg.preprocess.crop == "auto" and cfg.preprocess.normalize == "dataset"
    assert cfg.protocol == "paper" and cfg.eval_splits == ["val"] and cfg.grid.seeds == [42]
    assert cfg.augment.target == "auto"  # the paper's 10,778 / 9,272 on C-NMC (tests/preprocess)
    assert cfg.losses["hinge"]["on"] == "sigmoid" and cfg.losses["focal_hinge"]["on"] == "sigmoid"
    assert cfg.class_counts_from("weighted_bce") == "original" and cfg.loss_params("weighted_bce") == {}
    assert cfg.dataset.classes is None and cfg.dataset.positive_class is None  # from the data
    cfg.check_names()


def test_renamed_keys_still_work_with_a_notice() -> None:
    notices: list[str] = []
    from leukoscope.workflow.config import apply_aliases

    old = {
        "protocol": "official",
        "folds": 5,
        "losses": {"hinge": {True: "logit"}},
        "train": {"image_size": 96, "weights": "none", "threads": 2, "epochs": 3, "precision": 16},
    }
    data = apply_aliases(old, notices)
    cfg = WorkflowConfig.from_dict(data)
    assert cfg.protocol == "heldout" and cfg.cv.folds == 5 and cfg.losses["hinge"] == {"on": "logit"}
    assert (cfg.preprocess.image_size, cfg.model.weights, cfg.resources.threads) == (96, "none", 2)
    assert cfg.train.epochs == 3 and cfg.train.precision == "fp16" and len(notices) == 6
    assert "train.image_size is now preprocess.image_size" in " ".join(notices)
    assert "official is now called heldout" in notices[-2]
    assert notices[-1] == "config: train.precision: 16 is now called fp16 (the same setting)"


def test_a_users_target_mapping_replaces_the_base_one(tmp_path: Path) -> None:
    from leukoscope.workflow.runner import merged_config

    mine = tmp_path / "mine.yaml"
    mine.write_text("augment:\n  target: {Kelas 1: 50, Kelas 2: 50}\nlosses:\n  hinge: {on: logit}\n")
    merged = merged_config(mine)
    assert merged["augment"]["target"] == {"Kelas 1": 50, "Kelas 2": 50}  # no hem / all left from the base
    from leukoscope.workflow.config import apply_aliases

    assert apply_aliases(merged)["losses"]["hinge"] == {"on": "logit"} and merged["protocol"] == "paper"


def test_run_config_maps_workflow_keys_to_the_library() -> None:
    cfg = WorkflowConfig.from_dict(
        {
            "preprocess": {"image_size": 96},
            "model": {"weights": "none"},
            "train": {"epochs": 3},
            "losses": {"focal": {"gamma": 3}},
        }
    )
    run = run_config(cfg, "efficientnetb2", "focal", out="o", state_dir="s")
    assert run.preprocess.image_size == 96 and run.model.weights == "none" and run.train.epochs == 3
    assert (
        run.model.backbone == "efficientnetb2"
        and run.loss.name == "focal"
        and run.loss.params == {"gamma": 3}
    )
    assert run.train.state_dir == "s" and run.out == "o"
    assert run_config(cfg, "efficientnetb2", "bce", out="o", state_dir="s").loss.params == {}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"train": {"epochs": 0}}, "train.epochs: 0 is less than the minimum of 1"),
        ({"trian": {}}, "unknown setting 'trian'"),
        ({"model": {"backbone": "x"}}, "unknown setting 'model.backbone'"),  # the grid sets it
        ({"protocol": "loo"}, "setting 'protocol' is 'loo'"),
        ({"grid": {"losses": "bce"}}, "setting 'grid.losses' must be a list"),
        ({"augment": {"target": {"hem": "many"}}}, "augment.target"),
        ({"augment": {"target": "balanced"}}, "augment.target"),
        ({"grid": {"seeds": [1.5]}}, "grid.seeds"),
    ],
)
def test_a_config_that_breaks_the_schema_is_one_line(config: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        WorkflowConfig.from_dict(config, source="my.yaml")
    line = info.value.one_line()
    assert message in line and "my.yaml" in line and "\n" not in line


def test_unknown_names_are_one_line() -> None:
    cfg = WorkflowConfig.from_dict({"grid": {"losses": ["bce", "fokal"]}})
    with pytest.raises(ConfigError, match="unknown loss 'fokal'"):
        cfg.check_names()
    with pytest.raises(ConfigError, match="each once"):
        WorkflowConfig.from_dict({"grid": {"losses": ["bce", "bce"]}})


def test_imagenet_weights_for_a_backbone_without_them_is_one_line_before_any_job() -> None:
    cfg = WorkflowConfig.from_dict({"grid": {"backbones": ["simplecnn"]}})  # weights: imagenet
    with pytest.raises(
        ConfigError, match=r"SimpleCNN has no ImageNet weights \(model\.weights is imagenet\)"
    ):
        cfg.check_names()
    WorkflowConfig.from_dict(
        {"grid": {"backbones": ["simplecnn"]}, "model": {"weights": "none"}}
    ).check_names()


def test_the_resolved_config_names_where_it_came_from(tmp_path: Path) -> None:
    """The `resolved_config` rule (`leukoscope.config.write_resolved_config`): YAML read back equal."""
    from leukoscope.config import write_resolved_config

    base, mine = tmp_path / "config.yaml", tmp_path / "mine.yaml"
    config = {"protocol": "cv", "grid": {"backbones": ["simplecnn"], "seeds": [1, 2]}}
    out = write_resolved_config(tmp_path / "results" / "config.yaml", config, base, [str(base), str(mine)])
    text = out.read_text()
    assert text.startswith(f"# Resolved from {base.resolve()}, then {mine} over it, then the defaults")
    assert yaml.safe_load(text) == config and list(yaml.safe_load(text)) == ["protocol", "grid"]
    alone = write_resolved_config(tmp_path / "alone.yaml", config, base, [str(base)])
    assert "then no other file over it" in alone.read_text()
