"""`train.recipe`: auto resolves from the weights; scratch replaces only the paper's optimizer values and
says what it changed; a real short training run learns with scratch where the paper's recipe does not."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from leukoscope.config import PreprocessConfig, RunConfig
from leukoscope.train.recipe import MIN_STEPS, resolve

SIZE = 32


def _cfg(**dotted: object) -> RunConfig:
    return RunConfig().override(dotted)


@pytest.mark.parametrize(
    ("weights", "setting", "expected"),
    [
        ("none", "auto", "scratch"),
        ("None", "auto", "scratch"),
        ("imagenet", "auto", "paper"),
        ("/models/run/model.keras", "auto", "paper"),
        ("none", "paper", "paper"),
        ("imagenet", "scratch", "scratch"),
    ],
)
def test_auto_is_scratch_for_random_weights_only(weights: str, setting: str, expected: str) -> None:
    recipe = resolve(_cfg(**{"model.weights": weights, "train.recipe": setting}))
    assert recipe.name == expected
    why = f"model.weights: {weights}" if setting == "auto" else f"train.recipe: {setting}"
    assert recipe.describe().startswith(f"recipe {expected} ({why})")


def test_paper_is_the_configured_optimizer_untouched() -> None:
    cfg = _cfg(**{"model.weights": "none", "train.recipe": "paper", "optim.lr": 3e-4})
    recipe = resolve(cfg)
    assert recipe.optim == cfg.optim and recipe.changed == {}
    assert (recipe.warmup_fraction, recipe.batchnorm_images, recipe.min_steps) == (0.0, 0, 0)
    assert recipe.steps_per_epoch(7) == 7


def test_scratch_replaces_the_papers_values_and_keeps_the_users() -> None:
    recipe = resolve(_cfg(**{"model.weights": "none"}))
    o = recipe.optim
    assert (o.name, o.lr, o.betas, o.scheduler) == ("adamw", 1e-3, (0.9, 0.999), "cosine")
    assert o.weight_decay > 0 and recipe.batchnorm_images > 0 and recipe.warmup_fraction > 0
    assert recipe.changed["optim.lr"] == [1e-5, 1e-3]
    mine = resolve(_cfg(**{"model.weights": "none", "optim.lr": 3e-4, "optim.scheduler": "plateau"}))
    assert (mine.optim.lr, mine.optim.scheduler, mine.optim.name) == (3e-4, "plateau", "adamw")
    assert "optim.lr" not in mine.changed and "optim.scheduler" not in mine.changed
    text = recipe.describe()
    assert "optim.lr 1e-05 -> 0.001" in text and "BatchNorm statistics recomputed" in text


def test_scratch_epochs_have_a_floor_of_steps() -> None:
    recipe = resolve(_cfg(**{"model.weights": "none"}))
    assert recipe.steps_per_epoch(3) == MIN_STEPS
    assert recipe.steps_per_epoch(MIN_STEPS + 5) == MIN_STEPS + 5
    assert recipe.steps_per_epoch(3, limit=2) == 2  # max_steps_per_epoch still caps (smoke runs)


def test_recipe_setting_is_checked() -> None:
    from leukoscope.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train\.recipe"):
        _cfg(**{"train.recipe": "fast"})


def _discs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 1: a large dark disc, class 0: a small pale one, at random places, on noise: easy."""
    import cv2

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 40, (n, SIZE, SIZE, 3), dtype=np.uint8)
    for image, label in zip(images, labels, strict=True):
        centre = (int(rng.integers(10, 22)), int(rng.integers(10, 22)))
        radius = int(rng.integers(8, 11)) if label else int(rng.integers(4, 6))
        colour = (120, 40, 110) if label else (220, 170, 210)
        cv2.circle(image, centre, radius, colour, -1)
    return images, labels


def _train(recipe: str, out: Path) -> tuple[dict, dict]:
    import json

    from leukoscope.train.fit import fit_inputs
    from leukoscope.train.inputs import FitInputs
    from leukoscope.train.tfdata import ImageSource

    (xt, yt), (xv, yv) = _discs(128, 0), _discs(64, 1)
    mean = tuple(float(v) for v in (xt / 255.0).mean((0, 1, 2)))
    std = tuple(float(v) for v in (xt / 255.0).std((0, 1, 2)))
    inputs = FitInputs(
        ImageSource.from_array(xt, range(len(xt)), yt),
        ImageSource.from_array(xv, range(len(xv)), yv),
        ["small", "large"],
        PreprocessConfig(image_size=SIZE, mean=mean, std=std),
    )
    cfg = _cfg(**{
        "model.backbone": "simplecnn", "model.weights": "none", "train.recipe": recipe,
        "train.epochs": 3, "train.batch_size": 16, "train.max_steps_per_epoch": 8, "train.patience": None,
        "train.progress": False, "train.precision": "32", "train.run_eagerly": True,
        "train.state_dir": str(out / "state"), "augment.clahe_p": 0.0, "out": str(out),
    })  # fmt: skip
    fit_inputs(inputs, cfg, out)
    card = json.loads((out / "model_card.json").read_text())
    return json.loads((out / "metrics.json").read_text()), card


@pytest.mark.slow
def test_scratch_learns_in_steps_where_the_paper_recipe_does_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """24 steps of the same backbone on the same easy task: a floor for scratch, not a tuned figure."""
    with caplog.at_level(logging.INFO, logger="leukoscope.train"):
        scratch, card = _train("auto", tmp_path / "scratch")
    assert "recipe scratch (model.weights: none)" in caplog.text
    assert scratch["recipe"]["name"] == "scratch" and card["recipe"] == scratch["recipe"]
    assert scratch["recipe"]["changed"]["optim.lr"] == [1e-5, 1e-3]
    paper, card = _train("paper", tmp_path / "paper")
    assert paper["recipe"]["name"] == "paper" and card["recipe"]["changed"] == {}
    assert scratch["weighted_f1"] >= 0.9, scratch
    assert paper["weighted_f1"] <= 0.75, paper
