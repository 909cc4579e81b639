"""Published numbers we compare against, with where they come from.

Source: the "focal hinge loss" paper on C-NMC 2019 (ISBI 2019 challenge data): DenseNet201 and
EfficientNetB2 fine-tuned with five losses (BCE, weighted BCE, focal, hinge, focal hinge), an ensemble of
the two networks; Table 1 (the data), Table 2 (weighted F1 per loss x backbone on the challenge's FINAL
test set), Table 3 (the ensemble on validation). Values are percentages; counts are images.

Only what the paper states is filled in; anything else is `None` (the tables print "n/a"). The final test's
labels were never published, so no reproduction can score on it: our Table 2 is on the labelled
preliminary test, and every table says so. The paper's training set is all three folds (10,661) and its
validation set the preliminary test (1,867): the `paper` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

LOSSES = ("bce", "weighted_bce", "focal", "hinge", "focal_hinge")
LOSS_LABELS = {
    "bce": "BCE",
    "weighted_bce": "Weighted BCE",
    "balanced_bce": "Balanced BCE",
    "focal": "Focal",
    "hinge": "Hinge",
    "focal_hinge": "Focal hinge",
}
BACKBONE_LABELS = {"densenet201": "DenseNet201", "efficientnetb2": "EfficientNetB2"}


@dataclass(frozen=True)
class Published:
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    accuracy: float | None = None
    note: str = ""


# Table 1: the C-NMC 2019 data. (split, class) -> images. The final test's per-class counts are the
# paper's (its labels were never published, so no copy of the data can show them).
_TABLE1_ROWS = {  # split: (ALL, HEM, total)
    "train": (7272, 3389, 10661),
    "prelim": (1219, 648, 1867),
    "final": (1761, 825, 2586),
    "augmented": (9272, 10778, 20050),
}
TABLE1: dict[tuple[str, str], int | None] = {
    (split, column): count
    for split, row in _TABLE1_ROWS.items()
    for column, count in zip(("all", "hem", "total"), row, strict=True)
}

# Table 2: weighted F1 on the final test, (loss, backbone) -> Published.
_F1 = {
    "densenet201": (85.59, 86.86, 88.53, 89.65, 90.7),
    "efficientnetb2": (86.78, 85.29, 86.13, 87.43, 89.38),
}
TABLE2: dict[tuple[str, str], Published] = {
    (loss, backbone): Published(f1=values[i], note="final test")
    for backbone, values in _F1.items()
    for i, loss in enumerate(LOSSES)
}

# The ensemble (DenseNet201 + EfficientNetB2): the paper's headline result, final test.
ENSEMBLE = Published(f1=91.94, note="ensemble of DenseNet201 + EfficientNetB2, final test")

# Table 3: the ensemble on validation. Precision / recall / F1 are those of the positive class (ALL):
# 2 * 82.73 * 95.89 / (82.73 + 95.89) = 88.82.
TABLE3 = Published(accuracy=84.25, precision=82.73, recall=95.89, f1=88.82, note="ensemble, validation")


def published(loss: str, backbone: str) -> Published:
    """The published cell for a loss x backbone (an empty `Published` for anything not in the paper)."""
    return TABLE2.get((loss, backbone.lower().replace("_", "")), Published())
