"""Published numbers we compare against, with where they come from.

Source: the "focal hinge loss" paper on C-NMC 2019 (ISBI 2019 challenge data): DenseNet201 and
EfficientNetB2 fine-tuned with five losses (BCE, weighted BCE, focal, hinge, focal hinge), ensemble of the
two networks, weighted F1 on the challenge's final test set. Values are percentages.

Only numbers we know exactly are filled in. Every Table 2 cell we could not verify is `None` and printed as
"n/a": an invented reference number would be worse than none. Fill a cell only from the paper itself.
"""

from __future__ import annotations

from dataclasses import dataclass

CITATION = (
    "Focal hinge loss paper, C-NMC 2019 (DenseNet201 + EfficientNetB2, five losses, ensemble); "
    "Table 2 (per loss x backbone, weighted precision/recall/F1) and Table 4 (comparison with the literature)"
)

LOSSES = ("bce", "weighted_bce", "focal", "hinge", "focal_hinge")
PAPER_BACKBONES = ("densenet201", "efficientnet_b2")
LOSS_LABELS = {
    "bce": "BCE",
    "weighted_bce": "Weighted BCE",
    "balanced_bce": "Balanced BCE",
    "focal": "Focal",
    "hinge": "Hinge",
    "focal_hinge": "Focal hinge",
}
BACKBONE_LABELS = {"densenet201": "DenseNet201", "efficientnet_b2": "EfficientNetB2"}


@dataclass(frozen=True)
class Published:
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    note: str = ""


# Table 2: (loss, backbone) -> weighted precision / recall / F1 on the final test. Unverified cells stay None.
TABLE2: dict[tuple[str, str], Published] = {
    (loss, backbone): Published() for loss in LOSSES for backbone in PAPER_BACKBONES
}

# The ensemble (mean of the two networks' probabilities): the paper's headline result.
ENSEMBLE = Published(f1=91.94, note="ensemble of DenseNet201 + EfficientNetB2, final test")

# Table 4, for context only (other methods, other protocols: not a like-for-like comparison).
LITERATURE: list[dict[str, object]] = [
    {"method": "C-NMC 2019 challenge winner", "weighted_f1": 91.0, "note": "approximate, final test"},
    {
        "method": "later subject-level methods",
        "weighted_f1": "94.8-95.3",
        "note": "range reported in later work; different evaluation protocols",
    },
]


def published(loss: str, backbone: str) -> Published:
    """The published cell for a loss x backbone (an empty `Published` for anything not in the paper)."""
    return TABLE2.get((loss, backbone), Published())


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
