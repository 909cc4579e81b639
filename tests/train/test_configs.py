"""The shipped configs load: the workflow's config.yaml, read by `leukoscope train --config`, is the paper's
recipe for one network; configs/cpu-fast.yaml is a RunConfig file; flags win over either."""

from __future__ import annotations

from pathlib import Path

import pytest

from leukoscope.cli.train_config import build_config, flag_keys, overrides
from leukoscope.config import RunConfig, setting_keys
from leukoscope.errors import ConfigError
from leukoscope.preprocess.balance import resolve_target
from leukoscope.train.fit import RESUMABLE, resumed_config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


def test_paper_recipe_from_the_workflow_config() -> None:
    cfg = build_config(REPO / "config.yaml", {})
    assert (cfg.model.backbone, cfg.model.weights, cfg.model.head_hidden) == ("densenet201", "imagenet", 256)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.betas) == ("adam", 1e-5, (0.7, 0.999))
    assert cfg.train.batch_size == 32 and cfg.train.balance == "oversample"
    assert cfg.train.oversample_to == "auto"  # resolved against the data when it is read:
    paper, _ = resolve_target(cfg.train.oversample_to, ["all", "hem"], [7272, 3389], protocol="heldout")
    assert paper == {"hem": 10778, "all": 9272} and sum(paper.values()) == 20050  # C-NMC: the paper's
    small, _ = resolve_target(cfg.train.oversample_to, ["all", "hem"], [30, 12], protocol="heldout")
    own, _ = resolve_target(cfg.train.oversample_to, ["blast", "normal"], [30, 12], protocol="heldout")
    assert small == {"all": 30, "hem": 30} and own == {"blast": 30, "normal": 30}  # never inflated
    assert cfg.preprocess.crop == "auto" and cfg.preprocess.normalize == "dataset"  # auto: cell on C-NMC
    assert cfg.augment.hflip and cfg.augment.vflip and cfg.augment.rotation > 0 and cfg.augment.clahe_p > 0
    assert (cfg.loss.name, cfg.data.val_fold, cfg.out) == ("bce", 2, RunConfig().out)
    assert (cfg.train.state_dir, cfg.train.progress) == (None, True)  # runtime: the CLI's defaults


def test_workflow_config_job_follows_backbone_and_loss_flags() -> None:
    flags = overrides({"backbone": "efficientnetb2", "loss": "focal_hinge", "image_size": 260})
    cfg = build_config(REPO / "config.yaml", flags)
    assert (cfg.model.backbone, cfg.preprocess.image_size) == ("efficientnetb2", 260)
    assert cfg.loss.name == "focal_hinge" and cfg.loss.params == {"gamma": 2.0, "on": "sigmoid"}


def test_library_defaults_are_the_papers_optimiser_and_head() -> None:
    cfg = RunConfig()
    assert (cfg.model.backbone, cfg.model.weights, cfg.model.head_hidden) == ("densenet201", "imagenet", 256)
    assert (cfg.optim.lr, cfg.optim.betas, cfg.train.batch_size) == (1e-5, (0.7, 0.999), 32)


def test_cpu_fast_and_flags_win() -> None:
    path = CONFIGS / "cpu-fast.yaml"
    cfg = RunConfig.from_yaml(path)
    assert (cfg.model.backbone, cfg.model.weights, cfg.train.precision) == (
        "efficientnetb0",
        "imagenet",
        "auto",
    )
    merged = build_config(
        path, overrides({"lr": 0.01, "epochs": 2, "backbone": None, "classes": ["hem", "all"]})
    )
    assert merged.optim.lr == 0.01 and merged.train.epochs == 2  # flags win
    assert merged.model.backbone == "efficientnetb0"  # an absent flag keeps the file's value
    assert merged.data.classes == ["hem", "all"] and merged.optim.scheduler == "cosine"


def test_flags_follow_the_config_fields() -> None:
    """Every setting whose name is unique is a flag name, so a new field needs no list edit."""
    keys = flag_keys()
    assert keys["lr"] == "optim.lr" and keys["data"] == "data.data" and keys["loss"] == "loss.name"
    assert set(keys.values()) <= set(setting_keys())
    assert "name" not in keys  # loss.name and optim.name: only --loss


def test_every_train_option_reaches_a_setting() -> None:
    """A flag is dropped silently once its name stops being unique (a new field of that name in another
    section): every option of `leukoscope train` must be a setting's flag or one of the few that are not."""
    import inspect

    from leukoscope.cli.train import train

    not_settings = {"config", "resume", "overwrite", "accelerator", "no_progress"}  # no_progress: progress
    options = set(inspect.signature(train).parameters) - not_settings
    assert options <= set(flag_keys()), f"options that set nothing: {sorted(options - set(flag_keys()))}"


def test_resume_allows_only_runtime_settings(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(RunConfig().to_yaml())
    assert set(RESUMABLE) == {"data.cache_dir", "data.num_workers", "train.state_dir", "train.progress"}
    assert resumed_config(tmp_path, {"data.num_workers": 3}).data.num_workers == 3
    with pytest.raises(ConfigError, match=r"optim\.lr cannot change"):
        resumed_config(tmp_path, {"optim.lr": 0.1})
