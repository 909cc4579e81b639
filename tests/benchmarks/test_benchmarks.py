"""`make bench` machinery: every benchmark runs once at a tiny size, results and table are well formed.

Speed targets are never asserted here (they are `make bench`'s job); this proves the benchmarks work.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.procs import run_measured  # noqa: E402
from benchmarks.run import ORDER  # noqa: E402

from benchmarks import common  # noqa: E402


def _figure(**kw: object) -> common.Figure:
    base = {"benchmark": "train", "name": "x images/s", "value": 10.0, "unit": "images/s"}
    return common.Figure(**(base | kw))  # type: ignore[arg-type]


def test_readme_section_is_rewritten_and_the_rest_kept(tmp_path: Path) -> None:
    settings = common.Settings(command="python benchmarks/run.py --only train")
    out = tmp_path / "results"
    fig = _figure(
        baseline=4.0,
        ratio=2.5,
        target=">= 2x",
        met=True,
        note="a | b",
        cpu={"shared": True, "other_load_cores": 0.8},
    )
    common.write_result(out, "train", [fig], settings, {})
    readme = tmp_path / "README.md"
    readme.write_text(f"# Bench\n\nintro\n\n{common.BEGIN}\nold table\n{common.END}\n\nfooter\n")
    common.update_readme(readme, out)
    text = readme.read_text()
    assert "old table" not in text
    assert text.startswith("# Bench\n\nintro\n") and text.rstrip().endswith("footer")
    row = next(line for line in text.splitlines() if line.startswith("| x images/s"))
    assert "10.0 images/s" in row and "4.00 images/s" in row and "2.50x" in row
    assert "yes (0.80 cores)" in row and "a \\| b" in row  # a pipe in a note must not break the table
    doc = json.loads((out / "train.json").read_text())
    assert doc["command"] == settings.command and doc["machine"]["cores"] >= 1 and doc["machine"]["torch"]
    assert doc["date"].endswith("Z")


def test_readme_without_markers_gets_a_section(tmp_path: Path) -> None:
    out = tmp_path / "results"
    common.write_result(out, "data", [_figure(benchmark="data")], common.Settings(), {})
    readme = tmp_path / "README.md"
    readme.write_text("# Bench\n")
    common.update_readme(readme, out)
    text = readme.read_text()
    assert text.index(common.BEGIN) < text.index("### data") < text.index(common.END)


SPIN = "import time\nt = time.time()\nwhile time.time() - t < 1.5:\n    pass\n"


def test_cpu_share_counts_our_children_as_ours() -> None:
    spin = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        with common.CpuShare() as share:
            time.sleep(1.0)
    finally:
        spin.wait()
    assert share.result["own_cores"] > 0.3


def test_cpu_share_sees_another_process() -> None:
    """An orphaned spinner (its parent shell exits at once) is not ours: it must show as other load."""
    subprocess.run(["sh", "-c", f"{sys.executable} -c '{SPIN}' >/dev/null 2>&1 &"], check=True)
    with common.CpuShare() as share:
        time.sleep(1.0)
    time.sleep(0.6)
    assert share.result["other_load_cores"] > 0.3
    assert share.result["shared"] is True


def test_peak_rss_of_a_subprocess(tmp_path: Path) -> None:
    code = "import numpy as np, time\na = np.ones(300 * 2**20 // 8)\ntime.sleep(0.6)\n"
    res = run_measured([sys.executable, "-c", code], log_path=tmp_path / "log.txt", interval=0.05)
    assert res["rc"] == 0
    assert 0.28 < res["max_rss_gib"] < 1.5
    assert res["tree_pss_gib"] > 0.25


def test_peak_rss_is_the_childs_own_not_its_parents(tmp_path: Path) -> None:
    """ru_maxrss would report this test process's 1 GiB for a child that never used it."""
    import numpy as np

    ballast = np.ones(2**30 // 8)  # resident in the parent when it forks
    code = "import time\ntime.sleep(0.3)\n"
    res = run_measured([sys.executable, "-c", code], log_path=tmp_path / "log.txt", interval=0.05)
    assert ballast[-1] == 1.0
    assert res["max_rss_gib"] < 0.3
    assert res["ru_maxrss_gib"] > 0.9  # the artefact the sampled high-water mark avoids


@pytest.mark.slow
def test_every_benchmark_runs_tiny(tmp_path: Path) -> None:
    out, work = tmp_path / "results", tmp_path / "work"
    cmd = [sys.executable, "benchmarks/run.py", "--tiny", "--out", str(out), "--work", str(work)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for name in ORDER:
        doc = json.loads((out / f"{name}.json").read_text())
        assert doc["tiny"] is True and doc["machine"]["cpu"] and doc["figures"], name
        for fig in doc["figures"]:
            value = fig["value"]
            assert value is None or (math.isfinite(value) and value >= 0), fig
            if fig["ratio"] is not None:
                assert fig["ratio"] > 0 and fig["baseline"] is not None, fig
            if fig["target"] and fig["value"] is not None:
                assert fig["met"] in (True, False), fig
    readme = (out / "README.md").read_text()
    for name in ORDER:
        assert f"### {name}" in readme
    train = json.loads((out / "train.json").read_text())["figures"]
    assert any("data wait" in f["name"] for f in train)
