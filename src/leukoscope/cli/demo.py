"""`leukoscope demo` (what `make demo` runs): the whole job on CPU, offline, in a few minutes.

Synthesises a C-NMC-like dataset (subjects in three folds plus a labelled "prelim" test of NEW subjects),
fine-tunes the bundled ImageNet EfficientNet-Lite0, evaluates on the new subjects only, predicts a few
images through the serving predictor and prints where everything is. Re-runs reuse the synthetic data.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import typer

from leukoscope.cli._common import console
from leukoscope.errors import DataError

DATA_STAMP = ".synth.json"  # hidden: `data check` lists it as a non-image file otherwise


def demo_config(
    data: Path, out: Path, cache: Path, epochs: int, image_size: int, lr: float, seed: int
) -> Any:
    """configs/cpu-fast.yaml's recipe, sized for the demo: bundled Lite0, bf16 where fast, val = fold_2."""
    from leukoscope.config import RunConfig

    return RunConfig().override(
        {
            "data.data": str(data),
            "data.val_fold": 2,
            "data.cache_dir": str(cache),
            "model.backbone": "tf_efficientnet_lite0",
            "model.weights": "bundled",
            "preprocess.image_size": image_size,
            "optim.lr": lr,
            "optim.scheduler": "cosine",
            "train.epochs": epochs,
            "train.batch_size": 32,
            "train.balance": "oversample",
            "train.seed": seed,
            "out": str(out),
        }
    )


def synth_data(folder: Path, subjects: int, cells: int, test_cells: int, size: int, seed: int) -> dict:
    """Write the synthetic set, or reuse it when it was made with the same settings and generator."""
    from leukoscope.data import synth

    wanted = {
        "subjects": subjects,
        "cells_per_subject": cells,
        "prelim": test_cells,
        "size": size,
        "seed": seed,
    }
    settings = wanted | {"generator": _generator_id(synth.__file__)}
    stamp = folder / DATA_STAMP
    if stamp.is_file() and json.loads(stamp.read_text()).get("settings") == settings:
        return json.loads(stamp.read_text())
    if stamp.is_file():
        shutil.rmtree(folder)  # made by an earlier demo with other settings: ours to replace
    elif folder.exists() and any(folder.iterdir()):
        raise DataError(
            "folder exists and was not made by the demo", path=folder, hint="choose another --out"
        )
    summary = synth.write_cnmc_synth(folder, **wanted)
    doc = {"settings": settings, "summary": summary}
    stamp.write_text(json.dumps(doc, indent=1))
    return doc


def _generator_id(source: str) -> str:
    """A changed generator draws different cells: an old set must not pass for the new one."""
    import hashlib

    return hashlib.sha1(Path(source).read_bytes()).hexdigest()[:12]


def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Folder for data, run and reports."),
    subjects: int = typer.Option(20, "--subjects", min=3, help="Training subjects (2:1 ALL:HEM, 3 folds)."),
    cells_per_subject: int = typer.Option(16, "--cells-per-subject", min=1),
    test_cells: int = typer.Option(96, "--test-cells", min=2, help="Held-out test cells, from new subjects."),
    epochs: int = typer.Option(4, "--epochs", min=1),
    image_size: int = typer.Option(128, "--image-size", min=32),
    synth_size: int = typer.Option(160, "--synth-size", min=32, help="Side of the synthetic source images."),
    lr: float = typer.Option(3e-4, "--lr", help="Adam learning rate (cosine decay)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Synthesise data, fine-tune EfficientNet-Lite0 on CPU, evaluate on held-out subjects, predict."""
    from leukoscope.evaluate.run import evaluate_model
    from leukoscope.train.fit import fit

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]LeukoScope demo")
    console.print(
        f"1/4 synthetic C-NMC-like data: {subjects} subjects x {cells_per_subject} cells + {test_cells} test"
    )
    data = out / "data"
    synth_data(data, subjects, cells_per_subject, test_cells, synth_size, seed)
    console.print(
        f"2/4 fine-tuning tf_efficientnet_lite0 (bundled ImageNet weights), {epochs} epochs, {image_size} px"
    )
    cfg = demo_config(data, out / "run", out / "cache", epochs, image_size, lr, seed)
    run_dir = fit(cfg, overwrite=True)
    console.print("3/4 evaluating on the prelim split: subjects never seen in training")
    metrics = evaluate_model(run_dir, str(data), "prelim", cache_dir=str(out / "cache"))
    console.print("4/4 predicting a few images with the saved model")
    predictions = predict_examples(run_dir, data)
    summary = write_summary(out, run_dir, metrics, predictions, time.perf_counter() - start)
    print_summary(summary, predictions)


def predict_examples(run_dir: Path, data: Path, count: int = 4) -> list[dict[str, Any]]:
    """Through the same predictor as `leukoscope predict` / `serve`, from the original image files."""
    from leukoscope.infer.predict import predict_paths
    from leukoscope.infer.predictor import load_predictor

    folder = data / "validation_data" / "C-NMC_test_prelim_phase_data"
    paths = sorted(folder.glob("*.bmp"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)[:count]
    truth = _prelim_truth(data)
    predictor = load_predictor(run_dir)
    rows = [p.row(predictor.card.class_names) for p in predict_paths(predictor, paths, workers=0)]
    for row in rows:
        row["true"] = truth.get(Path(row["path"]).name, "")
    return rows


def _prelim_truth(data: Path) -> dict[str, str]:
    import csv

    labels = data / "validation_data" / "C-NMC_test_prelim_phase_data_labels.csv"
    with open(labels, newline="", encoding="utf-8") as fh:
        return {r["new_names"]: ("all" if r["labels"] == "1" else "hem") for r in csv.DictReader(fh)}


def write_summary(
    out: Path, run_dir: Path, metrics: dict[str, Any], predictions: list[dict[str, Any]], seconds: float
) -> dict[str, Any]:
    from leukoscope._io import write_json

    val = json.loads((run_dir / "metrics.json").read_text())
    summary = {
        "weighted_f1": metrics["weighted_f1"],
        "accuracy": metrics["accuracy"],
        "roc_auc": metrics["roc_auc"],
        "n_test": metrics["n"],
        "test_subjects": metrics.get("n_subjects"),
        "val_weighted_f1": val["weighted_f1"],
        "wall_s": round(seconds, 1),
        "run_dir": str(run_dir),
        "eval_dir": metrics["out"],
        "files": {
            "model": str(run_dir / "model.safetensors"),
            "model_card": str(run_dir / "model_card.json"),
            "curves": str(run_dir / "curves.png"),
            "report": str(Path(metrics["out"]) / "report.html"),
            "metrics": str(Path(metrics["out"]) / "metrics.json"),
            "confusion_matrix": str(Path(metrics["out"]) / "confusion_matrix.png"),
            "roc": str(Path(metrics["out"]) / "roc.png"),
            "reliability": str(Path(metrics["out"]) / "reliability.png"),
            "predictions": str(Path(metrics["out"]) / "predictions.csv"),
        },
    }
    write_json(out / "summary.json", summary)
    return summary


def print_summary(summary: dict[str, Any], predictions: list[dict[str, Any]]) -> None:
    from rich.table import Table

    files = Table(title="outputs", show_header=False)
    for name, path in summary["files"].items():
        files.add_row(name, path)
    console.print(files)
    preds = Table(title="example predictions (held-out subjects)")
    for column in ("image", "true", "predicted", "P(all)"):
        preds.add_column(column)
    for row in predictions:
        p_all = row.get("p_all")
        preds.add_row(
            Path(row["path"]).name,
            row["true"],
            str(row["predicted"]),
            "" if p_all is None else f"{p_all:.3f}",
        )
    console.print(preds)
    console.print(
        f"[bold]weighted F1 on held-out subjects: {summary['weighted_f1']:.4f}[/] "
        f"(accuracy {summary['accuracy']:.4f}, n={summary['n_test']}, {summary['test_subjects']} subjects; "
        f"validation {summary['val_weighted_f1']:.4f}); demo took {summary['wall_s']:.0f} s"
    )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
