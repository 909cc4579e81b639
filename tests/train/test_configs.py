"""The shipped configs load, and paper.yaml is the paper's recipe."""

from __future__ import annotations

from pathlib import Path

from leukoscope.cli._common import build_config
from leukoscope.cli.train import _overrides
from leukoscope.config import RunConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_paper_recipe() -> None:
    cfg = RunConfig.from_yaml(CONFIGS / "paper.yaml")
    assert (cfg.model.backbone, cfg.model.weights, cfg.model.head_hidden) == ("densenet201", "imagenet", 256)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.betas) == ("adam", 1e-5, (0.7, 0.999))
    assert cfg.train.batch_size == 32 and cfg.train.balance == "oversample"
    assert cfg.train.oversample_to == {"hem": 10778, "all": 9272}
    assert sum(cfg.train.oversample_to.values()) == 20050
    assert cfg.preprocess.crop == "cell" and cfg.preprocess.normalize == "dataset"
    assert cfg.augment.hflip and cfg.augment.vflip and cfg.augment.rotation > 0 and cfg.augment.clahe_p > 0


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
    merged = build_config(path, _overrides(lr=0.01, epochs=2, backbone=None, classes=["hem", "all"]))
    assert merged.optim.lr == 0.01 and merged.train.epochs == 2  # flags win
    assert merged.model.backbone == "efficientnetb0"  # an absent flag keeps the file's value
    assert merged.data.classes == ["hem", "all"] and merged.optim.scheduler == "cosine"
