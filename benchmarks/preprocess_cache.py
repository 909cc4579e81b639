"""Preprocessing cost: building the cache (decode + crop + resize) vs reading it back.

Writes N synthetic C-NMC-like images (450 x 450 BMP, one bright ellipse cell on black) and prints JSON.
`cold` = a build into an empty cache (the source files are in the OS page cache, as right after a
download); `cached` = a fresh `load` that is a hit, plus reading every image.

    .venv/bin/python benchmarks/preprocess_cache.py --n 1000 --size 224 --workers 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from leukoscope.config import PreprocessConfig
from leukoscope.preprocess import PreprocessCache


def make_images(folder: Path, n: int, side: int = 450, seed: int = 0) -> list[Path]:
    """One ellipse cell per image at a random place, size and angle (reused when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"cell_{i:05d}.bmp"
        paths.append(path)
        if path.exists():
            continue
        img = np.zeros((side, side, 3), np.uint8)
        center = (int(rng.integers(120, side - 120)), int(rng.integers(120, side - 120)))
        axes = (int(rng.integers(50, 110)), int(rng.integers(40, 100)))
        color = tuple(int(c) for c in rng.integers(120, 255, 3))
        cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0, 360, color, thickness=-1)
        cv2.circle(img, center, min(axes) // 2, (90, 40, 140), thickness=-1)
        cv2.imwrite(str(path), img)
    return paths


def run(n: int, size: int, workers: int, src: Path) -> dict:
    paths = make_images(src, n)
    cfg = PreprocessConfig(crop="cell", image_size=size)
    root = Path(tempfile.mkdtemp(prefix="leukoscope-bench-cache-"))
    try:
        t0 = time.perf_counter()
        built = PreprocessCache(root).load(paths, cfg, workers=workers)
        cold = time.perf_counter() - t0
        assert not built.hit and built.ok.all()
        t0 = time.perf_counter()
        cached = PreprocessCache(root).load(paths, cfg)
        checksum = 0
        for i in range(len(cached)):  # copy every image out, as a Dataset's __getitem__ does
            checksum += int(np.array(cached[i])[size // 2, size // 2, 0])
        warm = time.perf_counter() - t0
        assert cached.hit
        nbytes = os.path.getsize(cached.directory / "images.npy")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "benchmark": "preprocess_cache",
        "n_images": n,
        "source": "450x450 BMP, one ellipse cell on black",
        "image_size": size,
        "workers": workers,
        "cold_build_s": round(cold, 3),
        "cold_ms_per_image": round(1000 * cold / n, 3),
        "cached_load_and_read_s": round(warm, 3),
        "cached_ms_per_image": round(1000 * warm / n, 4),
        "speedup": round(cold / warm, 1),
        "cache_bytes": nbytes,
        "cpu_count": os.cpu_count(),
        "checksum": checksum,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--src", type=Path, default=Path(tempfile.gettempdir()) / "leukoscope-bench-cells")
    args = parser.parse_args()
    print(json.dumps(run(args.n, args.size, args.workers, args.src), indent=2))


if __name__ == "__main__":
    main()
