"""The `subjects` and `gradcam` workflow scripts run on the files the workflow writes (their contract)."""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "workflow" / "scripts"


class Named(dict):
    """Snakemake's input/output/params: items by name, also as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _run(script: str, monkeypatch: pytest.MonkeyPatch, **parts: dict[str, Any]) -> None:
    for name in ("CUDA_VISIBLE_DEVICES", "LEUKOSCOPE_THREADS", "OMP_NUM_THREADS", "TF_CPP_MIN_LOG_LEVEL"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test, whatever it sets
    smk = Named({k: Named(v) for k, v in parts.items()}, log=[], rule=script, threads=1)
    smk = Named(smk)
    runpy.run_path(str(SCRIPTS / f"{script}.py"), init_globals={"snakemake": smk}, run_name="__main__")


def _predictions(p_all: np.ndarray, labels: list[str]) -> pd.DataFrame:
    n = len(labels)
    table = pd.DataFrame(
        {
            "split": "test",
            "path": [f"img{i}.bmp" for i in range(n)],
            "label": labels,
            "subject": [f"s{i % 3}" for i in range(n)],
            "subject_known": True,
            "ok": True,
            "p_all": p_all,
        }
    )
    table["p_hem"] = 1.0 - table["p_all"]
    return table


@pytest.fixture
def results(tmp_path: Path) -> dict[str, Path]:
    from infer.helpers import cell_image, make_model_dir
    from leukoscope.models.card import ModelCard
    from leukoscope.preprocess.pipeline import preprocess_image

    model = make_model_dir(tmp_path / "models" / "simplecnn" / "focal" / "seed_0", size=32)
    labels = ["all", "hem"] * 6
    rng = np.random.default_rng(0)
    member = _predictions(rng.random(12), labels)
    ensemble = member.assign(p_all=(member["p_all"] + 0.5) / 2)
    ensemble["p_hem"] = 1.0 - ensemble["p_all"]
    pre = ModelCard.load(model).preprocess
    crops = np.stack([preprocess_image(cell_image(i), pre) for i in range(12)])
    files = {
        "ensemble": tmp_path / "ensemble" / "predictions.parquet",
        "member": tmp_path / "models" / "simplecnn" / "focal" / "predictions.parquet",
        "choice": tmp_path / "ensemble" / "choice.json",
        "summary": tmp_path / "summary.json",
        "index": tmp_path / "crop" / "test.parquet",
        "images": tmp_path / "crop" / "test.npy",
        "model": model,
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    ensemble.to_parquet(files["ensemble"])
    member.to_parquet(files["member"])
    choice = {"select": "weighted_f1", "split": "val", "chosen": {"simplecnn": "focal"}}
    files["choice"].write_text(json.dumps(choice | {"members": ["simplecnn/focal"]}))
    files["summary"].write_text(
        json.dumps({"positive_class": "all", "class_names": ["all", "hem"], "protocol": "heldout"})
    )
    np.save(files["images"], crops[::-1])  # stored in another order than the table: joined by path
    index = pd.DataFrame({"path": member["path"], "row": np.arange(12)[::-1], "ok": True, "label": labels})
    index.to_parquet(files["index"])
    return files


def test_subjects_script(results: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = {"csv": tmp_path / "subjects.csv", "md": tmp_path / "subjects.md"}
    _run(
        "subjects",
        monkeypatch,
        input={k: str(results[k]) for k in ("ensemble", "choice", "summary")},
        params={
            "predictions": {"simplecnn/focal": str(results["member"]), "simplecnn/bce": "unused"},
            "threshold": 0.5,
        },
        output={k: str(v) for k, v in out.items()},
    )
    frame = pd.read_csv(out["csv"])
    assert sorted(frame["subject"]) == ["s0", "s1", "s2"] and frame["images"].sum() == 12
    assert "simplecnn/focal errors" in frame and "simplecnn/bce errors" not in frame
    assert out["md"].read_text().startswith("## Accuracy per subject on the preliminary test, worst first")


def test_gradcam_script(results: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "figures" / "gradcam_simplecnn.png"
    _run(
        "gradcam",
        monkeypatch,
        input={k: str(results[k]) for k in ("ensemble", "choice", "summary")},
        params={
            "model_dirs": {"simplecnn/focal": str(results["model"])},
            "crops": {"test": {"index": str(results["index"]), "images": str(results["images"])}},
            "threshold": 0.5,
            "per_class": 3,
        },
        output={"gradcam_simplecnn": str(out)},
    )
    from leukoscope._plot import DPI
    from leukoscope.report.gradcam import panel_size

    width, height = panel_size(["all", "hem"], 3)  # 4 rows x 3 columns; matplotlib may drop a partial pixel
    rows, cols = cv2.imread(str(out)).shape[:2]
    assert abs(rows - height * DPI) < 1 and abs(cols - width * DPI) < 1
