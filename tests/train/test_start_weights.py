"""`leukoscope train --weights FILE`: a file that is missing, not HDF5 or of another backbone is one line
with exit code 2 (the missing one before any data is read)."""

from __future__ import annotations

from pathlib import Path

import h5py
import keras
import pytest
from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

from .conftest import run_cli, tiny_flags

pytestmark = pytest.mark.slow


def _one_line(result: object) -> str:
    assert result.returncode == 2, result.stderr[-2000:]  # type: ignore[attr-defined]
    lines = [line for line in result.stderr.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert len(lines) == 1 and "Traceback" not in lines[0], result.stderr  # type: ignore[attr-defined]
    return lines[0]


def _train(cells_dir: Path, out: Path, cache_dir: Path, weights: Path) -> object:
    flags = tiny_flags(cells_dir, out, cache_dir)
    flags[flags.index("--backbone") + 1] = "efficientnetb0"
    flags[flags.index("--weights") + 1] = str(weights)
    return run_cli("train", *flags)


def test_a_missing_start_file_is_one_line_before_any_data(
    tmp_path: Path, cells_dir: Path, cache_dir: Path
) -> None:
    missing = tmp_path / "efficientnetb0_notop.h5"
    line = _one_line(_train(cells_dir, tmp_path / "run", cache_dir, missing))
    assert "the start weights file does not exist" in line and str(missing) in line
    assert not (tmp_path / "run").exists()


def test_a_weights_file_of_another_backbone_is_one_line(
    tmp_path: Path, cells_dir: Path, cache_dir: Path
) -> None:
    other = tmp_path / "mobilenetv3small_notop.h5"
    base = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3))
    with h5py.File(other, "w") as fh:
        save_weights_to_hdf5_group(fh, base)
    line = _one_line(_train(cells_dir, tmp_path / "run", cache_dir, other))
    assert (
        "mobilenetv3small_notop.h5 does not fit EfficientNetB0" in line and "efficientnetb0_notop.h5" in line
    )
    assert not (tmp_path / "run" / "model.keras").exists()
