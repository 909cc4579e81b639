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
