"""Every reader's layout through the workflow (samples -> crop -> augment, for real), each axis at least
once: class folders with any names (spaces, N classes) and ALL-IDB2 under `cv`, a CSV manifest with a test
split under `heldout`, two and N classes; C-NMC runs in test_workflow.py (the paper protocol) and below
under `cv` with its own folds. The classes, parts, folds and the balanced augmented set come from the data.
The two own-data cases whose classes are not all / hem run the whole chain to its last products, started
from a directory that is neither the repository nor the run's, with the dataset path relative to the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
LAYOUTS = REPO / ".test" / "config" / "layouts.yaml"  # simplecnn x bce, 24 px: the data stages, small


def _cell(rng: np.random.Generator, label: str, size: int = 40) -> np.ndarray:
    from leukoscope.data.synth import SubjectStyle, render_cell

    return render_cell(
        rng, "all" if label in ("all", "blast", "1") else "hem", SubjectStyle.draw(rng), size=size
    )


def folders(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for label, n in (("Kelas 1", 9), ("Kelas 2", 6), ("Kelas 3", 6)):  # spaces, three classes
        (root / label).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(
                str(root / label / f"cell {i}.png"), _cell(rng, "all" if label == "Kelas 1" else "hem")
            )
    return root


def allidb2(root: Path) -> Path:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    for i in range(12):
        label = str(i % 2)
        cv2.imwrite(str(root / f"Im{i + 1:03d}_{label}.tif"), _cell(rng, label))
    return root


def manifest(root: Path) -> Path:
    rng = np.random.default_rng(2)
    (root / "img").mkdir(parents=True)
    lines = ["path,label,subject,split"]
    for i in range(24):
        label = "blast" if i % 2 else "normal"
        cv2.imwrite(str(root / "img" / f"{i}.png"), _cell(rng, label))
        split = "test" if i >= 18 else "train"
        lines.append(f"img/{i}.png,{label},p{i // 2},{split}")
    (root / "cells.csv").write_text("\n".join(lines) + "\n")
    return root / "cells.csv"


def cnmc(root: Path) -> Path:
    from leukoscope.data.synth import write_cnmc_synth

    write_cnmc_synth(root / "C-NMC_Leukemia", subjects=9, cells_per_subject=3, size=40, prelim=4, final=2)
    return root / "C-NMC_Leukemia"


WHOLE_CHAIN = {  # own data, classes not all / hem: what the default target makes, per protocol
    "class folders, 3 classes, cv": ["results/cv/summary.json", "results/tables/cv_summary.md"],
    "CSV manifest with a test split, heldout": [
        "results/tables/table2.md", "results/tables/subjects.md", "results/figures/roc.png",
        "results/figures/gradcam_simplecnn.png", "results/ensemble/ensemble.json",
    ],
}  # fmt: skip
CASES = {
    "class folders, 3 classes, cv": (folders, "cv", ["Kelas 1", "Kelas 2", "Kelas 3"]),
    "ALL-IDB2, cv": (allidb2, "cv", ["all", "hem"]),
    "CSV manifest with a test split, heldout": (manifest, "heldout", ["blast", "normal"]),
    "C-NMC, cv on its own folds": (cnmc, "cv", ["all", "hem"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_each_layout_runs_through_the_data_stages(tmp_path: Path, case: str) -> None:
    make, protocol, classes = CASES[case]
    data = make(tmp_path / "data")
    whole = case in WHOLE_CHAIN
    config = {"dataset": {"path": os.path.relpath(data, tmp_path / "w")}, "protocol": protocol}
    if whole:  # two short epochs: the chain, not the scores
        config["train"] = {"epochs": 2, "max_steps_per_epoch": 4, "patience": None}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "elsewhere").mkdir()
    scope = "cv/fold_0/" if protocol == "cv" else ""
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path / "w"),
         "--configfile", str(LAYOUTS), str(tmp_path / "c.yaml"), "--cores", "2",
         *([] if whole else [f"results/{scope}augment/index.parquet"])],
        capture_output=True, text=True, env=ENV, timeout=600, cwd=tmp_path / "elsewhere",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = tmp_path / "w" / "results"
    for product in WHOLE_CHAIN.get(case, []):
        assert (tmp_path / "w" / product).stat().st_size > 0, product
    if whole:
        card = json.loads((results / f"{scope}models/simplecnn/bce/seed_42/model_card.json").read_text())
        assert card["class_names"] == classes
    summary = json.loads((results / "samples" / "summary.json").read_text())
    assert summary["class_names"] == classes and summary["protocol"] == protocol
    assert summary["preprocess"]["crop"] == "cell"  # synthetic cells are drawn on black
    augmented = pd.read_parquet(results / f"{scope}augment" / "index.parquet")
    counts = augmented["label"].value_counts()
    assert sorted(counts.index) == classes and counts.nunique() == 1  # balanced: auto on own data
    if protocol == "cv":
        fold0 = summary["per_fold"]["fold_0"]
        assert fold0["test"]["images"] and fold0["val"]["images"] and fold0["train"]["images"]
        assert len(augmented["source"].unique()) == fold0["train"]["images"]  # only this fold's training
    else:
        assert summary["parts"]["test"]["images"] == 6 and summary["parts"]["val"]["images"] > 0
