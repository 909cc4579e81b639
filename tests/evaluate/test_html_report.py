"""The HTML report is self-contained and opens in headless Chromium without console errors."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from leukoscope.evaluate.calibration import reliability_diagram
from leukoscope.evaluate.html_report import confident_errors, write_report
from leukoscope.evaluate.metrics import compute_metrics


def _report(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        img = np.zeros((60, 80, 3), np.uint8)
        cv2.circle(img, (40, 30), 20, (int(rng.integers(60, 255)), 40, 160), -1)
        path = tmp_path / "imgs" / f"cell_{i}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), img)
        paths.append(str(path))
    y = np.array([0, 1, 0, 1, 0, 1])
    p = np.array([0.9, 0.2, 0.3, 0.8, 0.6, 0.7])  # images 0, 1 and 4 are wrong
    probs = np.stack([1 - p, p], axis=1)
    metrics = compute_metrics(y, probs, ["hem", "all"], subjects=["a", "a", "b", "b", "c", "c"])
    errors = confident_errors(paths, y, probs, ["hem", "all"])
    assert [Path(e["image"]).name for e in errors] == ["cell_0.png", "cell_1.png", "cell_4.png"]
    images = {"reliability": reliability_diagram(y, probs)}
    tables = {"per image": [{"path": Path(q).name, "p_all": float(v)} for q, v in zip(paths, p, strict=True)]}
    return write_report(
        tmp_path / "out", metrics, images, errors, title="Test <report>", tables=tables, notes=["a note"]
    )


def test_report_is_self_contained(tmp_path: Path) -> None:
    html = _report(tmp_path).read_text()
    assert (tmp_path / "out" / "metrics.json").is_file()
    assert "Test &lt;report&gt;" in html  # escaped
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 4  # 1 plot + 3 error thumbnails
    assert not re.search(r'(src|href)="(?!data:)', html)  # no external resources at all
    assert "weighted_f1" in html and "Confusion matrix" in html and "per subject" in html


@pytest.mark.slow
def test_report_opens_in_headless_chromium(tmp_path: Path) -> None:
    from chromium_page import open_file

    problems, loaded, requests, title = open_file(_report(tmp_path))
    assert problems == []
    assert title == "Test <report>"
    assert loaded and all(loaded)
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
