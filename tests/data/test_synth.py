from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from leukoscope.data import synth
from leukoscope.data.images import read_image
from leukoscope.data.synth import SubjectStyle, render_cell, write_cnmc_synth
from leukoscope.errors import ConfigError, DataError

NAME = re.compile(r"^(UID_(H?)\d+)_\d+_[1-3]_(all|hem)\.bmp$")


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_naming_match_cnmc(tmp_path: Path) -> None:
    root = tmp_path / "syn"
    summary = write_cnmc_synth(root, subjects=6, cells_per_subject=5, size=64, seed=1, prelim=6, final=2)
    assert summary["n_images"] == 38 and summary["subjects"] == {"all": 4, "hem": 2}
    fold_of: dict[str, set[str]] = {}
    for path in (root / "training_data").rglob("*.bmp"):
        match = NAME.match(path.name)
        assert match, path.name
        subject, healthy, label = match.groups()
        assert path.parent.name == label and (healthy == "H") == (label == "hem")
        fold_of.setdefault(subject, set()).add(path.parent.parent.name)
        data = path.read_bytes()
        assert data[:2] == b"BM" and int.from_bytes(data[28:30], "little") == 24  # 24-bit BMP
    assert len(fold_of) == 6 and all(len(f) == 1 for f in fold_of.values())  # folds share no subject
    assert {f for fs in fold_of.values() for f in fs} == {"fold_0", "fold_1", "fold_2"}
    labels = pd.read_csv(root / "validation_data/C-NMC_test_prelim_phase_data_labels.csv")
    assert list(labels.columns) == ["Patient_ID", "new_names", "labels"]
    assert sorted(labels["new_names"]) == sorted(f"{i}.bmp" for i in range(1, 7))
    assert set(labels["labels"]) == {0, 1}
    prelim_subjects = {NAME.match(p).group(1) for p in labels["Patient_ID"]}
    assert not prelim_subjects & set(fold_of)  # new subjects
    assert (root / "validation_data/C-NMC_test_prelim_phase_data/6.bmp").is_file()
    final = sorted((root / "testing_data/C-NMC_test_final_phase_data").iterdir())
    assert [p.name for p in final] == ["1.bmp", "2.bmp"]
    assert read_image(final[0]).shape == (85, 85, 3)


def test_full_size_files_have_the_real_byte_sizes(tmp_path: Path) -> None:
    root = tmp_path / "syn"
    write_cnmc_synth(root, subjects=3, cells_per_subject=1, seed=0, final=1)
    sizes = {p.stat().st_size for p in (root / "training_data").rglob("*.bmp")}
    assert sizes == {608_454}  # 450x450 24-bit, as C-NMC's training files
    final = root / "testing_data/C-NMC_test_final_phase_data/1.bmp"
    assert final.stat().st_size == 1_080_054 and read_image(final).shape == (600, 600, 3)
    image = read_image(final)
    assert image[:60].max() == 0 and image[:, -60:].max() == 0  # the cell lies in the centred 450x450


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    args = {"subjects": 3, "cells_per_subject": 3, "size": 48, "prelim": 3, "final": 1}
    a = files(Path(write_cnmc_synth(tmp_path / "a", seed=4, **args)["path"]))
    b = files(Path(write_cnmc_synth(tmp_path / "b", seed=4, **args)["path"]))
    c = files(Path(write_cnmc_synth(tmp_path / "c", seed=5, **args)["path"]))
    assert a == b
    assert a.keys() != c.keys() or any(a[k] != c[k] for k in a)


def _areas(label: str, difficulty: float, n: int = 50) -> list[int]:
    out = []
    for i in range(n):
        rng = np.random.default_rng([11, i, label == "all"])
        rgb = render_cell(rng, label, SubjectStyle.draw(rng), size=64, difficulty=difficulty)
        out.append(int((rgb.max(axis=2) > 15).sum()))
    return out


def test_difficulty_makes_the_classes_overlap() -> None:
    def auc(difficulty: float) -> float:
        blasts, normals = _areas("all", difficulty), _areas("hem", difficulty)
        return roc_auc_score([1] * len(blasts) + [0] * len(normals), blasts + normals)

    assert auc(0.0) > 0.9  # blasts are clearly larger
    assert 0.3 < auc(1.0) < 0.7  # no size signal left


def test_subjects_are_recognisable_by_stain() -> None:
    """Between-subject colour differences dwarf within-subject ones: a subject leak is learnable."""
    means = []
    for s in range(4):
        style = SubjectStyle.draw(np.random.default_rng([2, s]))
        for i in range(8):
            rgb = render_cell(np.random.default_rng([3, s, i]), "all", style, size=64).astype(float)
            inside = rgb.max(axis=2) > 15
            means.append(rgb[inside].mean(axis=0) / rgb[inside].mean())  # hue, not brightness
    per_subject = np.array(means).reshape(4, 8, 3)
    between = per_subject.mean(axis=1).var(axis=0).sum()
    within = per_subject.var(axis=1).mean(axis=0).sum()
    assert between > 5 * within


def test_refuses_a_non_empty_folder_and_bad_options(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty"):
        write_cnmc_synth(tmp_path / "full", subjects=3, cells_per_subject=1, size=32)
    with pytest.raises(ConfigError, match="difficulty"):
        write_cnmc_synth(tmp_path / "a", difficulty=1.5)
    with pytest.raises(ConfigError, match="subjects"):
        write_cnmc_synth(tmp_path / "b", subjects=2)
    assert (tmp_path / "full" / "x.txt").read_text() == "keep me"


def test_an_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = synth.encode_bmp

    def failing(rgb: np.ndarray) -> bytes:
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(rgb)

    monkeypatch.setattr(synth, "encode_bmp", failing)
    with pytest.raises(KeyboardInterrupt):
        write_cnmc_synth(tmp_path / "out", subjects=3, cells_per_subject=2, size=32)
    assert list(tmp_path.iterdir()) == []
