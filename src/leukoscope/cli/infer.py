"""`leukoscope predict | explain | export`: use a trained model on new images, explain it, ship it."""

from __future__ import annotations

from pathlib import Path

import typer

from leukoscope.cli._common import console

MODEL_HELP = (
    "A run directory / model folder (model_card.json + model.safetensors), an ensemble spec (ensemble.json) "
    "or an exported .onnx file."
)
SUBMISSION_FORMATS = ("isbi",)


def predict(
    model: Path = typer.Argument(..., help=MODEL_HELP),
    paths: list[str] = typer.Argument(
        ..., help="Image files, folders (searched recursively) or glob patterns."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write predictions to .csv or .json (atomic); with --submission, a .zip."
    ),
    submission: str | None = typer.Option(
        None, "--submission", help="isbi: also write the C-NMC 2019 challenge's zip (isbi_valid.predict)."
    ),
    tta: str = typer.Option(
        "none", help="Test-time augmentation: none | flips | d8 (probabilities averaged)."
    ),
    backend: str = typer.Option("auto", help="auto | torch | onnx (a run directory can also run on onnx)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per forward pass."),
    workers: int | None = typer.Option(
        None, "--workers", min=0, help="Decoding processes (default: cores - 1)."
    ),
    precision: str = typer.Option(
        "auto", help="auto | bf16 | fp32 (auto: bf16 where the CPU/GPU is fast at it)."
    ),
    compile: bool = typer.Option(
        False,
        "--compile",
        help="torch.compile the model (fastest on long runs; ~10 s to compile per batch shape).",
    ),
) -> None:
    """Classify images; unreadable files are listed with an error instead of stopping the batch."""
    from leukoscope.infer.predict import OUTPUT_SUFFIXES, predict_paths, write_predictions
    from leukoscope.infer.predictor import load_predictor
    from leukoscope.infer.tta import check_mode

    check_mode(tta)
    zip_out = _submission_path(submission, out)
    if zip_out is not None and out is not None and out.suffix.lower() == ".zip":
        out = None
    if out is not None and out.suffix.lower() not in OUTPUT_SUFFIXES:
        from leukoscope.errors import ConfigError

        raise ConfigError(
            f"cannot write predictions as {out.suffix or 'a file without suffix'}",
            path=out,
            hint="use --out preds.csv or --out preds.json",
        )
    predictor = load_predictor(model, backend=backend, precision=precision, compile=compile)
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
    from leukoscope.experiments.submission import labels_to_01, write_isbi_submission

    failed = [r for r in results if r.error]
    if failed:
        raise DataError(
            f"{len(failed)} image(s) could not be read, so no submission was written ({failed[0].error})",
            path=failed[0].path,
            hint="every test image needs a prediction; replace or re-download the unreadable files",
        )
    positive = getattr(card, "positive_class", None) or "all"
    labels = labels_to_01([r.predicted for r in results], positive=positive)
    write_isbi_submission([r.path for r in results], labels, zip_out)


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
        ..., help="A run directory / model folder (Grad-CAM needs the PyTorch model)."
    ),
    paths: list[str] = typer.Argument(
        ..., help="Image files, folders (searched recursively) or glob patterns."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for <stem>_gradcam.png overlays."),
) -> None:
    """Grad-CAM heatmaps over the original images: which part of the cell drove the prediction."""
    from leukoscope.errors import ModelError
    from leukoscope.infer.explain import GradCamExplainer, explain_paths
    from leukoscope.models.card import load_model

    if model.suffix.lower() == ".onnx":
        raise ModelError(
            "Grad-CAM needs the PyTorch model", path=model, hint="pass the run directory instead"
        )
    net, card = load_model(model)
    rows = explain_paths(GradCamExplainer(net, card), paths, out)
    for row in rows:
        if row["error"]:
            console.print(f"[yellow]skipped[/] {row['path']}: {row['error']}", soft_wrap=True)
    written = sum(1 for r in rows if r["heatmap"])
    console.print(f"{written} heatmap(s) written to {out}, {len(rows) - written} skipped")


def export(
    model: Path = typer.Argument(..., help="A run directory / model folder."),
    format: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output file (default: <model>/model.onnx)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version."),
) -> None:
    """Export the fp32 model to ONNX with the model card embedded.

    Input `input`: normalised float32 NCHW (dynamic batch); output `probabilities`: (N, classes) in the
    card's class order.
    """
    from leukoscope.cli._common import print_json
    from leukoscope.errors import ConfigError
    from leukoscope.infer.export import export_model_dir

    if format.lower() != "onnx":
        raise ConfigError(f"unknown export format {format!r}", hint="use --format onnx")
    result = export_model_dir(model, out, opset)
    console.print(f"exported {result.path} (opset {result.opset}, {result.exporter} exporter)")
    print_json(
        {
            "path": str(result.path),
            "opset": result.opset,
            "exporter": result.exporter,
            "input": list(result.input_shape),
        }
    )


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
    app.command("explain")(explain)
    app.command("export")(export)
