"""The report rules' stages on the files the workflow writes (their contract), and the one script template."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "workflow" / "scripts"
# the scripts of the rules from predict to the report (the data and training rules' scripts: their owners)
THIN = ("predict", "average_seeds", "evaluate", "ensemble", "submission", "tables", "figures", "subjects",
        "gradcam", "cv_summary")  # fmt: skip
DEVICE = ("predict", "gradcam")  # TensorFlow jobs: `run(..., device=True)`


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


def test_subjects_stage(results: dict[str, Path], tmp_path: Path) -> None:
    from leukoscope.report.subjects import subjects_stage

    out = {"csv": tmp_path / "subjects.csv", "md": tmp_path / "subjects.md"}
    predictions = {"simplecnn/focal": results["member"], "simplecnn/bce": "unused"}
    subjects_stage(results["ensemble"], results["choice"], results["summary"], predictions, out["csv"],
                   out["md"], threshold=0.5)  # fmt: skip
    frame = pd.read_csv(out["csv"])
    assert sorted(frame["subject"]) == ["s0", "s1", "s2"] and frame["images"].sum() == 12
    assert "simplecnn/focal errors" in frame and "simplecnn/bce errors" not in frame
    assert out["md"].read_text().startswith("## Accuracy per subject on the preliminary test, worst first")


def test_gradcam_stage(results: dict[str, Path], tmp_path: Path) -> None:
    from leukoscope._plot import DPI
    from leukoscope.report.gradcam import gradcam_stage, panel_size

    out = tmp_path / "figures" / "gradcam_simplecnn.png"
    explained = gradcam_stage(results["ensemble"], results["choice"], results["summary"],
                              {"simplecnn/focal": results["model"]}, results["images"], results["index"],
                              {"gradcam_simplecnn": out}, threshold=0.5, per_class=3)  # fmt: skip
    assert list(explained) == ["simplecnn/focal"] and "member_predicted" in explained["simplecnn/focal"]
    width, height = panel_size(["all", "hem"], 3)  # 4 rows x 3 columns; matplotlib may drop a partial pixel
    rows, cols = cv2.imread(str(out)).shape[:2]
    assert abs(rows - height * DPI) < 1 and abs(cols - width * DPI) < 1


def test_tables_figures_and_cv_summary_of_a_chain(tmp_path: Path) -> None:
    import stage_files as S
    from leukoscope.report.cv import cv_summary_stage
    from leukoscope.report.figures import figures_stage
    from leukoscope.report.tables import tables_stage

    files = S.write_chain(tmp_path)
    models = [*S.MODELS, "ensemble"]
    scores = {split: {m: files[f"{m}/{split}"] for m in models} for split in S.SPLITS}
    pd.DataFrame({"label": ["all"] * 3 + ["hem"] * 2}).to_parquet(tmp_path / "augmented.parquet")
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"timing": {"first_step_s": 2.0, "fit_s": 10.0}}))
    out = {f"{t}_{ext}": tmp_path / "tables" / f"{t}.{ext}" for t in ("table1", "table2", "table3", "timing")
           for ext in ("csv", "md")}  # fmt: skip
    table2 = tables_stage(
        scores, {m: files[f"{m}/predictions"] for m in S.MODELS}, files["summary"], files["ensemble/choice"],
        tmp_path / "augmented.parquet", {f"{m}/seed_0": metrics for m in S.MODELS}, out,
        split="test", backbones=["simplecnn"], losses=["bce", "focal"], loss_settings={},
        select="weighted_f1", threshold=0.5, bootstrap=50, bootstrap_seed=0,
    )  # fmt: skip
    assert table2.startswith("## Table 2") and out["table2_md"].read_text().startswith(table2.rstrip())
    t2 = pd.read_csv(out["table2_csv"])
    assert len(t2) == 3 and t2["in ensemble"].fillna("").tolist() == ["", "*", ""]
    assert pd.read_csv(out["timing_csv"])["first step, % of fit"].tolist() == [20.0, 20.0]
    assert pd.read_csv(out["table1_csv"])["ours total"].iloc[-1] == 5  # the augmented set

    history = pd.DataFrame({"epoch": [0, 1], "loss": [0.7, 0.5], "val_loss": [0.8, 0.6]})
    for m in S.MODELS:
        history.to_csv(tmp_path / f"{m.replace('/', '_')}.csv", index=False)
    figure_files = {"scores": scores, "predictions": {m: files[f"{m}/predictions"] for m in models},
                    "histories": {m: tmp_path / f"{m.replace('/', '_')}.csv" for m in S.MODELS}}  # fmt: skip
    figures = {name: tmp_path / "figures" / f"{name}.png"
               for name in ("curves_simplecnn", "f1_heatmap", "confusion", "roc")}  # fmt: skip
    figures_stage(figure_files, files["summary"], figures, split="test", backbones=["simplecnn"],
                  losses=["bce", "focal"])  # fmt: skip
    assert all(cv2.imread(str(path)) is not None for path in figures.values())

    folds = {fold: scores["test"] for fold in (0, 1)}
    names = {"out_summary": "summary.json", "csv": "cv.csv", "md": "cv.md", "figure": "cv_f1.png"}
    cv = {key: tmp_path / "cv" / name for key, name in names.items()}
    summary = cv_summary_stage(folds, {0: files["ensemble/choice"], 1: files["ensemble/choice"]}, **cv)
    assert summary == json.loads(cv["out_summary"].read_text()) and summary["folds"] == 2
    focal = json.loads(files["simplecnn/focal/test"].read_text())["weighted_f1"]
    assert summary["models"]["simplecnn/focal"]["weighted_f1"]["mean"] == pytest.approx(focal)
    assert cv["md"].read_text().startswith("## 2-fold cross-validation")


@pytest.mark.parametrize("name", THIN)
def test_the_script_is_the_one_template(name: str) -> None:
    """A one-line docstring naming the rule, `run` imported, a `main` that imports one package function
    lazily and calls it once, then `run(snakemake, main)`: what the rule does lives in the package."""
    tree = ast.parse((SCRIPTS / f"{name}.py").read_text(encoding="utf-8"))
    _, header, main, last = tree.body
    assert ast.get_docstring(tree).startswith(f"Rule `{name}`: ") and "\n" not in ast.get_docstring(tree)
    assert ast.unparse(header) == "from leukoscope.workflow.script import run"
    assert isinstance(main, ast.FunctionDef) and main.name == "main"
    imports = [node for node in main.body if isinstance(node, ast.ImportFrom)]
    calls = [node for node in main.body if isinstance(node, ast.Expr)]
    assert len(imports) == 1 and imports[0].module.startswith("leukoscope.") and len(imports[0].names) == 1
    assert (
        len(calls) == 1
        and calls[0] is main.body[-1]
        and ast.unparse(calls[0].value.func) == imports[0].names[0].name
    )
    call = "run(snakemake, main, device=True)" if name in DEVICE else "run(snakemake, main)"
    assert ast.unparse(last) == call
