"""`leukoscope demo` at a tiny size: every output exists, the printed F1 is metrics.json's, re-runs reuse
the synthetic data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["--subjects", "6", "--cells-per-subject", "6", "--test-cells", "12", "--epochs", "1"]
TINY += ["--image-size", "64", "--synth-size", "64"]


def _demo(out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "leukoscope", "demo", "--out", str(out), *TINY],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=env,
    )  # fmt: skip


@pytest.mark.slow
def test_tiny_demo(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = _demo(out)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    for path in summary["files"].values():
        assert Path(path).is_file(), path
    metrics = json.loads(Path(summary["files"]["metrics"]).read_text())
    assert metrics["split"] == "prelim" and metrics["n"] == 12
    assert metrics["training_overlap"] == {"files": 0, "subjects": 0, "checked": 1}  # held-out subjects
    printed = re.search(r"weighted F1 on held-out subjects: ([0-9.]+)", first.stderr)
    assert printed is not None, first.stderr[-2000:]
    assert float(printed.group(1)) == pytest.approx(metrics["weighted_f1"], abs=5e-5)
    assert "example predictions" in first.stderr

    stamp = out / "data" / ".synth.json"
    made = stamp.stat().st_mtime_ns
    second = _demo(out)
    assert second.returncode == 0, second.stderr[-3000:]
    assert stamp.stat().st_mtime_ns == made  # the synthetic set was reused, not rewritten
