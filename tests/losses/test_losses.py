"""Every loss against a reference (torch, torchvision or hand-computed numbers), for 2 and N classes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from leukoscope.errors import ConfigError
from leukoscope.losses import LOSSES, get_loss, list_losses

LOGITS = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
TARGETS = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0])
PARAMS = {"weighted_bce": {"class_counts": [3, 2, 5]}, "balanced_bce": {"class_counts": [3, 2, 5]}}


def _random(n: int = 8, classes: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if classes is None:
        return torch.randn(n, generator=g) * 2, torch.randint(0, 2, (n,), generator=g).float()
    return torch.randn(n, classes, generator=g) * 2, torch.randint(0, classes, (n,), generator=g)


def _close(value: torch.Tensor, expected: float | torch.Tensor) -> None:
    assert value.shape == ()
    assert float(value) == pytest.approx(float(expected), abs=1e-4)


def test_registry_lists_the_six_losses() -> None:
    assert list_losses() == ["balanced_bce", "bce", "focal", "focal_hinge", "hinge", "weighted_bce"]
    assert "hinge" in LOSSES


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("hinge", {}, 0.6),
        ("hinge", {"squared": True}, 0.7),
        ("focal_hinge", {"gamma": 2}, 0.7 / 3),
        ("focal_hinge", {"gamma": 3}, 0.18),
        ("focal_hinge", {"gamma": 1}, 0.6),
    ],
)
def test_hinge_family_hand_computed(name: str, params: dict, expected: float) -> None:
    _close(get_loss(name, **params)(LOGITS, TARGETS), expected)


def test_hinge_on_sigmoid_matches_keras() -> None:
    # Keras: labels 0/1 -> -1/+1, y_pred = sigmoid output p as given: y=-1 -> 1 + p, y=+1 -> 1 - p.
    logits, targets = torch.zeros(2), torch.tensor([0.0, 1.0])
    _close(get_loss("hinge", on="sigmoid")(logits, targets), (1.5 + 0.5) / 2)
    p = torch.sigmoid(LOGITS)
    y = 2 * TARGETS - 1
    _close(get_loss("focal_hinge", gamma=2, on="sigmoid")(LOGITS, TARGETS), ((1 - y * p) ** 2).mean() / 3)


def test_bce_matches_torch() -> None:
    logits, targets = _random()
    _close(get_loss("bce")(logits, targets), F.binary_cross_entropy_with_logits(logits, targets))
    logits, labels = _random(classes=4)
    _close(get_loss("bce")(logits, labels), F.cross_entropy(logits, labels))


def test_weighted_bce_is_scaled_pos_weight_bce() -> None:
    counts = [10778, 9272]  # the paper's oversampled training set (hem, all)
    w0, w1 = 20050 / (2 * 10778), 20050 / (2 * 9272)
    logits, targets = _random(16)
    reference = w0 * torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w1 / w0))(logits, targets)
    _close(get_loss("weighted_bce", class_counts=counts)(logits, targets), reference)


def test_weighted_bce_hand_computed() -> None:
    # counts [3, 1]: N = 4, c = 2 -> W = [4/6, 4/2]; logits 0 -> BCE = ln 2 for every sample
    loss = get_loss("weighted_bce", class_counts=[3, 1])
    assert loss.class_weights.tolist() == pytest.approx([2 / 3, 2.0])
    _close(loss(torch.zeros(2), torch.tensor([0.0, 1.0])), (2 / 3 + 2) / 2 * math.log(2))


def test_weighted_bce_n_classes() -> None:
    loss = get_loss("weighted_bce", class_counts=[2, 3, 5])
    weights = torch.tensor([10 / 6, 10 / 9, 10 / 15])
    assert loss.class_weights.tolist() == pytest.approx(weights.tolist())
    logits, labels = _random(12, classes=3)
    reference = F.cross_entropy(logits, labels, weight=weights, reduction="none").mean()
    _close(loss(logits, labels), reference)
    manual = (weights[labels] * -F.log_softmax(logits, 1)[torch.arange(12), labels]).mean()
    _close(loss(logits, labels), manual)


def test_balanced_bce_effective_number_weights() -> None:
    # beta 0.5, counts [3, 1]: raw = [0.5 / 0.875, 0.5 / 0.5] = [0.5714, 1], scaled to sum 2
    loss = get_loss("balanced_bce", class_counts=[3, 1], beta=0.5)
    assert loss.class_weights.tolist() == pytest.approx([0.727273, 1.272727], abs=1e-6)
    _close(loss(torch.zeros(3), torch.tensor([1.0, 1.0, 0.0])), (2 * 1.272727 + 0.727273) / 3 * math.log(2))
    logits, targets = _random()
    _close(
        get_loss("balanced_bce", class_counts=[3, 1], beta=0.0)(logits, targets),
        get_loss("bce")(logits, targets),
    )
    near_one = get_loss("balanced_bce", class_counts=[3, 1], beta=1 - 1e-9)
    assert near_one.class_weights.tolist() == pytest.approx([0.5, 1.5], abs=1e-4)  # -> 1 / n_i, scaled


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.75, 1.0), (None, 2.0), (0.5, 0.0)])
def test_focal_matches_torchvision(alpha: float | None, gamma: float) -> None:
    logits, targets = _random(16)
    reference = sigmoid_focal_loss(
        logits, targets, alpha=-1 if alpha is None else alpha, gamma=gamma, reduction="mean"
    )
    _close(get_loss("focal", alpha=alpha, gamma=gamma)(logits, targets), reference)


def test_focal_n_classes() -> None:
    logits, labels = _random(10, classes=4)
    _close(get_loss("focal", alpha=None, gamma=0.0)(logits, labels), F.cross_entropy(logits, labels))
    log_p = F.log_softmax(logits, 1)[torch.arange(10), labels]
    manual = (-((1 - log_p.exp()) ** 2) * log_p).mean()
    _close(get_loss("focal", alpha=None, gamma=2.0)(logits, labels), manual)
    _close(get_loss("focal", alpha=0.25)(logits, labels), 0.25 * manual)
    alpha = torch.tensor([1.0, 2.0, 0.5, 0.0])
    _close(
        get_loss("focal", alpha=alpha.tolist())(logits, labels),
        (alpha[labels] * -((1 - log_p.exp()) ** 2) * log_p).mean(),
    )


@pytest.mark.parametrize(
    ("name", "params", "reduce"),
    [
        ("hinge", {}, lambda m: m.mean()),
        ("hinge", {"squared": True}, lambda m: (m**2).mean()),
        ("focal_hinge", {"gamma": 3}, lambda m: (m**3).mean() / 5),
    ],
)
def test_hinge_family_n_classes_is_one_vs_rest(name: str, params: dict, reduce) -> None:
    logits, labels = _random(6, classes=3)
    signs = 2 * F.one_hot(labels, 3).float() - 1  # +1 for the true class, -1 for the others
    margin = torch.clamp(1 - signs * logits, min=0)
    _close(get_loss(name, **params)(logits, labels), reduce(margin))


@pytest.mark.parametrize("name", ["bce", "weighted_bce", "balanced_bce", "focal", "hinge", "focal_hinge"])
@pytest.mark.parametrize("classes", [None, 3])
def test_gradients_are_finite(name: str, classes: int | None) -> None:
    params = PARAMS.get(name, {}) if classes == 3 else {"class_counts": [3, 5]} if name in PARAMS else {}
    logits, targets = _random(classes=classes)
    logits.requires_grad_(True)
    loss = get_loss(name, **params)(logits, targets)
    loss.backward()
    assert loss.shape == () and torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


def test_focal_hinge_gradient_finite_at_zero_margin_for_small_gamma() -> None:
    logits = torch.tensor([1.0, 2.0, -1.0, 0.3], requires_grad=True)  # margins 0, 0 (clipped), 0, 0.7
    loss = get_loss("focal_hinge", gamma=0.75)(logits, torch.tensor([1.0, 1.0, 0.0, 1.0]))
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[3] < 0


def test_shapes_and_dtypes() -> None:
    loss = get_loss("hinge")
    _close(loss(LOGITS[:, None], TARGETS.long()), 0.6)  # (B, 1) logits and long targets are accepted
    assert get_loss("bce")(LOGITS.bfloat16(), TARGETS).dtype == torch.float32
    with pytest.raises(ValueError, match="targets must have shape"):
        loss(LOGITS, TARGETS[:3])


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("dice", {}, "unknown loss 'dice'"),
        ("hinge", {"gamma": 2}, "no parameter 'gamma'"),
        ("bce", {"pos_weight": 2}, "takes no parameters"),
        ("weighted_bce", {}, "needs class_counts"),
        ("weighted_bce", {"class_counts": [3, 0]}, "positive whole numbers"),
        ("weighted_bce", {"class_counts": "3,1"}, "positive whole numbers"),
        ("balanced_bce", {"class_counts": [3, 1], "beta": 1.0}, "beta"),
        ("focal", {"alpha": 1.5}, "alpha"),
        ("focal", {"gamma": -1}, "gamma"),
        ("focal_hinge", {"gamma": 0.5}, "gamma"),
        ("focal_hinge", {"gamma": 0.3}, "gamma"),
        ("hinge", {"on": "softmax"}, "on must be"),
        ("hinge", {"squared": "yes"}, "squared"),
    ],
)
def test_bad_names_and_params_are_one_line_config_errors(name: str, params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        get_loss(name, **params)
    assert "\n" not in str(info.value)


def test_class_counts_must_cover_every_class() -> None:
    with pytest.raises(ConfigError, match="3 class weights but the model has 2 classes"):
        get_loss("weighted_bce", class_counts=[1, 2, 3])(LOGITS, TARGETS)
    with pytest.raises(ConfigError, match="two classes alpha"):
        get_loss("focal", alpha=[0.5, 0.5])(LOGITS, TARGETS)
