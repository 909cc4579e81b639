"""Input pipeline: LeukoScope's tf.data over the augmented artifact vs what users write, and the ceiling.

The same 1,024 images (the first samples of the 20,050-sample augmented set at 224 px), the same online
augmentations (horizontal + vertical flips, a rotation uniform in [-90, 90] degrees, bilinear, black
corners), batches of 32 float32 images with their labels, one epoch per pass:
- leukoscope: `leukoscope.train.tfdata.training_dataset` over the memory-mapped shards (what the train
  rule's `fit` reads): batch reads in sorted order, OpenCV flips/rotation in parallel
  `tf.numpy_function` calls, prefetch;
- ImageDataGenerator: `flow_from_directory` over the same images as BMP files, `horizontal_flip`,
  `vertical_flip`, `rotation_range=90`, `fill_mode="constant"` (what the paper's era wrote);
- image_dataset_from_directory: the same files, `.map` of `RandomFlip("horizontal_and_vertical")` +
  `RandomRotation(0.25, fill_mode="constant")`, no cache, no prefetch, no parallel calls (a tutorial);
- ceiling: the raw memory-map read of the same rows (NumPy fancy indexing, shuffled batches), no
  augmentation, no TensorFlow; and leukoscope's pipeline with augmentation off, which isolates what
  tf.data adds to the read.
Each round runs every pipeline once, in turn (the host's speed drifts); a pass's rate is taken after its
first two batches (steady state: a training epoch is hundreds of batches); figures are medians of rounds.
Every dataset object is built once, outside the timing, as a training script builds it once per run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import data as bdata
from benchmarks.common import CpuShare, Figure, Settings, log, merge_cpu

TARGET = 10.0  # x ImageDataGenerator
WARM_BATCHES = 2  # not timed in a pass: tf.data's threads and autotuning start, the first reads
SIZE = 224
BATCH = 32


def run(settings: Settings, out_dir: Path) -> tuple[list[Figure], dict[str, Any]]:
    import keras
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    from leukoscope.preprocess.augment import RandomAugment
    from leukoscope.train.tfdata import epoch_order, training_dataset

    size = settings.pick(SIZE, 32)
    rounds = settings.pick(3, 1)
    art = bdata.artifact(settings, size)
    n = settings.pick(bdata.FILES, 32)
    source = bdata.training_source(art, limit=n)
    flips_rotation = RandomAugment(hflip=True, vflip=True, rotation=90.0, clahe_p=0.0)
    plain = RandomAugment(hflip=False, vflip=False, rotation=0.0, clahe_p=0.0)

    batch = settings.pick(BATCH, 8)

    def leukoscope(augment: RandomAugment) -> Callable[[], Iterator[int]]:
        def one_epoch() -> Iterator[int]:
            ds, _ = training_dataset(
                source, batch_size=batch, seed=42, augment=augment, binary=True, epochs=1
            )
            return (int(x.shape[0]) for x, _ in ds)

        return one_epoch

    generator = ImageDataGenerator(
        horizontal_flip=True, vertical_flip=True, rotation_range=90, fill_mode="constant", cval=0.0
    ).flow_from_directory(
        str(art.files), target_size=(size, size), batch_size=batch, class_mode="binary", seed=42
    )

    def image_data_generator() -> Iterator[int]:
        generator.on_epoch_end()  # a new shuffle, as fit does between epochs
        return (len(generator[i][0]) for i in range(len(generator)))

    augmentation = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal_and_vertical"),
            keras.layers.RandomRotation(0.25, fill_mode="constant"),
        ]
    )
    tutorial = keras.utils.image_dataset_from_directory(
        str(art.files), image_size=(size, size), batch_size=batch, label_mode="binary", seed=42, verbose=False
    ).map(lambda x, y: (augmentation(x, training=True), y))

    def image_dataset_from_directory() -> Iterator[int]:
        return (int(x.shape[0]) for x, _ in tutorial)

    epoch_seed = iter(range(1000))

    def raw_read() -> Iterator[int]:
        order = epoch_order(len(source), 0, next(epoch_seed))
        return (len(source.read(order[start : start + batch])) for start in range(0, len(order), batch))

    pipelines: dict[str, Callable[[], Iterator[int]]] = {
        "leukoscope": leukoscope(flips_rotation),
        "ImageDataGenerator": image_data_generator,
        "image_dataset_from_directory": image_dataset_from_directory,
        "raw": raw_read,
        "leukoscope_noaug": leukoscope(plain),
    }
    for fn in (pipelines["leukoscope"], pipelines["image_dataset_from_directory"]):
        sum(fn())  # warm-up pass: the page cache, tf.data's and the Keras layers' first graph builds
    rates: dict[str, list[float]] = {k: [] for k in pipelines}
    whole: dict[str, list[float]] = {k: [] for k in pipelines}
    shares: dict[str, list[dict[str, Any]]] = {k: [] for k in pipelines}
    for r in range(rounds):
        for name, fn in pipelines.items():
            with CpuShare() as share:
                count, steady, overall = timed_pass(fn())
            if count != n:
                raise RuntimeError(f"{name} gave {count} images for {n}")
            rates[name].append(steady)
            whole[name].append(overall)
            shares[name].append(share.result)
        log(f"input round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()))
    med = {k: float(np.median(v)) for k, v in rates.items()}
    cpu = {k: merge_cpu(*v) for k, v in shares.items()}
    common = (
        f"{n:,} images at {size} px, batch {batch}, images/s after each pass's first {WARM_BATCHES} batches "
        f"(steady state), median of {rounds} alternated rounds"
    )
    ls = med["leukoscope"]
    figures = []
    r_idg = ls / med["ImageDataGenerator"]
    note = (
        f"{common}; flips + rotation on both sides; rounds: leukoscope "
        f"{_list(rates['leukoscope'])}, ImageDataGenerator {_list(rates['ImageDataGenerator'])} images/s"
    )
    if r_idg < TARGET:
        t_ls, t_plain, t_raw = (1e6 / med[k] for k in ("leukoscope", "leukoscope_noaug", "raw"))
        note += (
            f". Below {TARGET:.0f}x; leukoscope's {t_ls:,.0f} us per image: memory-map read {t_raw:,.0f}, "
            f"tf.data around it {max(0.0, t_plain - t_raw):,.0f}, flips + rotation "
            f"{max(0.0, t_ls - t_plain):,.0f} (from the ceiling and no-augmentation passes)"
        )
    figures.append(
        Figure(
            "input",
            "leukoscope tf.data vs ImageDataGenerator.flow_from_directory",
            ls,
            "images/s",
            baseline=med["ImageDataGenerator"],
            ratio=r_idg,
            target=f">= {TARGET:.0f}x",
            met=r_idg >= TARGET,
            note=note,
            cpu=merge_cpu(cpu["leukoscope"], cpu["ImageDataGenerator"]),
        )
    )
    figures.append(
        Figure(
            "input",
            "leukoscope tf.data vs image_dataset_from_directory (no cache, no prefetch)",
            ls,
            "images/s",
            baseline=med["image_dataset_from_directory"],
            ratio=ls / med["image_dataset_from_directory"],
            note=f"{common}; baseline: RandomFlip + RandomRotation layers in one sequential .map; rounds "
            f"{_list(rates['image_dataset_from_directory'])} images/s",
            cpu=merge_cpu(cpu["leukoscope"], cpu["image_dataset_from_directory"]),
        )
    )
    figures.append(
        Figure(
            "input",
            "ceiling: raw memory-map read of the same rows",
            med["raw"],
            "images/s",
            note=f"{common}; NumPy only (leukoscope's ImageSource.read), no augmentation, page cache warm; "
            f"leukoscope with augmentation reaches {100 * ls / med['raw']:.0f}% of it",
            cpu=cpu["raw"],
        )
    )
    figures.append(
        Figure(
            "input",
            "leukoscope tf.data without augmentation",
            med["leukoscope_noaug"],
            "images/s",
            baseline=med["raw"],
            ratio=med["leukoscope_noaug"] / med["raw"],
            note=f"{common}; baseline = the raw read: what tf.data (numpy_function, float32 cast, prefetch) "
            "costs over it",
            cpu=cpu["leukoscope_noaug"],
        )
    )
    extra = {"images": n, "image_size": size, "rounds": rates, "whole_pass_rounds": whole}
    return figures, extra | {"artifact": str(art.folder)}


def timed_pass(batches: Iterator[int]) -> tuple[int, float, float]:
    """(images, images/s after the first WARM_BATCHES batches, images/s of the whole pass)."""
    t0 = time.perf_counter()
    total, warm_total, t_warm = 0, 0, t0
    for i, size in enumerate(batches):
        total += size
        if i == WARM_BATCHES - 1:
            warm_total, t_warm = total, time.perf_counter()
    end = time.perf_counter()
    steady = (total - warm_total) / (end - t_warm) if total > warm_total else total / (end - t0)
    return total, steady, total / (end - t0)


def _list(values: list[float]) -> str:
    return " / ".join(f"{v:,.0f}" for v in values)
