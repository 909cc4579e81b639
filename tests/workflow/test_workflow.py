"""The Snakemake workflow for real: `leukoscope demo` at a tiny scale (simplecnn, two losses), then what a
finished run must satisfy (nothing left to do, one loss's change reruns only its chain, the report in a
browser), the paper's config as a dry run, lint and snakefmt, and bad input refused in one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
LEUKOSCOPE = Path(sys.executable).parent / "leukoscope"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "200"}


def snakemake(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_counts(output: str) -> dict[str, int]:
    """The `Job stats` table of a dry run."""
    counts: dict[str, int] = {}
    block = output.split("Job stats:")[-1]
    for line in block.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            if parts and parts[0] == "total":
                break
            continue
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`leukoscope demo` (the installed executable) with simplecnn; two fake GPUs to share out."""
    out = tmp_path_factory.mktemp("wf") / "demo"
    env = {**ENV, "CUDA_VISIBLE_DEVICES": "0,1"}
    run = subprocess.run(
        [
            str(LEUKOSCOPE),
            "demo",
            "--out",
            str(out),
            "--backbones",
            "simplecnn",
            "--losses",
            "bce,focal_hinge",
            "--cores",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out, run


def _dry(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return snakemake("--directory", str(out), "--configfile", str(out / "config.yaml"), *extra, "-n", cwd=out)


@pytest.mark.slow
def test_the_whole_chain_makes_tables_figures_ensemble_and_report(
    demo: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, run = demo
    results = out / "results"
    table2 = (results / "tables" / "table2.md").read_text()
    assert "Table 2" in run.stderr and "preliminary test" in table2 and "91.94" in table2
    assert str(results / "report.html") in run.stderr
    for name in ("table1", "table2", "table3"):
        assert pd.read_csv(results / "tables" / f"{name}.csv").shape[0] > 0
    for figure in ("curves_simplecnn", "f1_heatmap", "confusion_matrices", "roc"):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 1000
    summary = json.loads((results / "samples" / "summary.json").read_text())
    predictions = pd.read_parquet(results / "models" / "simplecnn" / "bce" / "predictions.parquet")
    assert predictions.groupby("split").size().to_dict() == {
        s: summary["parts"][s]["images"] for s in ("val", "test", "final")
    }
    test = json.loads((results / "models" / "simplecnn" / "bce" / "eval" / "test.json").read_text())
    assert test["n"] == summary["parts"]["test"]["images"] and 0 <= test["weighted_f1"] <= 1
    from leukoscope.experiments.ensemble import read_spec

    spec, _ = read_spec(results / "ensemble" / "ensemble.json")
    choice = json.loads((results / "ensemble" / "choice.json").read_text())
    assert [Path(m).name for m in spec.members] == [choice["chosen"]["simplecnn"]]
    assert all((Path(m) / "model.keras").is_file() for m in spec.members)
    with zipfile.ZipFile(results / "ensemble" / "isbi_submission.zip") as zf:
        lines = zf.read("isbi_valid.predict").decode().split()
    assert len(lines) == summary["parts"]["final"]["images"] and set(lines) <= {"0", "1"}
    augmented = pd.read_parquet(results / "augment" / "index.parquet")
    assert augmented["label"].value_counts().to_dict() == {"all": 32, "hem": 32}
    assert not (results / ".state" / "train").exists() or not any(
        (results / ".state" / "train").rglob("*.keras")
    )


@pytest.mark.slow
def test_training_jobs_got_their_own_gpus(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = demo
    seen = []
    for loss in ("bce", "focal_hinge"):
        text = (out / "results" / "logs" / "train" / "simplecnn" / f"{loss}.log").read_text()
        seen.append(re.search(r"\(GPU (\d)\)", text).group(1))
    assert sorted(seen) == ["0", "1"]  # admitted together (gpu=2 available), each locked its own id


@pytest.mark.slow
def test_a_finished_run_has_nothing_to_do(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = demo
    dry = _dry(out)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stderr[-2000:]


@pytest.mark.slow
def test_touching_one_losss_config_reruns_only_its_chain(
    demo: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = demo
    config = yaml.safe_load((out / "config.yaml").read_text())
    config["losses"] = {"focal_hinge": {"gamma": 3.0}}
    (out / "touched.yaml").write_text(yaml.safe_dump(config))
    dry = snakemake("--directory", str(out), "--configfile", str(out / "touched.yaml"), "-n", cwd=out)
    assert dry.returncode == 0, dry.stderr[-2000:]
    counts = job_counts(dry.stdout)
    assert counts["train"] == 1 and counts["predict"] == 1 and counts["evaluate"] == 2, counts
    assert "models/simplecnn/focal_hinge/model.keras" in dry.stdout
    assert "models/simplecnn/bce/model.keras" not in dry.stdout.split("rule train")[-1].split("\n\n")[0]
    assert {"download", "samples", "crop", "augment", "stats"}.isdisjoint(counts)


@pytest.mark.slow
def test_the_report_is_complete_in_a_browser(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    from chromium_page import open_file

    out, _ = demo
    report = out / "results" / "report.html"
    assert report.stat().st_size > 100_000
    problems, loaded, requests, _title = open_file(report)
    assert not problems, problems
    assert all(loaded)
    assert all(r.startswith(("file:", "data:", "blob:", "about:")) for r in requests), (
        requests
    )  # self-contained
    text = report.read_text(encoding="utf-8", errors="replace")
    for caption in ("Table 2: weighted F1", "the paper's Figs. 3 and 4", "Confusion matrices", "ROC curves"):
        assert caption in text


@pytest.mark.slow
def test_a_job_that_fails_leaves_nothing_taken_as_done(tmp_path: Path) -> None:
    import cv2

    from leukoscope.data.synth import SubjectStyle, render_cell

    rng = np.random.default_rng(0)
    for label in ("all", "hem"):
        folder = tmp_path / "cells" / label
        folder.mkdir(parents=True)
        for i in range(6):
            path = folder / f"{i}.png"
            if label == "hem":
                path.write_bytes(b"\x89PNG\r\n\x1a\n broken")  # listed as hem, unreadable
            else:
                cv2.imwrite(str(path), render_cell(rng, label, SubjectStyle.draw(rng), size=40))
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "dataset": {"path": str(tmp_path / "cells")},
                "grid": {"backbones": ["simplecnn"], "losses": ["bce"]},
                "train": {"image_size": 16, "weights": "none", "epochs": 1},
                "augment": {"shards": 1},
            }
        )
    )
    run = subprocess.run(
        [
            str(LEUKOSCOPE),
            "workflow",
            "--configfile",
            str(tmp_path / "c.yaml"),
            "--directory",
            str(tmp_path / "w"),
            "--cores",
            "2",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert run.returncode == 2
    line = run.stderr.strip().splitlines()[-1]
    assert "augment: class 'hem' has no readable training images" in line, run.stderr[-2000:]
    assert not (tmp_path / "w" / "results" / "augment" / "index.parquet").exists()
    assert not list((tmp_path / "w" / "results" / "augment").glob("shard_*.npy"))
    dry = snakemake(
        "--directory", str(tmp_path / "w"), "--configfile", str(tmp_path / "c.yaml"), "-n", cwd=tmp_path
    )
    assert job_counts(dry.stdout).get("augment") == 1 and "samples" not in job_counts(dry.stdout)


@pytest.fixture(scope="module")
def small_cnmc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from leukoscope.data.synth import write_cnmc_synth

    root = tmp_path_factory.mktemp("cnmc") / "C-NMC_Leukemia"
    write_cnmc_synth(root, subjects=6, cells_per_subject=2, size=40, prelim=4, final=2)
    return root


@pytest.mark.parametrize(("protocol", "trains"), [("official", 10), ("cv", 30)])
def test_the_papers_config_as_a_dry_run(small_cnmc: Path, tmp_path: Path, protocol: str, trains: int) -> None:
    overlay = tmp_path / "here.yaml"
    overlay.write_text(yaml.safe_dump({"dataset": {"path": str(small_cnmc)}, "protocol": protocol}))
    dry = snakemake(
        "--directory",
        str(tmp_path),
        "--configfile",
        str(REPO / "config.yaml"),
        str(overlay),
        "-n",
        cwd=tmp_path,
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = job_counts(dry.stdout)
    assert counts["train"] == trains and counts["predict"] == trains and counts["weights"] == 2
    assert counts["crop"] == (4 if protocol == "official" else 2)  # cv predicts no final test
    assert counts["ensemble"] == trains // 10
    if protocol == "official":
        assert counts["evaluate"] == 11 and counts["tables"] == counts["figures"] == 1
        assert "gpu=" in dry.stdout and "mem_mb=16000" in dry.stdout
    else:
        assert counts["cv_summary"] == 1
    assert not (tmp_path / "results").exists()


def test_a_start_weights_file_is_an_input_of_the_training_jobs(small_cnmc: Path, tmp_path: Path) -> None:
    """train.weights naming a file: no weights rule, and the file is a train input (a change retrains)."""
    start = tmp_path / "start.weights.h5"
    start.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    overlay = tmp_path / "here.yaml"
    config = {"dataset": {"path": str(small_cnmc)}, "grid": {"backbones": ["simplecnn"], "losses": ["bce"]}}
    overlay.write_text(yaml.safe_dump(config | {"train": {"weights": str(start)}}))
    dry = snakemake("--directory", str(tmp_path), "--configfile", str(overlay), "-n", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    train = dry.stdout.split("rule train:")[1].split("\n\n")[0]
    assert str(start) in train.split("output:")[0] and "weights" not in job_counts(dry.stdout)


@pytest.mark.slow
def test_a_weights_file_that_does_not_fit_fails_its_training_job_in_one_line(
    small_cnmc: Path, tmp_path: Path
) -> None:
    """Which backbone a Keras .h5 file fits is known only once Keras builds it: in the train job."""
    import h5py
    import keras
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    other = tmp_path / "mobilenetv3small_notop.h5"
    base = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3))
    with h5py.File(other, "w") as fh:
        save_weights_to_hdf5_group(fh, base)
    config = {
        "dataset": {"path": str(small_cnmc)},
        "grid": {"backbones": ["efficientnetb0"], "losses": ["bce"]},
        "augment": {"target": {"hem": 8, "all": 8}, "shards": 1},
        "train": {"image_size": 32, "weights": str(other), "epochs": 1, "batch_size": 4},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [str(LEUKOSCOPE), "workflow", "--configfile", "c.yaml", "--directory", "w", "--cores", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    line = run.stderr.strip().splitlines()[-1]
    assert "train: mobilenetv3small_notop.h5 does not fit EfficientNetB0" in line, run.stderr[-3000:]
    assert "efficientnetb0_notop.h5" in line and str(other) in line
    assert not (tmp_path / "w" / "results" / "models" / "efficientnetb0" / "bce" / "model.keras").exists()


def test_lint_and_snakefmt_are_clean() -> None:
    lint = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lint.returncode == 0 and "Lints for" not in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    files = [str(SNAKEFILE), *map(str, sorted((REPO / "workflow" / "rules").glob("*.smk")))]
    fmt = subprocess.run(
        [str(Path(sys.executable).parent / "snakefmt"), "--check", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fmt.returncode == 0, fmt.stderr


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"train": {"epochs": 0}}, "train.epochs: 0 is less than the minimum of 1"),
        ({"dataset": {"path": "nowhere"}}, "dataset.path does not exist"),
        ({"dataset": {"path": "../cells"}}, "the dataset has only one class (all)"),
        (
            {"train": {"weights": "nowhere_notop.h5"}, "grid": {"backbones": ["efficientnetb0"]}},
            "the start weights file does not exist",
        ),
    ],
)
def test_bad_input_is_one_line_before_any_job(tmp_path: Path, config: dict, message: str) -> None:
    from leukoscope.data.synth import SubjectStyle, encode_bmp, render_cell

    folder = tmp_path / "cells" / "all"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        (folder / f"{i}.bmp").write_bytes(
            encode_bmp(render_cell(rng, "all", SubjectStyle.draw(rng), size=40))
        )
    config = {"dataset": {"path": str(tmp_path / "cells")}} | config
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [str(LEUKOSCOPE), "workflow", "--configfile", "c.yaml", "--directory", "w"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in run.stderr
    direct = snakemake("--directory", str(tmp_path / "w"), "--configfile", "c.yaml", "-n", cwd=tmp_path)
    assert direct.returncode != 0 and message in direct.stdout + direct.stderr
    assert not (tmp_path / "w" / "results").exists()
