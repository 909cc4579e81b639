"""`leukoscope predict | explain | export`: use a trained model on new images, explain it, ship it."""

from __future__ import annotations

from pathlib import Path

import typer

from leukoscope.cli._common import console

MODEL_HELP = (
    "A model folder (model_card.json + model.keras, e.g. results/models/<backbone>/<loss>/ or a run "
    "directory), its model.keras, an ensemble spec (ensemble.json) or an export (.onnx, .tflite, SavedModel)."
)
BACKEND_HELP = (
    "auto | keras | tflite | onnx. auto: an up-to-date model.tflite / model.onnx beside model.keras when "
    "its runtime is installed (2-4x faster than Keras on CPU), else Keras; naming tflite/onnx converts in "
    "memory if none is there."
)
CACHED_BACKEND_HELP = (
    "auto | keras | tflite | onnx. auto: an up-to-date model.tflite / model.onnx beside model.keras when "
    "its runtime is installed (2-4x faster than Keras on CPU), else a model.tflite built there on first "
    "use (see --cache-export), else Keras; naming tflite/onnx converts in memory if none is there."
)
PRECISION_HELP = (
    "auto | fp32 | bf16 | fp16 (bf16 / fp16: Keras only; fp16 needs a GPU). auto is fp32 on every machine: "
    "the same probabilities everywhere."
)
CACHE_HELP = (
    "With --backend auto on a model folder that has no up-to-date export: build model.tflite beside "
    "model.keras once (tens of seconds), run on it now and in later calls. --no-cache-export runs Keras "
    "and writes nothing."
)
COMPILE_HELP = "XLA-compile the Keras model (jit_compile): for GPUs; on CPU it was measured slower."
SUBMISSION_FORMATS = ("isbi",)


def predict(
    model: Path = typer.Argument(..., help=MODEL_HELP),
    paths: list[str] = typer.Argument(
        ..., help="Image files, folders (searched recursively) or glob patterns."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Write predictions to .csv, .json or .parquet (atomic); with --submission, a .zip.",
    ),
    submission: str | None = typer.Option(
        None, "--submission", help="isbi: also write the C-NMC 2019 challenge's zip (isbi_valid.predict)."
    ),
    tta: str = typer.Option(
        "none", help="Test-time augmentation: none | flips | d8 (probabilities averaged)."
    ),
    backend: str = typer.Option("auto", help=CACHED_BACKEND_HELP),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per forward pass."),
    workers: int | None = typer.Option(
        None, "--workers", min=0, help="Decoding threads (default: the cores, at most 8; 0: no threads)."
    ),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
    compile: bool = typer.Option(False, "--compile", help=COMPILE_HELP),
    cache_export: bool = typer.Option(True, "--cache-export/--no-cache-export", help=CACHE_HELP),
) -> None:
    """Classify images; unreadable files are listed with an error instead of stopping the batch."""
    from leukoscope.infer.loading import check_backend
    from leukoscope.infer.predict import OUTPUT_SUFFIXES, predict_paths, write_predictions
    from leukoscope.infer.predictor import load_predictor
    from leukoscope.infer.tta import check_mode

    check_mode(tta)
    check_backend(backend)
    zip_out = _submission_path(submission, out)
    if zip_out is not None and out is not None and out.suffix.lower() == ".zip":
        out = None
    if out is not None and out.suffix.lower() not in OUTPUT_SUFFIXES:
        from leukoscope.errors import ConfigError

        raise ConfigError(
            f"cannot write predictions as {out.suffix or 'a file without suffix'}",
            path=out,
            hint="use --out preds.csv, preds.json or preds.parquet",
        )
    predictor = load_predictor(
        model, backend=backend, precision=precision, compile=compile, cache_export=cache_export
    )
    results = predict_paths(predictor, paths, tta=tta, batch_size=batch_size, workers=workers)
    failed = sum(1 for r in results if r.error)
    names = predictor.card.class_names
    if out is None:
        _print_table(results, names)
    else:
        write_predictions(results, names, out)
    if zip_out is not None:
        write_submission(results, predictor.card, zip_out)
        out = zip_out if out is None else out
    where = f" -> {out}" if out else ""
    console.print(
        f"{len(results)} image(s), {failed} unreadable · {predictor.model_id} on "
        f"{predictor.backend} {predictor.precision}{where}"
    )


def _submission_path(submission: str | None, out: Path | None) -> Path | None:
    """Where the challenge zip goes: --out when it ends in .zip, else isbi_submission.zip beside --out."""
    if submission is None:
        return None
    if submission not in SUBMISSION_FORMATS:
        from leukoscope.errors import ConfigError

        raise ConfigError(f"unknown submission format {submission!r}", hint="use --submission isbi")
    if out is not None and out.suffix.lower() == ".zip":
        return out
    return (out.parent if out is not None else Path.cwd()) / "isbi_submission.zip"


def write_submission(results: list, card: object, zip_out: Path) -> None:
    """Every image must have a prediction: a challenge file with a hole would be misaligned."""
    from leukoscope.errors import DataError
    from leukoscope.experiments.submission import isbi_submission

    failed = [r for r in results if r.error]
    if failed:
        raise DataError(
            f"{len(failed)} image(s) could not be read, so no submission was written ({failed[0].error})",
            path=failed[0].path,
            hint="every test image needs a prediction; replace or re-download the unreadable files",
        )
    positive = getattr(card, "positive_class", None) or "all"
    isbi_submission([r.path for r in results], [r.predicted for r in results], positive, zip_out)


def _print_table(results: list, class_names: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for column in ("path", "predicted", *(f"p_{c}" for c in class_names), "error"):
        table.add_column(column, overflow="fold", justify="right" if column.startswith("p_") else "left")
    for r in results:
        probs = [f"{r.probabilities[c]:.4f}" if c in r.probabilities else "" for c in class_names]
        table.add_row(r.path, r.predicted or "", *probs, f"[red]{r.error}[/]" if r.error else "")
    Console().print(table)


def explain(
    model: Path = typer.Argument(
        ..., help="A model folder (model_card.json + model.keras) or its model.keras."
    ),
    paths: list[str] = typer.Argument(
        ..., help="Image files, folders (searched recursively) or glob patterns."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for <stem>_gradcam.png overlays."),
) -> None:
    """Grad-CAM heatmaps over the original images: which part of the cell drove the prediction."""
    from leukoscope.errors import ModelError
    from leukoscope.infer.explain import GradCamExplainer, explain_paths
    from leukoscope.infer.predictor import model_kind
    from leukoscope.models.card import load_model

    if not model.exists():
        raise ModelError(
            "model not found", path=model, hint="pass a model folder (model_card.json + model.keras)"
        )
    _refuse_exports(model, model_kind(model))
    net, card = load_model(model)
    rows = explain_paths(GradCamExplainer(net, card), paths, out)
    for row in rows:
        if row["error"]:
            console.print(f"[yellow]skipped[/] {row['path']}: {row['error']}", soft_wrap=True)
    written = sum(1 for r in rows if r["heatmap"])
    console.print(f"{written} heatmap(s) written to {out}, {len(rows) - written} skipped")


def _refuse_exports(model: Path, kind: str) -> None:
    from leukoscope.errors import ModelError

    if kind != "folder":
        raise ModelError(
            f"Grad-CAM needs the Keras model, not {'an ensemble' if kind == 'ensemble' else 'an export'}",
            path=model,
            hint="pass the model folder (model_card.json + model.keras)",
        )


def export(
    model: Path = typer.Argument(..., help="A model folder (model_card.json + model.keras)."),
    format: str = typer.Option(
        "onnx", "--format", "-f", help="onnx | tflite (LiteRT) | saved_model (TF Serving) | all."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Output file / SavedModel folder (default: <model>/model.onnx, model.tflite, saved_model/). "
        "TF Serving wants <base>/<name>/<version>/, e.g. --out serving/leukoscope/1.",
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version."),
) -> None:
    """Export the model for deployment, with its card beside it (and, for ONNX, inside).

    Input `pixels`: float32 NHWC RGB 0-255 of the preprocessed crop (dynamic batch); output
    `probabilities`: (N, classes) in the card's class order, temperature applied.
    """
    from leukoscope.cli._common import print_json
    from leukoscope.errors import ConfigError, ModelError
    from leukoscope.infer.export import FORMATS, check_format, describe, export_model_dir

    if not model.exists():
        raise ModelError(
            "model not found", path=model, hint="pass a model folder (model_card.json + model.keras)"
        )
    formats = list(FORMATS) if format.lower() == "all" else [check_format(format)]
    if out is not None and len(formats) > 1:
        raise ConfigError("--out names one export", hint="drop --out with --format all")
    results = []
    for fmt in formats:
        result = export_model_dir(model, fmt, out, opset)
        console.print(f"exported {result.path} ({result.exporter})")
        results.append(describe(result))
    print_json(results[0] if len(results) == 1 else {"exports": results})


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
    app.command("explain")(explain)
    app.command("export")(export)
