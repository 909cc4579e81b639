"""Tiny datasets in every layout the readers know, written on the fly (64 px images, a few dozen files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from leukoscope.data.synth import SubjectStyle, render_cell, write_cnmc_synth

SIZE = 64


def cell(seed: int, label: str = "all", size: int = SIZE) -> np.ndarray:
    """A synthetic RGB cell, different for every seed."""
    rng = np.random.default_rng(seed)
    return render_cell(rng, label, SubjectStyle.draw(rng), size=size)


def write_image(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def write_allidb2(root: Path, n: int = 4) -> Path:
    """ImNNN_1.tif (blast) and ImNNN_0.tif (normal), alternating, in root/img like the real download."""
    for i in range(1, n + 1):
        label = i % 2
        write_image(root / "img" / f"Im{i:03d}_{label}.tif", cell(i, "all" if label else "hem"))
    return root


def write_folder(root: Path, classes: dict[str, int], suffixes: tuple[str, ...] = (".png",)) -> Path:
    seed = 0
    for name, n in classes.items():
        for i in range(n):
            seed += 1
            write_image(root / name / f"{name}_{i}{suffixes[i % len(suffixes)]}", cell(seed))
    return root


def write_csv(root: Path, rows: list[tuple[str, ...]], header: str = "path,label,subject,split") -> Path:
    csv_path = root / "manifest.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    return csv_path


@pytest.fixture(scope="session")
def cnmc_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic C-NMC: 6 subjects x 4 cells in 3 folds, 6 prelim images, 2 final ones. Never modify it."""
    root = tmp_path_factory.mktemp("cnmc") / "C-NMC_Leukemia"
    write_cnmc_synth(root, subjects=6, cells_per_subject=4, size=SIZE, seed=3, prelim=6, final=2)
    return root


@pytest.fixture
def cnmc(cnmc_master: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic C-NMC set that a test may change."""
    return Path(shutil.copytree(cnmc_master, tmp_path / "C-NMC_Leukemia"))
