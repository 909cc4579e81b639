"""tf.data input over memory-mapped uint8 images: the cache, the workflow's crops and augmented shards.

An epoch is never in memory: each step reads one batch of rows from the memory maps (sorted, so reads
stay sequential), augments it in NumPy/OpenCV inside `tf.numpy_function` (parallel calls; OpenCV
releases the GIL), and tf.data prefetches the next batches while the model trains.

The order of epoch e is a permutation drawn from (seed, e) and the augmentation of a sample from
(seed, e, position), so the stream of batches is a pure function of the seed: a run resumed at an epoch
boundary sees exactly the batches an uninterrupted run would (what makes `--deterministic` resumes
bit-identical), and every epoch has its own order (Keras' `shuffle=True` with a fixed global seed
repeats one order).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leukoscope.preprocess.augment import RandomAugment, sample_rng
from leukoscope.preprocess.cache import release_pages

RELEASE_EVERY = 16  # batches read between drops of the memory maps' pages from the resident set


@dataclass
class ImageSource:
    """Rows of one or more (N_k, S, S, 3) uint8 arrays: `index[i] = (shard, row)`, `labels[i]` its class.

    Rows may repeat (oversampling). `labels` are class indices.
    """

    shards: list[np.ndarray]
    index: np.ndarray  # (N, 2) int64
    labels: np.ndarray  # (N,) int64
    _reads: int = field(default=0, repr=False)

    @classmethod
    def from_array(cls, images: np.ndarray, rows: Sequence[int], labels: Sequence[int]) -> ImageSource:
        rows = np.asarray(rows, dtype=np.int64)
        index = np.stack([np.zeros_like(rows), rows], axis=1)
        return cls([images], index, np.asarray(labels, dtype=np.int64))

    @classmethod
    def from_shards(cls, shards: list[np.ndarray], labels: Sequence[int]) -> ImageSource:
        """Every row of every shard, in order; `labels` lists them shard after shard."""
        index = np.concatenate(
            [np.stack([np.full(len(s), k), np.arange(len(s))], axis=1) for k, s in enumerate(shards)]
        ).astype(np.int64)
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(index):
            raise ValueError(f"{len(labels)} labels for {len(index)} images")
        return cls(shards, index, labels)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def image_size(self) -> int:
        return int(self.shards[0].shape[1])

    def read(self, positions: np.ndarray) -> np.ndarray:
        """Images at `positions` (into this source), in that order, as one (B, S, S, 3) uint8 array."""
        pairs = self.index[positions]
        out = np.empty((len(positions), *self.shards[0].shape[1:]), dtype=np.uint8)
        for shard in np.unique(pairs[:, 0]):
            mine = np.flatnonzero(pairs[:, 0] == shard)
            rows = pairs[mine, 1]
            order = np.argsort(rows, kind="stable")
            out[mine[order]] = self.shards[shard][rows[order]]
        self._reads += 1
        if self._reads % RELEASE_EVERY == 0:
            for shard in self.shards:
                release_pages(shard)
        return out

    def class_counts(self, num_classes: int) -> list[int]:
        return np.bincount(self.labels, minlength=num_classes).astype(int).tolist()


def steps_per_epoch(n: int, batch_size: int, limit: int | None = None) -> int:
    steps = -(-n // batch_size)
    return min(steps, limit) if limit else steps


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([int(seed), int(epoch), 7]).permutation(n)


def targets(labels: np.ndarray, binary: bool, positive: int = 1) -> np.ndarray:
    """What the loss sees: two classes, (B, 1) float 1.0 where the label is the `positive` class (the
    sigmoid's, the model card's positive_class, whichever index it has); else the class indices."""
    if binary:
        return (np.asarray(labels) == positive).astype(np.float32).reshape(-1, 1)
    return np.asarray(labels).astype(np.int32)


class Batches:
    """The NumPy side of the training pipeline: (epoch, step) -> augmented uint8 batch and labels."""

    def __init__(
        self,
        source: ImageSource,
        batch_size: int,
        seed: int,
        augment: RandomAugment,
        binary: bool,
        positive: int = 1,
    ) -> None:
        self.source = source
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment
        self.binary = binary
        self.positive = positive  # two classes: the class index whose target is 1 (the sigmoid's class)
        self.length = 0  # positions an epoch reads (0: one pass)

    @functools.lru_cache(maxsize=2)  # noqa: B019  (one instance per fit; two epochs can be in flight)
    def order(self, epoch: int, length: int = 0) -> np.ndarray:
        """The epoch's permutation, followed by further ones while shorter than `length` (epochs of more
        steps than one pass: every batch full, no image twice in a pass)."""
        n = len(self.source)
        passes = [epoch_order(n, self.seed, epoch)]
        while len(passes) * n < length:
            passes.append(np.random.default_rng([int(self.seed), int(epoch), 7, len(passes)]).permutation(n))
        return passes[0] if len(passes) == 1 else np.concatenate(passes)

    def __call__(self, epoch: Any, step: Any) -> tuple[np.ndarray, np.ndarray]:
        epoch, step = int(epoch), int(step)
        start = step * self.batch_size
        positions = self.order(epoch, self.length)[start : start + self.batch_size]
        images = self.source.read(positions)
        if self.augment.active:
            for i, position in enumerate(range(start, start + len(positions))):
                images[i] = self.augment(images[i], sample_rng(self.seed, epoch, position))
        return images, targets(self.source.labels[positions], self.binary, self.positive)


def training_dataset(
    source: ImageSource,
    *,
    batch_size: int,
    seed: int,
    augment: RandomAugment,
    binary: bool,
    epochs: int,
    initial_epoch: int = 0,
    max_steps: int | None = None,
    parallel: int = 0,
    steps: int | None = None,
    positive: int = 1,
) -> tuple[Any, int]:
    """(tf.data.Dataset of (float32 pixels 0-255, labels), steps per epoch) for epochs initial..epochs-1.

    Each epoch contributes exactly `steps` batches (default: one pass, capped by `max_steps`), so Keras'
    `fit(steps_per_epoch=steps)` reads one epoch per epoch from a single iterator. More steps than one
    pass read the training set again in new orders.
    """
    import tensorflow as tf

    steps = steps or steps_per_epoch(len(source), batch_size, max_steps)
    size = source.image_size
    make = Batches(source, batch_size, seed, augment, binary, positive)
    if steps > steps_per_epoch(len(source), batch_size):
        make.length = steps * batch_size
    label_dtype = tf.float32 if binary else tf.int32
    label_shape = (None, 1) if binary else (None,)

    def load(epoch: Any, step: Any) -> tuple[Any, Any]:
        images, labels = tf.numpy_function(make, [epoch, step], [tf.uint8, label_dtype], stateful=False)
        images.set_shape((None, size, size, 3))
        labels.set_shape(label_shape)
        return tf.cast(images, tf.float32), labels

    epochs_ds = tf.data.Dataset.range(initial_epoch, epochs)
    pairs = epochs_ds.flat_map(lambda e: tf.data.Dataset.range(steps).map(lambda s: (e, s)))
    calls = parallel if parallel > 0 else tf.data.AUTOTUNE
    dataset = pairs.map(load, num_parallel_calls=calls, deterministic=True).prefetch(tf.data.AUTOTUNE)
    return _with_options(dataset), steps


def evaluation_dataset(
    source: ImageSource, batch_size: int, binary: bool, labels: bool = True, positive: int = 1
) -> Any:
    """Batches of `source` in order, no augmentation: (pixels, labels) as in training, or pixels only."""
    import tensorflow as tf

    n, size = len(source), source.image_size
    label_dtype = tf.float32 if binary else tf.int32

    def read(start: Any) -> tuple[np.ndarray, np.ndarray]:
        positions = np.arange(int(start), min(int(start) + batch_size, n))
        return source.read(positions), targets(source.labels[positions], binary, positive)

    def load(start: Any) -> Any:
        batch, y = tf.numpy_function(read, [start], [tf.uint8, label_dtype], stateful=False)
        batch.set_shape((None, size, size, 3))
        y.set_shape((None, 1) if binary else (None,))
        pixels = tf.cast(batch, tf.float32)
        return (pixels, y) if labels else pixels

    starts = tf.data.Dataset.range(0, n, batch_size)
    dataset = starts.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _with_options(dataset.prefetch(tf.data.AUTOTUNE))


def _with_options(dataset: Any) -> Any:
    """Batches are built by hand, so tf.data must not try to re-shard them across replicas by file."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
