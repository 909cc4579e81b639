"""Data pipeline and memory on C-NMC's training size (10,661 synthetic 450x450 BMPs, `--scale` for fewer).

- cold: `PreprocessCache.load` building the cache (decode + crop + resize, 2 threads as `fit` uses), with
  the BMPs first dropped from the OS page cache (`posix_fadvise(DONTNEED)`), so it reads the disk.
- cached: the same `load` hitting the cache (key check only), then every image read back from the memmap in
  shuffled order, as training does: with the page cache warm, and again after dropping `images.npy` from it.
- memory: peak RSS of a 1-epoch `leukoscope train` subprocess over all the images, on the cache built
  above (the cold build is measured on exactly the file list training asks for, so the run hits it).
"""

from __future__ import annotations

import gc
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import data as bdata
from benchmarks.bench_train import leukoscope_train
from benchmarks.common import CpuShare, Figure, Settings, log

RSS_LIMIT_GIB = 4.0


def page_cache_gib() -> float:
    """The kernel's page cache size ("Cached" in /proc/meminfo), to check that a drop worked."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("Cached:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return 0.0


def drop_from_page_cache(paths: list[str] | list[Path]) -> float:
    """Ask the kernel to forget the cached pages of these files (no root needed for clean, unmapped
    pages); returns how many GiB the page cache shrank by."""
    if not hasattr(os, "posix_fadvise"):
        return 0.0
    before = page_cache_gib()
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fdatasync(fd)  # dirty pages (a freshly generated file) cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return max(0.0, before - page_cache_gib())


def read_all(array: np.ndarray, order: np.ndarray) -> float:
    """Seconds to copy every image out of the memmap in `order` (what a shuffled epoch does)."""
    t0 = time.perf_counter()
    total = 0
    for i in order:
        total += int(np.array(array[i], copy=True)[0, 0, 0])
    return time.perf_counter() - t0


def run(settings: Settings, out_dir: Path) -> tuple[list[Figure], dict[str, Any]]:
    from leukoscope.config import PreprocessConfig
    from leukoscope.preprocess import PreprocessCache

    n_target = settings.pick(round(bdata.CNMC_TRAIN_IMAGES * settings.scale), 60)
    subjects = min(bdata.CNMC_SUBJECTS, max(10, n_target // 40))
    name = "cnmc-10661" if n_target == bdata.CNMC_TRAIN_IMAGES else f"cnmc-{n_target}"
    root = bdata.cnmc_dataset(settings, n_target, name, subjects=subjects, exact=True)
    size = settings.pick(224, 64)
    # the cache is keyed on the file list in order: build it for the list `leukoscope train` will ask for,
    # so the training run below finds it
    paths, crops = fit_paths(root, size)
    n = len(paths)
    cfg = PreprocessConfig(image_size=size)
    cache_root = settings.work / "cache-data"
    shutil.rmtree(cache_root, ignore_errors=True)
    figures: list[Figure] = []
    extra: dict[str, Any] = {"dataset": str(root), "images": n, "image_size": size}

    dropped = drop_from_page_cache(paths)
    log(f"data: cold build of {n} images ({dropped:.2f} GiB dropped from the page cache first)")
    with CpuShare() as cold_share:
        t0 = time.perf_counter()
        cached = PreprocessCache(cache_root).load(paths, cfg, center_crops=crops, workers=2)
        cold_s = time.perf_counter() - t0
    cold_rate = n / cold_s
    log(f"  cold: {cold_rate:.0f} images/s ({cold_s:.1f} s)")

    with CpuShare() as hit_share:
        t0 = time.perf_counter()
        cached = PreprocessCache(cache_root).load(paths, cfg, center_crops=crops, workers=2)
        hit_s = time.perf_counter() - t0
    order = np.random.default_rng(0).permutation(n)
    assert cached.hit, "the second load should hit the cache"
    with CpuShare() as warm_share:
        warm_rate = n / read_all(cached.array, order)
    npy = Path(cached.directory or cache_root) / "images.npy"
    del cached  # pages mapped by a live memmap cannot be dropped
    gc.collect()
    npy_dropped = drop_from_page_cache([npy])
    with CpuShare() as disk_share:
        disk_rate = n / read_all(np.load(npy, mmap_mode="r"), order)
    log(f"  cache hit check {hit_s:.2f} s; reads {warm_rate:.0f}/s (page cache), {disk_rate:.0f}/s (disk)")
    cache_gib = npy.stat().st_size / 2**30

    figures.append(
        Figure(
            "data",
            f"cold preprocessing, {n:,} BMPs -> {size}px cache",
            cold_rate,
            "images/s",
            note=f"decode + cell crop + pad + resize, 2 threads; {cold_s:.1f} s; {dropped:.2f} GiB of the "
            "BMPs dropped from the page cache first (posix_fadvise), so they were read from disk",
            cpu=cold_share.result,
        )
    )
    for label, rate, share, how in (
        ("cache reads (page cache warm)", warm_rate, warm_share.result, "right after the build"),
        (
            "cache reads (memmap from disk)",
            disk_rate,
            disk_share.result,
            f"after dropping {npy_dropped:.2f} GiB of images.npy from the page cache",
        ),
    ):
        r = rate / cold_rate
        figures.append(
            Figure(
                "data",
                label,
                rate,
                "images/s",
                baseline=cold_rate,
                ratio=r,
                target=">= 10x",
                met=r >= 10,
                note=f"shuffled order, one image at a time, {how}; baseline = cold preprocessing",
                cpu=share,
            )
        )
    figures.append(
        Figure(
            "data",
            "cache hit: key check of every file (stat) + open memmap",
            hit_s,
            "s",
            note=f"cache {cache_gib:.2f} GiB for {n:,} images",
            cpu=hit_share.result,
        )
    )

    # peak memory of one training epoch over all images
    run_dir = settings.work / "runs" / f"rss-{name}{'-tiny' if settings.tiny else ''}"
    train_cache = cache_root
    batch = settings.pick(32, 4)
    log(f"data: 1-epoch training run over {n} images for peak RSS")
    with CpuShare() as rss_share:
        res = leukoscope_train(
            settings, root, "tf_efficientnet_lite0", size, batch, settings.pick(None, 2), run_dir, "bundled",
            train_cache, epochs=1,
        )  # fmt: skip
    groups = [d for d in cache_root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    rebuilt = len(groups) > 1
    rss = res["max_rss_gib"]
    phases = ", ".join(
        f"{label} {res.get(key) or 0:.2f} GiB"
        for label, key in (
            ("before the first step", "maxrss_gib_at_start"),
            ("after it", "maxrss_gib_after_first_step"),
            ("at the last step", "maxrss_gib_end_of_training"),
        )
    )
    run = (
        f"tf_efficientnet_lite0 @{size}, batch {batch}, {res['steps']} steps in {res['wall_s']:.0f} s "
        f"({res['images_per_s']:.1f} images/s), "
        + ("NOTE: the run rebuilt the cache (its file list differed)" if rebuilt else "cache hit")
    )
    met = rss is not None and rss < RSS_LIMIT_GIB
    note = (
        f"{run}; VmHWM peak {phases}; it counts the memmap pages the run touched (cache {cache_gib:.2f} "
        f"GiB), which are clean file pages the kernel drops under memory pressure; whole tree PSS "
        f"{res['tree_pss_gib']:.2f} GiB"
    )
    figures.append(
        Figure(
            "data",
            "peak RSS, 1-epoch training (largest process, VmHWM)",
            rss,
            "GiB",
            target=f"< {RSS_LIMIT_GIB:.0f} GiB",
            met=met,
            note=note,
            details=res,
            cpu=rss_share.result,
        )
    )
    anon = res.get("anon_gib")
    figures.append(
        Figure(
            "data",
            "peak anonymous memory (RssAnon), same run",
            anon,
            "GiB",
            target=f"< {RSS_LIMIT_GIB:.0f} GiB",
            met=anon is not None and anon < RSS_LIMIT_GIB,
            note=f"what the run needs in RAM (heap: model, activations, batches), sampled every 0.25 s; "
            f"file-backed resident pages peaked at {res.get('file_gib') or 0:.2f} GiB (memmap cache + "
            "libraries)",
            cpu=rss_share.result,
        )
    )
    extra |= {"cold_s": cold_s, "cache_gib": cache_gib, "rss_run": res}
    return figures, extra


def fit_paths(root: Path, size: int) -> tuple[list[str], list[int] | None]:
    """The file list (and centre crops) that `leukoscope train --data root` hands the cache, in order."""
    from leukoscope.config import RunConfig
    from leukoscope.train.data import choose_classes, load_splits, sample_frame

    cfg = RunConfig().override({"data.data": str(root), "preprocess.image_size": size})
    splits = load_splits(cfg)
    frame = sample_frame(splits, choose_classes(splits["train"], cfg))
    crops = frame["center_crop"].fillna(0).astype(int).tolist() if "center_crop" in frame else None
    return frame["path"].tolist(), crops
