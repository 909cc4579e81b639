"""The tf.data input: an epoch is a (seed, epoch) permutation, exactly `steps` batches per epoch, a resumed
stream equals the uninterrupted one, augmentation is a function of the seed alone."""

from __future__ import annotations

import numpy as np
import pytest

from leukoscope.preprocess.augment import RandomAugment
from leukoscope.train.tfdata import (
    ImageSource,
    epoch_order,
    evaluation_dataset,
    steps_per_epoch,
    training_dataset,
)


def _source(n: int = 10, size: int = 8, shards: int = 2) -> ImageSource:
    images = np.zeros((n, size, size, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)  # each image carries its own index
    parts = np.array_split(images, shards)
    labels = np.arange(n) % 2
    return ImageSource.from_shards(parts, labels)


def _ids(batch: np.ndarray) -> list[int]:
    return [int(v) for v in batch[:, 0, 0, 0]]


def _stream(source: ImageSource, **kw: object) -> list[tuple[list[int], np.ndarray]]:
    args = {
        "batch_size": 4,
        "seed": 3,
        "augment": RandomAugment(False, False, 0.0),
        "binary": True,
        "epochs": 3,
    }
    dataset, _ = training_dataset(source, **{**args, **kw})  # type: ignore[arg-type]
    return [(_ids(x.numpy()), y.numpy()) for x, y in dataset]


def test_each_epoch_is_a_full_permutation_of_its_own() -> None:
    batches = _stream(_source())
    assert len(batches) == 3 * steps_per_epoch(10, 4) == 9
    epochs = [[i for b in batches[e * 3 : e * 3 + 3] for i in b[0]] for e in range(3)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    assert epochs[1] == epoch_order(10, 3, 1).tolist()


def test_resumed_stream_equals_the_uninterrupted_one() -> None:
    full = _stream(_source())
    resumed = _stream(_source(), initial_epoch=1)
    assert [b[0] for b in resumed] == [b[0] for b in full[3:]]


def test_labels_follow_the_images() -> None:
    for ids, labels in _stream(_source()):
        assert labels.shape == (len(ids), 1) and labels.dtype == np.float32
        assert labels[:, 0].tolist() == [i % 2 for i in ids]
    multi = _stream(_source(), binary=False)
    assert multi[0][1].dtype == np.int32 and multi[0][1].ndim == 1


def test_max_steps_caps_every_epoch() -> None:
    assert len(_stream(_source(), max_steps=1)) == 3


def test_augmentation_is_a_function_of_the_seed() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    source = ImageSource.from_array(images, np.arange(6), np.zeros(6))
    aug = RandomAugment(True, True, 45.0, 0.5)
    args = {"batch_size": 3, "augment": aug, "binary": True, "epochs": 1}
    first, _ = training_dataset(source, seed=1, **args)  # type: ignore[arg-type]
    again, _ = training_dataset(source, seed=1, parallel=2, **args)  # type: ignore[arg-type]
    other, _ = training_dataset(source, seed=2, **args)  # type: ignore[arg-type]
    a, b, c = (np.concatenate([x.numpy() for x, _ in ds]) for ds in (first, again, other))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.max() <= 255


def test_evaluation_dataset_keeps_order_and_rows() -> None:
    images = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
    source = ImageSource.from_array(images, [4, 0, 2], [1, 0, 1])
    batches = list(evaluation_dataset(source, 2, binary=True))
    x = np.concatenate([b[0].numpy() for b in batches])
    np.testing.assert_array_equal(x, images[[4, 0, 2]].astype(np.float32))
    assert np.concatenate([b[1].numpy() for b in batches])[:, 0].tolist() == [1, 0, 1]
    only = list(evaluation_dataset(source, 2, binary=True, labels=False))
    assert only[0].shape == (2, 4, 4, 3)


def test_shard_labels_must_match() -> None:
    with pytest.raises(ValueError, match="labels"):
        ImageSource.from_shards([np.zeros((3, 4, 4, 3), np.uint8)], [0, 1])


def test_epochs_longer_than_a_pass_read_the_set_again_in_new_orders() -> None:
    batches = _stream(_source(), steps=6, epochs=1)  # 24 positions from a set of 10: 2.4 passes
    ids = [i for b in batches for i in b[0]]
    assert len(batches) == 6 and all(len(b[0]) == 4 for b in batches)  # every batch full
    assert sorted(ids[:10]) == list(range(10)) and sorted(ids[10:20]) == list(range(10))
    assert ids[:10] == epoch_order(10, 3, 0).tolist()  # the first pass is the one-pass epoch's order
    assert ids[:10] != ids[10:20]
    assert [b[0] for b in _stream(_source(), steps=6, epochs=1)] == [b[0] for b in batches]


def test_two_class_targets_are_one_for_the_positive_class_whatever_its_index() -> None:
    """C-NMC's classes sort as [all, hem] and 'all' is the sigmoid's class: its target is 1, not 0."""
    from leukoscope.train.tfdata import targets

    labels = np.array([0, 1, 1, 0])
    assert targets(labels, True, positive=0).ravel().tolist() == [1.0, 0.0, 0.0, 1.0]
    assert targets(labels, True, positive=1).ravel().tolist() == [0.0, 1.0, 1.0, 0.0]
    assert targets(labels, False).tolist() == [0, 1, 1, 0]
    batches = list(evaluation_dataset(_source(), 4, binary=True, positive=0))
    assert batches[0][1].numpy().ravel().tolist() == (_source().labels[:4] == 0).astype(float).tolist()


def test_class_counts_follow_the_targets() -> None:
    """weighted_bce's W for target 1 must be the positive class's: [all, hem] counts flip when all is 0."""
    from leukoscope.train.inputs import class_weights, in_target_order

    assert in_target_order([7272, 3389], True, positive=0) == [3389, 7272]
    assert in_target_order([7272, 3389], True, positive=1) == [7272, 3389]
    assert in_target_order([5, 6, 7], False, positive=1) == [5, 6, 7]
    weights = class_weights(in_target_order([7272, 3389], True, positive=0))
    assert weights[1] == pytest.approx(10661 / (2 * 7272))  # target 1 = ALL, the larger class
