"""Training recipes: `paper` fine-tunes as configured; `scratch` makes random weights learn on small sets.

The paper's recipe (Adam 1e-5, betas 0.7/0.999, no schedule, Keras' BatchNorm moving averages) is made
for ImageNet weights and 20,050 samples. From random weights it stays at chance for epochs, and on a few
hundred images BatchNorm's moving statistics (momentum 0.99, a dozen steps an epoch) describe a network
that no longer exists: validation in inference mode scores another model than the one training sees.

`scratch` changes what it must and says so (the log, `metrics.json`, the model card). Measured on
pbc-mini (SimpleCNN, 96 px, fold 0 of 3, 480 steps; README "Training from scratch"):
- optimizer settings still at the paper's values (RunConfig's defaults) become AdamW, peak lr 1e-3,
  betas 0.9/0.999, weight decay 0.05, cosine decay to 0 after a linear warm-up over 5% of the steps
  (cosine only); a value set to anything else is the user's and is kept;
- BatchNorm statistics are recomputed on augmented training batches before each validation
  (`train.batchnorm`): weighted F1 0.90 vs 0.33 with Keras' moving averages (momentum 0.9 instead of
  0.99 also gave 0.90, but edits the backbone's layers and depends on the step count);
- augmentation settings left at null get zoom 0.15, shift 0.1, colour jitter 0.15 and, unless the cells
  are on black (`preprocess.crop: cell`), mirrored borders instead of black ones: 0.90 vs 0.87 with
  flips and rotations alone, 0.86 with the same augmentation and black corners on the smears;
- an epoch has at least `MIN_STEPS` steps (the training set read again, in new orders): the same score
  with half the validations (0.90 vs 0.90, 10% less time).
Everything else (epochs, batch size, patience, loss, image size, the backbone) is the user's;
`recipe: paper` runs exactly the configured settings. `auto` is `scratch` for `model.weights: none`,
else `paper`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from leukoscope.config import AugmentConfig, OptimConfig, RunConfig
from leukoscope.tree import plain

PAPER_OPTIM = OptimConfig()  # the paper's values are RunConfig's defaults
SCRATCH_OPTIM = {
    "name": "adamw",
    "lr": 1e-3,
    "betas": (0.9, 0.999),
    "weight_decay": 0.05,
    "scheduler": "cosine",
}
# the online augmentation's settings left at null: none in the paper's recipe, these from scratch
PAPER_AUGMENT = {"zoom": 0.0, "shift": 0.0, "color": 0.0, "fill": "black"}
SCRATCH_AUGMENT = {"zoom": 0.15, "shift": 0.1, "color": 0.15}  # fill: black for cells on black, else reflect
WARMUP_FRACTION = 0.05  # of all training steps: a linear ramp from 0 to the peak rate (cosine only)
BATCHNORM_IMAGES = 512  # augmented training images whose statistics BatchNorm keeps for validation
MIN_STEPS = 32  # steps per epoch at least (scratch): fewer, costly validations on small sets


@dataclass(frozen=True)
class Recipe:
    """The resolved recipe of one run: what the session builds its optimizer and callbacks from."""

    name: str  # paper | scratch
    reason: str  # why (train.recipe, or auto from model.weights)
    optim: OptimConfig  # the optimizer settings in effect
    augment: AugmentConfig  # the online augmentation in effect (no nulls left)
    warmup_fraction: float = 0.0  # share of all steps with a linear warm-up from 0 to optim.lr
    batchnorm_images: int = 0  # > 0: BatchNorm statistics recomputed on this many images before validation
    min_steps: int = 0  # an epoch has at least this many steps
    changed: dict[str, list[Any]] = field(default_factory=dict)  # setting -> [configured, in effect]

    def steps_per_epoch(self, natural: int, limit: int | None = None) -> int:
        """Steps of one epoch: one pass (`natural`), at least `min_steps`, capped by max_steps_per_epoch."""
        steps = max(natural, self.min_steps)
        return min(steps, limit) if limit else steps

    def describe(self) -> str:
        """One log line: the recipe, why, and every setting it changed."""
        parts = [f"recipe {self.name} ({self.reason})"]
        parts += [f"{key} {_text(old)} -> {_text(new)}" for key, (old, new) in self.changed.items()]
        if self.warmup_fraction:
            parts.append(f"linear warm-up over {self.warmup_fraction:.0%} of the steps")
        if self.batchnorm_images:
            parts.append(
                f"BatchNorm statistics recomputed on {self.batchnorm_images} augmented training images "
                "before each validation"
            )
        if self.min_steps:
            parts.append(f"at least {self.min_steps} steps per epoch")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """What metrics.json and the model card record."""
        return {
            "name": self.name,
            "reason": self.reason,
            "changed": {k: list(v) for k, v in self.changed.items()},
            "optim": plain(dataclasses.asdict(self.optim)),
            "augment": dataclasses.asdict(self.augment),
            "warmup_fraction": self.warmup_fraction,
            "batchnorm_images": self.batchnorm_images,
            "min_steps_per_epoch": self.min_steps,
        }


def resolve(cfg: RunConfig) -> Recipe:
    """The recipe `cfg.train.recipe` stands for; `auto` decides from `model.weights`."""
    setting = cfg.train.recipe
    if setting == "auto":
        scratch = cfg.model.weights.strip().lower() == "none"
        name = "scratch" if scratch else "paper"
        reason = f"model.weights: {cfg.model.weights}"
    else:
        name, reason = setting, f"train.recipe: {setting}"
    if name == "paper":
        return Recipe("paper", reason, cfg.optim, _fill_augment(cfg.augment, PAPER_AUGMENT, {}))
    optim, changed = _scratch_optim(cfg.optim)
    background = "black" if cfg.preprocess.crop == "cell" else "reflect"  # crop cell: cells on black
    augment = _fill_augment(cfg.augment, {**SCRATCH_AUGMENT, "fill": background}, changed)
    return Recipe(
        "scratch",
        reason,
        optim,
        augment,
        warmup_fraction=WARMUP_FRACTION,
        batchnorm_images=BATCHNORM_IMAGES,
        min_steps=MIN_STEPS,
        changed=changed,
    )


def _scratch_optim(optim: OptimConfig) -> tuple[OptimConfig, dict[str, list[Any]]]:
    """SCRATCH_OPTIM where the configured value is still the paper's; the user's own values are kept."""
    changes: dict[str, Any] = {}
    changed: dict[str, list[Any]] = {}
    for key, value in SCRATCH_OPTIM.items():
        configured = getattr(optim, key)
        if configured == getattr(PAPER_OPTIM, key) and configured != value:
            changes[key] = value
            changed[f"optim.{key}"] = [plain(configured), plain(value)]
    return dataclasses.replace(optim, **changes), changed


def _fill_augment(
    augment: AugmentConfig, values: dict[str, Any], changed: dict[str, list[Any]]
) -> AugmentConfig:
    """The recipe's value for every augmentation setting left at null (recorded in `changed`)."""
    unset = {key: value for key, value in values.items() if getattr(augment, key) is None}
    if augment.enabled:
        changed.update({f"augment.{key}": [None, value] for key, value in unset.items() if value})
    return dataclasses.replace(augment, **unset)


def _text(value: Any) -> str:
    return "null" if value is None else str(value)
