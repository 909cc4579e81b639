"""The Table 2 grid at smoke scale (reduced via options), its table beside the paper, and the gamma grid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leukoscope.cli.main import app
from leukoscope.experiments import paper
from leukoscope.experiments.table2 import (
    SCALE_BACKBONES,
    best_per_backbone,
    gamma_cells,
    markdown_table,
    table2_cells,
)

from .conftest import read_csv

SMALL = ["--image-size", "48", "--max-steps-per-epoch", "2", "--limit-per-class", "12"]


def test_cells_and_paper_numbers() -> None:
    cells = table2_cells(SCALE_BACKBONES["full"])
    assert len(cells) == 10 and {c.loss for c in cells} == set(paper.LOSSES)
    assert len({c.key for c in cells}) == 10
    g = gamma_cells(["b"], [1, 1.5, 4])
    assert [c.params["gamma"] for c in g] == [1.0, 1.5, 4.0] and len({c.key for c in g}) == 3
    assert paper.ENSEMBLE.f1 == 91.94
    assert paper.fmt(paper.published("bce", "densenet201").f1) == "n/a"  # unverified cells stay blank


def test_ensemble_members_are_chosen_on_validation_only() -> None:
    results = [
        {"backbone": "a", "name": "bce", "val_weighted_f1": 0.6, "f1": 0.99},
        {"backbone": "a", "name": "focal", "val_weighted_f1": 0.8, "f1": 0.10},
        {"backbone": "b", "name": "hinge", "val_weighted_f1": 0.7, "f1": 0.50},
    ]
    assert [r["name"] for r in best_per_backbone(results)] == ["focal", "hinge"]


def test_markdown_shape() -> None:
    row = {"loss": "BCE", "backbone": "X", "precision": 1.0, "recall": 2.0, "f1": 3.0}
    row |= {"paper_precision": "n/a", "paper_recall": "n/a", "paper_f1": "91.94"}
    md = markdown_table({"split": "val", "tta": "none", "rows": [row], "kind": "table2"})
    assert "| BCE | X | 1.00 | 2.00 | 3.00 | n/a | n/a | 91.94 |" in md
    assert "VALIDATION" in md and "challenge winner" in md and "94.8-95.3" in md


@pytest.mark.slow
def test_table2_smoke_grid_and_resume(cnmc: Path, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t2"
    args = [
        "experiment",
        "table2",
        "--data",
        str(cnmc),
        "--scale",
        "smoke",
        "--out",
        str(out),
        "--losses",
        "bce",
    ]
    args += [*SMALL, "--cache-dir", str(cache_dir), "--json"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["split"] == "test"  # C-NMC's labelled preliminary test set
    assert [c["backbone"] for c in summary["cells"]] == list(SCALE_BACKBONES["smoke"])
    table = read_csv(out / "table.csv")
    assert len(table) == 3 and table["loss"].iloc[-1].startswith("Ensemble")
    assert table["paper_f1"].astype(str).iloc[-1] == "91.94"
    md = (out / "table.md").read_text()
    assert "tf_efficientnet_lite0 (for DenseNet201)" in md and "mobilenetv2_100 (for EfficientNetB2)" in md
    for c in summary["cells"]:
        assert 0 <= c["f1"] <= 1 and c["n"] == 8
        assert json.loads((Path(c["run_dir"]) / "model_card.json").read_text())["backbone"] == c["backbone"]
    spec = Path(summary["ensemble"]["spec"])
    assert spec.is_file() and len(json.loads(spec.read_text())["members"]) == 2
    stamps = [(Path(c["run_dir"]) / "cell.json").stat().st_mtime_ns for c in summary["cells"]]
    again = CliRunner().invoke(app, args, catch_exceptions=False)  # every cell is finished: nothing retrains
    assert again.exit_code == 0
    assert [(Path(c["run_dir"]) / "cell.json").stat().st_mtime_ns for c in summary["cells"]] == stamps


@pytest.mark.slow
def test_gamma_grid_passes_gamma_to_the_loss(cnmc: Path, cache_dir: Path, tmp_path: Path) -> None:
    import yaml

    out = tmp_path / "gamma"
    args = ["experiment", "gamma", "--data", str(cnmc), "--out", str(out), "--gammas", "1.5"]
    args += ["--backbones", "tf_efficientnet_lite0", *SMALL, "--cache-dir", str(cache_dir)]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "gamma=1.5" in result.output
    cfg = yaml.safe_load((out / "cells" / "tf_efficientnet_lite0__gamma1.5" / "config.yaml").read_text())
    assert cfg["loss"] == {"name": "focal_hinge", "params": {"gamma": 1.5}}


def test_full_scale_is_the_paper_recipe(tmp_path: Path) -> None:
    from leukoscope.experiments._runs import layered_config
    from leukoscope.experiments.table2 import SCALE_PRESETS

    cfg = layered_config(SCALE_PRESETS["full"], None, {"data.data": "x"})
    assert (cfg.model.weights, cfg.train.batch_size, cfg.optim.name) == ("hub", 32, "adam")
    assert cfg.optim.lr == 1e-5 and cfg.optim.betas == (0.7, 0.999)
    assert sum(cfg.train.oversample_to.values()) == 20050
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("train:\n  epochs: 7\n")
    layered = layered_config(SCALE_PRESETS["full"], yaml_file, {"train.batch_size": 16})
    assert (layered.train.epochs, layered.train.batch_size, layered.optim.lr) == (
        7,
        16,
        1e-5,
    )  # file, flag, preset
