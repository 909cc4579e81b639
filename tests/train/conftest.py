"""Tiny C-NMC-layout datasets (cells on black, subjects in file names) that a model can learn in one epoch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def write_cnmc(
    root: Path, subjects: dict[str, int], cells: int = 4, size: int = 72, folds: int = 3, seed: int = 0
) -> Path:
    """`subjects` maps subject code (H1 healthy, 7 leukemic...) -> fold; ALL cells are big and dark."""
    rng = np.random.default_rng(seed)
    for code, fold in subjects.items():
        label = "hem" if code.upper().startswith("H") else "all"
        folder = root / "training_data" / f"fold_{fold % folds}" / label
        folder.mkdir(parents=True, exist_ok=True)
        for cell in range(cells):
            image = np.zeros((size, size, 3), np.uint8)
            radius = int(size * (0.38 if label == "all" else 0.22) + rng.integers(-2, 3))
            colour = (150, 60, 120) if label == "all" else (210, 150, 190)
            centre = (size // 2 + int(rng.integers(-3, 4)), size // 2 + int(rng.integers(-3, 4)))
            cv2.circle(image, centre, radius, colour, -1)
            noise = rng.integers(0, 25, image.shape, dtype=np.uint8)
            image = np.where(image > 0, cv2.add(image, noise), 0).astype(np.uint8)
            cv2.imwrite(str(folder / f"UID_{code}_{cell}_1_{label}.bmp"), image[:, :, ::-1])
    return root


def subjects(n_all: int, n_hem: int, folds: int = 3) -> dict[str, int]:
    out = {str(i + 1): i for i in range(n_all)}
    out |= {f"H{i + 1}": i for i in range(n_hem)}
    return out


@pytest.fixture(scope="session")
def cells_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 leukemic + 6 healthy subjects x 4 cells, in three folds (fold_2 can be validation)."""
    return write_cnmc(tmp_path_factory.mktemp("cnmc"), subjects(6, 6))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def tiny_flags(data: Path, out: Path, cache: Path) -> list[str]:
    """The cheapest real training run: the 4-block simplecnn at 32 px, 1 epoch, fp32."""
    return [
        "--data", str(data), "--out", str(out), "--cache-dir", str(cache), "--backbone", "simplecnn",
        "--weights", "none", "--image-size", "32", "--batch-size", "8", "--epochs", "1", "--lr", "1e-3",
        "--val-fold", "2", "--precision", "fp32", "--no-progress",
    ]  # fmt: skip


LEUKOSCOPE = Path(sys.executable).with_name("leukoscope")  # the installed console script


def run_cli(*args: str, timeout: float = 300, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run the installed `leukoscope` executable (exit codes as users see them)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [str(LEUKOSCOPE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
        **kwargs,  # type: ignore[arg-type]
    )
