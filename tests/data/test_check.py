from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile

from leukoscope.data import known
from leukoscope.data.check import CheckReport, check_dataset, describe_image
from leukoscope.data.readers._base import walk_files

from .conftest import cell, write_csv, write_folder, write_image


def kinds(report: CheckReport) -> Counter:
    return Counter(p["kind"] for p in report.problems)


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    """Two classes: 2 good RGB PNGs, grayscale / RGBA / 16-bit files, 4 broken images and a text file."""
    root = write_folder(tmp_path / "odd", {"a": 2})
    rgb = cell(5)
    b = root / "b"
    b.mkdir()
    cv2.imwrite(str(b / "gray.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(b / "rgba.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA))
    tifffile.imwrite(b / "deep.tif", rgb.astype(np.uint16) * 257)
    cv2.imwrite(str(b / "deep_gray.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
    (b / "noise.png").write_bytes(np.random.default_rng(0).bytes(500))
    jpg = write_image(b / "cut.jpg", rgb).read_bytes()
    (b / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    bmp = write_image(b / "cut.bmp", rgb).read_bytes()
    (b / "cut.bmp").write_bytes(bmp[: len(bmp) // 2])
    (b / "empty.bmp").write_bytes(b"")
    (root / "a" / "notes.txt").write_text("not an image")
    return root


def test_odd_files_are_counted_and_reported_never_fatal(odd_folder: Path) -> None:
    report = check_dataset(odd_folder, workers=2)
    assert report.layout == "folder"
    assert report.n_images == 10 and report.n_readable == 6
    assert report.classes == {"a": 2, "b": 8}
    assert kinds(report) == Counter({"unreadable": 4, "non_image": 1})
    unreadable = {Path(p["path"]).name: p["message"] for p in report.problems if p["kind"] == "unreadable"}
    assert set(unreadable) == {"noise.png", "cut.jpg", "cut.bmp", "empty.bmp"}
    assert "truncated" in unreadable["cut.jpg"] and "truncated" in unreadable["cut.bmp"]
    assert "empty" in unreadable["empty.bmp"]
    assert report.sizes == {
        "64x64 RGB": 2,
        "64x64 grayscale": 1,
        "64x64 RGBA": 1,
        "64x64 RGB 16-bit": 1,
        "64x64 grayscale 16-bit": 1,
    }
    assert report.subject_known is False and report.usable
    assert report.notes  # says that subjects are unknown


def test_clean_synthetic_cnmc_has_no_problems_but_differs_from_the_real_one(cnmc_master: Path) -> None:
    report = check_dataset(cnmc_master)
    assert report.problems == []
    assert report.layout == "cnmc" and report.n_images == report.n_readable == 32
    assert report.subject_known is True and report.subjects == 6 + 2
    assert report.splits["fold_0"]["n_images"] == 8 and report.splits["final"]["unlabelled"] == 2
    assert report.sizes == {"64x64 RGB": 30, "85x85 RGB": 2}
    diff = report.differences
    assert diff["matches_known"] is False
    assert diff["parts"]["training_data/fold_0/all"]["expected"] == 2397
    assert diff["parts"]["training_data/fold_0/all"]["expected_bytes"] == {"608454": 2397}
    assert diff["missing_files"] > 15_000 and diff["extra_files"] + diff["size_mismatches"] == 33
    assert "checksums" not in diff


def test_duplicates_and_subject_leaks_across_folds(cnmc: Path) -> None:
    fold0 = sorted((cnmc / "training_data/fold_0/all").glob("*.bmp"))
    shutil.copy(fold0[0], cnmc / "training_data/fold_2/all/UID_90_1_1_all.bmp")  # leak by content
    shutil.copy(fold0[1], fold0[1].with_name(fold0[1].name.replace("_all", "9_all")))  # copy in one fold
    shutil.move(fold0[2], cnmc / "training_data/fold_1/all" / fold0[2].name)  # leak by subject
    report = check_dataset(cnmc)
    assert kinds(report) == Counter({"duplicate_across_splits": 1, "duplicate": 1, "subject_leak": 1})
    leak = next(p for p in report.problems if p["kind"] == "subject_leak")
    subject = "_".join(fold0[2].name.split("_")[:2])
    assert f"subject {subject} has images in fold_0, fold_1" in leak["message"]
    across = next(p for p in report.problems if p["kind"] == "duplicate_across_splits")
    assert "UID_90_1_1_all.bmp (fold_2)" in across["message"]


def test_stray_files_in_cnmc_are_reported(cnmc: Path) -> None:
    (cnmc / "training_data" / "fold_0" / "README.txt").write_text("x")
    write_image(cnmc / "training_data" / "stray.png", cell(1))
    report = check_dataset(cnmc)
    assert kinds(report) == Counter({"non_image": 1, "ignored_image": 1})


def test_csv_manifest_with_a_missing_file(tmp_path: Path) -> None:
    write_image(tmp_path / "x.png", cell(1))
    report = check_dataset(write_csv(tmp_path, [("x.png", "all", "P1", ""), ("gone.png", "hem", "P2", "")]))
    assert report.n_images == 2 and report.n_readable == 1
    assert [p["kind"] for p in report.problems] == ["unreadable"]
    assert "cannot read file" in report.problems[0]["message"]


def _manifest_of(root: Path) -> pd.DataFrame:
    rows = []
    for f in walk_files(root):
        rel = f.relative_to(root).as_posix()
        data = f.read_bytes()
        rows.append((rel, "", hashlib.sha256(data).hexdigest(), len(data), known.part_of(rel)))
    return pd.DataFrame(rows, columns=["path", "label_from_folder", "lfs_sha256", "bytes", "part"])


def test_checksums_verify_a_copy_file_by_file(cnmc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _manifest_of(cnmc)  # this copy, as it is now, plays the real dataset
    monkeypatch.setattr(known, "cnmc_manifest", lambda: manifest)
    report = check_dataset(cnmc, verify_checksums=True)
    assert report.differences["matches_known"] is True
    assert report.differences["checksums"] == {"checked": 33, "mismatched": 0, "examples": []}

    victim = sorted((cnmc / "training_data/fold_1/hem").glob("*.bmp"))[0]
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF  # same size, different pixels
    victim.write_bytes(bytes(data))
    assert check_dataset(cnmc).differences["matches_known"] is True  # sizes alone cannot tell
    report = check_dataset(cnmc, verify_checksums=True)
    assert report.differences["checksums"]["mismatched"] == 1
    assert report.differences["checksums"]["examples"] == [victim.relative_to(cnmc).as_posix()]
    assert report.differences["matches_known"] is False
    assert report.problems == []  # differences from the known dataset are informational


def test_describe_image_reports_the_file_not_the_decoded_array() -> None:
    ok, buf = cv2.imencode(".png", np.zeros((20, 30), np.uint8))
    assert ok
    assert describe_image(buf.tobytes()) == "30x20 grayscale"
    assert describe_image(b"not an image") == "unknown"
