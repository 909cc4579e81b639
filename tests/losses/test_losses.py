"""Every loss against a reference (Keras' own losses or hand-computed numbers), for 2 and N classes."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from leukoscope.errors import ConfigError
from leukoscope.losses import LOSSES, get_loss, list_losses

LOGITS = np.array([-2.0, -0.5, 0.0, 0.5, 2.0], dtype=np.float32)
TARGETS = np.array([0.0, 1.0, 0.0, 1.0, 1.0], dtype=np.float32)
PARAMS = {"weighted_bce": {"class_counts": [3, 2, 5]}, "balanced_bce": {"class_counts": [3, 2, 5]}}


def _random(n: int = 8, classes: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if classes is None:
        return (rng.normal(size=n) * 2).astype(np.float32), rng.integers(0, 2, n).astype(np.float32)
    return (rng.normal(size=(n, classes)) * 2).astype(np.float32), rng.integers(0, classes, n)


def _value(loss: keras.losses.Loss, logits: np.ndarray, targets: np.ndarray) -> float:
    out = loss(targets, logits)
    assert tuple(out.shape) == ()
    return float(out)


def _close(value: float, expected: float) -> None:
    assert value == pytest.approx(float(expected), abs=1e-5)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_registry_lists_the_six_losses() -> None:
    assert list_losses() == ["balanced_bce", "bce", "focal", "focal_hinge", "hinge", "weighted_bce"]
    assert "hinge" in LOSSES


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("bce", {}, 0.479031),
        ("hinge", {}, 0.6),
        ("hinge", {"squared": True}, 0.7),
        ("focal_hinge", {"gamma": 2}, 0.233333),
        ("focal_hinge", {"gamma": 3}, 0.18),
        ("focal_hinge", {"gamma": 1}, 0.6),
    ],
)
def test_reference_values(name: str, params: dict, expected: float) -> None:
    assert _value(get_loss(name, **params), LOGITS, TARGETS) == pytest.approx(expected, abs=1e-6)


def test_hinge_on_sigmoid_is_keras_hinge_on_the_probability() -> None:
    # Keras' hinge maps 0/1 labels to -1/+1 and uses y_pred = p as given: a negative never reaches zero loss
    p = 1 / (1 + np.exp(-LOGITS))
    keras_hinge = float(keras.losses.Hinge()(TARGETS, p))
    _close(_value(get_loss("hinge", on="sigmoid"), LOGITS, TARGETS), keras_hinge)
    y = 2 * TARGETS - 1
    _close(
        _value(get_loss("focal_hinge", gamma=2, on="sigmoid"), LOGITS, TARGETS), ((1 - y * p) ** 2).mean() / 3
    )


def test_bce_matches_keras() -> None:
    logits, targets = _random()
    reference = keras.losses.BinaryCrossentropy(from_logits=True)(targets[:, None], logits[:, None])
    _close(_value(get_loss("bce"), logits, targets), float(reference))
    logits, labels = _random(classes=4)
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    _close(_value(get_loss("bce"), logits, labels), float(reference))


def test_logits_of_shape_b1_and_b_agree() -> None:
    loss = get_loss("focal_hinge")
    _close(_value(loss, LOGITS[:, None], TARGETS[:, None]), _value(loss, LOGITS, TARGETS))


def test_weighted_bce_is_the_papers_inverse_frequency() -> None:
    counts = [10778, 9272]  # the paper's oversampled training set (hem, all)
    loss = get_loss("weighted_bce", class_counts=counts)
    assert loss.class_weights == pytest.approx([20050 / (2 * 10778), 20050 / (2 * 9272)])
    logits, targets = _random(16)
    bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)(targets[:, None], logits[:, None])
    weights = np.where(targets == 1, loss.class_weights[1], loss.class_weights[0])
    _close(_value(loss, logits, targets), float(np.mean(weights * np.asarray(bce))))


def test_weighted_bce_hand_computed() -> None:
    # counts [3, 1]: N = 4, c = 2 -> W = [4/6, 4/2]; logits 0 -> BCE = ln 2 for every sample
    loss = get_loss("weighted_bce", class_counts=[3, 1])
    assert loss.class_weights == pytest.approx([2 / 3, 2.0])
    _close(
        _value(loss, np.zeros(2, np.float32), np.array([0.0, 1.0], np.float32)), (2 / 3 + 2) / 2 * math.log(2)
    )


def test_weighted_bce_n_classes() -> None:
    loss = get_loss("weighted_bce", class_counts=[2, 3, 5])
    weights = np.array([10 / 6, 10 / 9, 10 / 15])
    assert loss.class_weights == pytest.approx(weights.tolist())
    logits, labels = _random(12, classes=3)
    log_p = np.log(_softmax(logits))[np.arange(12), labels]
    _close(_value(loss, logits, labels), float(np.mean(weights[labels] * -log_p)))


def test_balanced_bce_effective_number_weights() -> None:
    # beta 0.5, counts [3, 1]: raw = [0.5 / 0.875, 0.5 / 0.5] = [0.5714, 1], scaled to sum 2
    loss = get_loss("balanced_bce", class_counts=[3, 1], beta=0.5)
    assert loss.class_weights == pytest.approx([0.727273, 1.272727], abs=1e-6)
    zeros, targets = np.zeros(3, np.float32), np.array([1.0, 1.0, 0.0], np.float32)
    _close(_value(loss, zeros, targets), (2 * 1.272727 + 0.727273) / 3 * math.log(2))
    logits, targets = _random()
    plain = get_loss("balanced_bce", class_counts=[3, 1], beta=0.0)
    _close(_value(plain, logits, targets), _value(get_loss("bce"), logits, targets))
    near_one = get_loss("balanced_bce", class_counts=[3, 1], beta=1 - 1e-9)
    assert near_one.class_weights == pytest.approx([0.5, 1.5], abs=1e-4)  # -> 1 / n_i, scaled


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.75, 1.0), (0.5, 0.0)])
def test_focal_matches_keras_binary_focal(alpha: float, gamma: float) -> None:
    logits, targets = _random(16)
    reference = keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=alpha, gamma=gamma, from_logits=True
    )(targets[:, None], logits[:, None])
    _close(_value(get_loss("focal", alpha=alpha, gamma=gamma), logits, targets), float(reference))


def test_focal_without_alpha_matches_keras() -> None:
    logits, targets = _random(16)
    reference = keras.losses.BinaryFocalCrossentropy(gamma=2.0, from_logits=True)(
        targets[:, None], logits[:, None]
    )
    _close(_value(get_loss("focal", alpha=None, gamma=2.0), logits, targets), float(reference))


def test_focal_n_classes() -> None:
    logits, labels = _random(10, classes=4)
    _close(
        _value(get_loss("focal", alpha=None, gamma=0.0), logits, labels),
        _value(get_loss("bce"), logits, labels),
    )
    log_p = np.log(_softmax(logits))[np.arange(10), labels]
    manual = (-((1 - np.exp(log_p)) ** 2) * log_p).mean()
    _close(_value(get_loss("focal", alpha=None, gamma=2.0), logits, labels), manual)
    _close(_value(get_loss("focal", alpha=0.25), logits, labels), 0.25 * manual)
    alpha = np.array([1.0, 2.0, 0.5, 0.0])
    expected = (alpha[labels] * -((1 - np.exp(log_p)) ** 2) * log_p).mean()
    _close(_value(get_loss("focal", alpha=alpha.tolist()), logits, labels), expected)


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
    signs = 2 * np.eye(3)[labels] - 1  # +1 for the true class, -1 for the others
    margin = np.clip(1 - signs * logits, 0, None)
    _close(_value(get_loss(name, **params), logits, labels), reduce(margin))


@pytest.mark.parametrize("name", ["bce", "weighted_bce", "balanced_bce", "focal", "hinge", "focal_hinge"])
@pytest.mark.parametrize("classes", [None, 3])
def test_gradients_are_finite(name: str, classes: int | None) -> None:
    params = PARAMS.get(name, {}) if classes == 3 else {"class_counts": [3, 5]} if name in PARAMS else {}
    logits, targets = _random(classes=classes)
    x = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = get_loss(name, **params)(targets, x)
    grad = tape.gradient(loss, x).numpy()
    assert np.isfinite(float(loss)) and np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_focal_hinge_gradient_finite_at_zero_margin_for_small_gamma() -> None:
    x = tf.Variable([1.0, 2.0, -1.0, 0.3])  # margins 0, 0 (clipped), 0, 0.7
    with tf.GradientTape() as tape:
        loss = get_loss("focal_hinge", gamma=0.75)(np.array([1.0, 1.0, 0.0, 1.0], np.float32), x)
    grad = tape.gradient(loss, x).numpy()
    assert np.isfinite(grad).all() and grad[3] < 0


def test_mixed_precision_logits_are_computed_in_float32() -> None:
    loss = get_loss("bce")(TARGETS, tf.constant(LOGITS, dtype=tf.bfloat16))
    assert loss.dtype == tf.float32
    assert float(loss) == pytest.approx(0.479031, abs=2e-3)


@pytest.mark.parametrize("name", ["bce", "weighted_bce", "focal", "hinge", "focal_hinge"])
def test_serialisation_round_trip(name: str) -> None:
    params = {"weighted_bce": {"class_counts": [3, 1]}, "focal_hinge": {"gamma": 3.0}}.get(name, {})
    loss = get_loss(name, **params)
    config = keras.losses.serialize(loss)
    assert config["registered_name"] == f"leukoscope>{name}"
    again = keras.losses.deserialize(config)
    assert type(again) is type(loss)
    _close(_value(again, LOGITS, TARGETS), _value(loss, LOGITS, TARGETS))


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
        get_loss("weighted_bce", class_counts=[1, 2, 3])(TARGETS, LOGITS)
    with pytest.raises(ConfigError, match="two classes alpha"):
        get_loss("focal", alpha=[0.5, 0.5])(TARGETS, LOGITS)
