"""Class balance for training: oversampling to target counts (the paper); Keras class weights in fit.

Oversampled copies go through the random train-time augmentation, so a repeated cell is seen flipped,
rotated or CLAHE-enhanced rather than identically: the paper's 20,050 training samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from leukoscope.errors import ConfigError


def oversample_targets(
    labels: np.ndarray, class_names: Sequence[str], targets: Mapping[str, int] | None
) -> dict[str, int]:
    """Target count per class: the given ones (others keep their count) or, by default, the majority's."""
    counts = np.bincount(labels, minlength=len(class_names))
    if not targets:
        top = int(counts.max())
        return dict.fromkeys(class_names, top)
    unknown = sorted(set(targets) - set(class_names))
    if unknown:
        raise ConfigError(
            f"train.oversample_to names unknown classes {', '.join(map(repr, unknown))}",
            hint=f"the classes are: {', '.join(class_names)}",
        )
    bad = {k: v for k, v in targets.items() if int(v) < 1}
    if bad:
        raise ConfigError(f"train.oversample_to must be positive counts, got {bad}")
    return {name: int(targets.get(name, counts[i])) for i, name in enumerate(class_names)}


def oversample_indices(
    labels: np.ndarray, class_names: Sequence[str], targets: Mapping[str, int] | None, seed: int
) -> np.ndarray:
    """Positions into `labels` reaching each class's target count.

    Whole copies of a class come first, then a random subset without replacement for the remainder, so
    every image appears floor(t/n) or ceil(t/n) times (never 0 times by bad luck). A target below the
    class's count draws a random subset (undersampling).
    """
    labels = np.asarray(labels, dtype=np.int64)
    goal = oversample_targets(labels, class_names, targets)
    rng = np.random.default_rng(seed)
    picked: list[np.ndarray] = []
    for i, name in enumerate(class_names):
        members = np.flatnonzero(labels == i)
        if members.size == 0:
            continue
        copies, rest = divmod(goal[name], members.size)
        picked.append(np.tile(members, copies))
        picked.append(rng.choice(members, size=rest, replace=False))
    out = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    return np.sort(out)


# The paper's augmented training set: 20,050 samples (10,778 normal / HEM, 9,272 ALL).
PAPER_TARGET = {"hem": 10778, "all": 9272}
# `auto` gives the paper's counts only to a C-NMC-sized training set; a small one is balanced instead of
# being inflated to 20,050 copies of a few hundred cells.
PAPER_MIN_TRAINING = 5000


def resolve_target(
    target: str | Mapping[str, int] | None,
    class_names: Sequence[str],
    counts: Sequence[int],
    *,
    protocol: str,
    total: int | None = None,
) -> tuple[dict[str, int], str]:
    """`augment.target` (+ `augment.total`) -> samples per class, and a sentence saying why.

    - `auto`: the paper's 10,778 HEM / 9,272 ALL where the classes are all / hem under protocol paper or
      heldout and the training set is C-NMC-sized; else `balance`.
    - `balance` (or null): every class up to the largest class's count, or with `total`, to total / C each.
    - a mapping: exactly these counts; it must name every class, and only the data's classes.
    """
    names = list(class_names)
    counts = [int(c) for c in counts]
    if isinstance(target, Mapping):
        unknown = sorted(set(target) - set(names))
        missing = [c for c in names if c not in target]
        if unknown or missing:
            wrong = (
                f"names {', '.join(map(repr, unknown))}, not in the data"
                if unknown
                else (f"lacks {', '.join(map(repr, missing))}")
            )
            raise ConfigError(
                f"augment.target {wrong}",
                hint=f"give a count for each class ({', '.join(names)}), or set augment.target: auto",
            )
        bad = {k: v for k, v in target.items() if int(v) < 1}
        if bad:
            raise ConfigError(f"augment.target must be positive counts, got {bad}")
        return {c: int(target[c]) for c in names}, "augment.target as configured"
    if target not in ("auto", "balance", None):
        raise ConfigError(f"augment.target is {target!r}", hint="auto, balance, or a {class: count} mapping")
    if total is not None and total < len(names):
        raise ConfigError(f"augment.total is {total}", hint=f"at least one sample per class ({len(names)})")
    paper = (
        target == "auto"
        and sorted(names) == sorted(PAPER_TARGET)
        and protocol in ("paper", "heldout", "official")
        and sum(counts) >= PAPER_MIN_TRAINING
    )
    if paper and total is None:
        return dict(PAPER_TARGET), "the paper's 10,778 HEM / 9,272 ALL (20,050 samples)"
    why = "every class to the largest class's count"
    if total is not None:
        each = {c: total // len(names) + (1 if i < total % len(names) else 0) for i, c in enumerate(names)}
        return each, f"augment.total {total}: {total // len(names)}-{-(-total // len(names))} per class"
    if target == "auto":
        why += " (augment.target auto: the paper's counts apply to C-NMC's all / hem at full size)"
    top = max(counts) if counts else 0
    return dict.fromkeys(names, top), why
