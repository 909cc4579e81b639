"""The Snakemake workflow for real: `leukoscope demo` at a tiny scale (simplecnn, two losses, the paper
protocol), then what a finished run must satisfy (the paper's splits, intervals, nothing left to do, one
loss's change reruns only its chain, the report in a browser), the paper's config as a dry run with and
without data, lint and snakefmt, and bad input refused in one line."""

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
    """`leukoscope demo` (the installed executable) with simplecnn, two losses, two seeds; two fake GPUs."""
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
            "--seeds",
            "42,7",
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
    timing = pd.read_csv(results / "tables" / "timing.csv")  # where each training job's time went
    assert sorted(set(timing["loss"])) == ["bce", "focal_hinge"] and (timing["first step (s)"] > 0).all()
    assert sorted(timing["seed"].astype(int)) == [7, 7, 42, 42]  # one row per training job
    assert (timing["steady images/s"] > 0).all() and "Training time per job" in (
        results / "tables" / "timing.md"
    ).read_text()
    for figure in ("curves_simplecnn", "f1_heatmap", "confusion_matrices", "roc"):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 1000
    summary = json.loads((results / "samples" / "summary.json").read_text())
    predictions = pd.read_parquet(results / "models" / "simplecnn" / "bce" / "predictions.parquet")
    assert predictions.groupby("split").size().to_dict() == {
        s: summary["parts"][s]["images"] for s in ("val", "final")
    }
    seeds = [
        pd.read_parquet(results / "models" / "simplecnn" / "bce" / f"seed_{s}" / "predictions.parquet")
        for s in (42, 7)
    ]  # the backbone x loss's probabilities: the mean of its seeds'
    mean = (seeds[0]["p_all"].fillna(0) + seeds[1]["p_all"].fillna(0)) / 2
    assert np.allclose(mean, predictions["p_all"].fillna(0))
    val = json.loads((results / "models" / "simplecnn" / "bce" / "eval" / "val.json").read_text())
    assert val["n"] == summary["parts"]["val"]["images"] and 0 <= val["weighted_f1"] <= 1
    assert val["ci"]["weighted_f1"]["low"] <= val["weighted_f1"] <= val["ci"]["weighted_f1"]["high"]
    assert val["bootstrap"]["resamples"] == 1000 and set(val["per_seed"]) == {"42", "7"}
    ensemble = json.loads((results / "ensemble" / "eval" / "val.json").read_text())
    assert ensemble["weighted_f1"] >= 0.7, ensemble["weighted_f1"]  # a floor: the scratch recipe learns
    from leukoscope.infer.spec import read_spec

    spec, _ = read_spec(results / "ensemble" / "ensemble.json")
    choice = json.loads((results / "ensemble" / "choice.json").read_text())
    chosen = choice["chosen"]["simplecnn"]  # on the seed-mean validation score; every seed averaged
    assert sorted(Path(m).name for m in spec.members) == ["seed_42", "seed_7"]
    assert {Path(m).parent.name for m in spec.members} == {chosen}
    t2 = pd.read_csv(results / "tables" / "table2.csv")
    assert t2["seeds mean"].notna().sum() == 2 and t2["seeds std"].notna().sum() == 2
    assert all((Path(m) / "model.keras").is_file() for m in spec.members)
    with zipfile.ZipFile(results / "ensemble" / "isbi_submission.zip") as zf:
        lines = zf.read("isbi_valid.predict").decode().split()
    assert len(lines) == summary["parts"]["final"]["images"] and set(lines) <= {"0", "1"}
    augmented = pd.read_parquet(results / "augment" / "index.parquet")
    assert set(augmented["label"]) == {"all", "hem"}
    assert not (results / ".state" / "train").exists() or not any(
        (results / ".state" / "train").rglob("*.keras")
    )
    resolved = yaml.safe_load((results / "config.yaml").read_text())
    assert resolved["protocol"] == "paper" and resolved["grid"]["seeds"] == [42, 7]
    subjects = pd.read_csv(results / "tables" / "subjects.csv")
    assert len(subjects) > 0 and (results / "figures" / "gradcam_simplecnn.png").stat().st_size > 1000


@pytest.mark.slow
def test_the_paper_protocol_as_the_paper_ran_it(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    """Training = the three folds' union, validation = the preliminary test, the final test predicted
    and submitted; Table 1 with the paper's counts, Tables 2-3 with intervals."""
    out, _ = demo
    results = out / "results"
    sheet = pd.read_parquet(results / "samples" / "samples.parquet")
    train, val = sheet[sheet["part"] == "train"], sheet[sheet["part"] == "val"]
    assert set(train["dataset_split"]) == {"fold_0", "fold_1", "fold_2"} and set(val["dataset_split"]) == {
        "prelim"
    }
    card = json.loads((results / "models/simplecnn/bce/seed_42/model_card.json").read_text())
    assert card["data_summary"]["val"]["images"] == len(val)  # early stopping watched the prelim set
    t1 = pd.read_csv(results / "tables" / "table1.csv")
    assert t1["paper total"].dropna().astype(int).tolist() == [10661, 1867, 2586, 20050]
    assert t1["paper all"].dropna().astype(int).tolist() == [7272, 1219, 1761, 9272]
    t2 = pd.read_csv(results / "tables" / "table2.csv")
    assert t2["weighted F1 95% CI low"].notna().all() and t2["ALL F1 95% CI high"].notna().all()
    assert t2["vs BCE (paired)"].notna().sum() == 1  # focal hinge against BCE
    t3 = pd.read_csv(results / "tables" / "table3.csv")
    assert t3["paper"].tolist()[:4] == [84.25, 82.73, 95.89, 88.82] and t3["95% CI low"].notna().all()
    text = (results / "tables" / "table3.md").read_text()
    assert "optimistic" in text and "heldout" in text


@pytest.mark.slow
def test_training_jobs_got_their_own_gpus(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = demo
    seen = []
    for loss in ("bce", "focal_hinge"):
        for seed in (42, 7):
            text = (out / "results" / "logs" / "train" / "simplecnn" / loss / f"seed_{seed}.log").read_text()
            seen.append(re.search(r"\(GPU (\d)\)", text).group(1))
    assert sorted(set(seen)) == ["0", "1"]  # admitted two at a time (gpu=2), each locked its own id


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
    assert counts["train"] == 2 and counts["predict"] == 2 and counts["evaluate"] == 2, counts
    assert "models/simplecnn/focal_hinge/seed_42/model.keras" in dry.stdout
    assert (
        "models/simplecnn/bce/seed_42/model.keras" not in dry.stdout.split("rule train")[-1].split("\n\n")[0]
    )
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
                path.write_bytes(b"\x89PNG\r\n\x1a\n broken %d" % i)  # listed as hem, unreadable
            else:
                cv2.imwrite(str(path), render_cell(rng, label, SubjectStyle.draw(rng), size=40))
    config = {
        "dataset": {"path": str(tmp_path / "cells")},
        "protocol": "cv",
        "grid": {"backbones": ["simplecnn"], "losses": ["bce"]},
        "preprocess": {"image_size": 16},
        "model": {"weights": "none"},
        "train": {"epochs": 1},
        "augment": {"shards": 1},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))

    def workflow() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(LEUKOSCOPE), "workflow", "--configfile", str(tmp_path / "c.yaml"), "--directory",
             str(tmp_path / "w"), "--cores", "2"],
            capture_output=True, text=True, env=ENV, timeout=300,
        )  # fmt: skip

    run = workflow()  # unreadable images stop the first rule that decodes them, listed
    assert run.returncode == 2
    line = run.stderr.strip().splitlines()[-1]
    assert "samples: 6 unreadable image(s): 0.png, 1.png" in line and "skip_unreadable" in line, line
    assert not (tmp_path / "w" / "results" / "samples").exists() or not any(
        (tmp_path / "w" / "results" / "samples").iterdir()
    )
    config["dataset"]["skip_unreadable"] = True  # left out: then hem has no training image at all
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = workflow()
    assert run.returncode == 2
    line = run.stderr.strip().splitlines()[-1]
    assert "augment: class 'hem' has no readable training images" in line, run.stderr[-2000:]
    augment = tmp_path / "w" / "results" / "cv" / "fold_0" / "augment"
    assert not (augment / "index.parquet").exists() and not list(augment.glob("shard_*.npy"))
    dry = snakemake(
        "--directory", str(tmp_path / "w"), "--configfile", str(tmp_path / "c.yaml"), "-n", cwd=tmp_path
    )
    assert job_counts(dry.stdout).get("augment") == 3 and "samples" not in job_counts(dry.stdout)


@pytest.fixture(scope="module")
def small_cnmc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from leukoscope.data.synth import write_cnmc_synth

    root = tmp_path_factory.mktemp("cnmc") / "C-NMC_Leukemia"
    write_cnmc_synth(root, subjects=9, cells_per_subject=2, size=40, prelim=4, final=2)
    return root


@pytest.mark.parametrize(
    ("protocol", "trains", "crops", "evaluates"),
    [("paper", 10, 3, 11), ("heldout", 10, 4, 11), ("cv", 30, 1, 33)],
)
def test_the_papers_config_as_a_dry_run(
    small_cnmc: Path, tmp_path: Path, protocol: str, trains: int, crops: int, evaluates: int
) -> None:
    overlay = tmp_path / "here.yaml"
    overlay.write_text(yaml.safe_dump({"dataset": {"path": str(small_cnmc)}, "protocol": protocol}))
    dry = snakemake("--directory", str(tmp_path), "--configfile", str(overlay), "-n", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = job_counts(dry.stdout)
    assert counts["train"] == trains and counts["predict"] == trains and counts["weights"] == 2
    assert counts["crop"] == crops and counts["evaluate"] == evaluates
    assert counts["ensemble"] == trains // 10 and counts["resolved_config"] == 1
    if protocol != "cv":
        assert counts["tables"] == counts["figures"] == counts["submission"] == 1
        assert "gpu=" in dry.stdout and "mem_mb=16000" in dry.stdout
    else:
        assert counts["cv_summary"] == 1 and "submission" not in counts
    assert not (tmp_path / "results").exists()


def test_a_dry_run_before_the_data_shows_the_plan_then_where_the_data_go(tmp_path: Path) -> None:
    dry = snakemake("--directory", str(tmp_path), "-n", cwd=tmp_path)  # config.yaml alone, no dataset
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = job_counts(dry.stdout)
    assert counts["train"] == 10 and counts["tables"] == 1 and counts["download"] == 1
    last = (dry.stdout + dry.stderr).strip().splitlines()[-1]
    assert last.startswith("note: no dataset at") and "resources/C-NMC_Leukemia" in last and "kaggle" in last
    real = snakemake("--directory", str(tmp_path), "--cores", "1", cwd=tmp_path)
    assert real.returncode != 0 and "dataset.path does not exist" in real.stdout + real.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_config_yaml_is_the_base_from_any_directory(small_cnmc: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"dataset": {"path": str(small_cnmc)}, "train": {"epochs": 3}}))
    resolved = []
    for cwd, workdir in ((REPO, tmp_path / "a"), (tmp_path, tmp_path / "b")):
        run = snakemake(
            "--directory", str(workdir), "--configfile", str(mine), "--cores", "1", "results/config.yaml",
            cwd=cwd,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        resolved.append(yaml.safe_load((workdir / "results" / "config.yaml").read_text()))
    assert resolved[0] == resolved[1]
    assert resolved[0]["train"]["epochs"] == 3 and resolved[0]["protocol"] == "paper"  # the base's
    assert resolved[0]["losses"]["focal_hinge"] == {"gamma": 2.0, "on": "sigmoid"}


def test_a_start_weights_file_is_an_input_of_the_training_jobs(small_cnmc: Path, tmp_path: Path) -> None:
    """model.weights naming a file: no weights rule, and the file is a train input (a change retrains)."""
    start = tmp_path / "start.weights.h5"
    start.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    overlay = tmp_path / "here.yaml"
    config = {"dataset": {"path": str(small_cnmc)}, "grid": {"backbones": ["simplecnn"], "losses": ["bce"]}}
    overlay.write_text(yaml.safe_dump(config | {"model": {"weights": str(start)}}))
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
        "preprocess": {"image_size": 32},
        "model": {"weights": str(other)},
        "train": {"epochs": 1, "batch_size": 4},
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
        ({"dataset": {"path": "../cells"}, "protocol": "cv"}, "the dataset has only one class (all)"),
        ({"dataset": {"path": "../cells"}}, "protocol paper validates on the data's labelled"),
        (
            {"model": {"weights": "nowhere_notop.h5"}, "grid": {"backbones": ["efficientnetb0"]}},
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
    direct = snakemake(
        "--directory", str(tmp_path / "w"), "--configfile", "c.yaml", "--cores", "1", cwd=tmp_path
    )
    assert direct.returncode != 0 and message in direct.stdout + direct.stderr
    assert not (tmp_path / "w" / "results").exists()
