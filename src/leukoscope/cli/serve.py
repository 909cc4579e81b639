"""`leukoscope serve`: the web page and JSON API for one model (loopback unless told otherwise)."""

from __future__ import annotations

from pathlib import Path

import typer

from leukoscope.cli._common import console
from leukoscope.cli.infer import CACHE_HELP, CACHED_BACKEND_HELP, COMPILE_HELP, PRECISION_HELP


def serve(
    model: Path = typer.Argument(
        ...,
        help="A model folder (model_card.json + model.keras), an ensemble spec (ensemble.json) or an export "
        "(.onnx, .tflite, SavedModel).",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port to listen on."),
    token: str | None = typer.Option(
        None,
        envvar="LEUKOSCOPE_TOKEN",
        help="Require 'Authorization: Bearer TOKEN' on /api (env LEUKOSCOPE_TOKEN).",
    ),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.001, help="Largest request body."),
    max_concurrency: int = typer.Option(1, "--max-concurrency", min=1, help="Inferences running at once."),
    max_queue: int = typer.Option(32, "--max-queue", min=0, help="Requests allowed to wait; more get 503."),
    backend: str = typer.Option("auto", help=CACHED_BACKEND_HELP),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
    tta: str = typer.Option("none", help="none | flips | d8."),
    compile: bool = typer.Option(False, "--compile", help=COMPILE_HELP + " Compiled at start-up."),
    cache_export: bool = typer.Option(True, "--cache-export/--no-cache-export", help=CACHE_HELP),
) -> None:
    """Serve the model: page at /, API at /api/v1, spec at /openapi.json, liveness at /health."""
    import logging

    import uvicorn

    from leukoscope.errors import ConfigError
    from leukoscope.infer.loading import check_backend
    from leukoscope.infer.predictor import load_predictor
    from leukoscope.infer.tta import check_mode
    from leukoscope.serve.app import create_app
    from leukoscope.serve.service import ServeSettings

    check_mode(tta)
    check_backend(backend)
    if not model.exists():
        raise ConfigError(
            "model not found", path=model, hint="pass a model folder, an ensemble.json or an export"
        )
    # a bad model: one line, exit 2
    predictor = load_predictor(
        model, backend=backend, precision=precision, compile=compile, cache_export=cache_export
    )
    if compile:
        _warm_up(predictor)
    settings = ServeSettings(
        host=host,
        port=port,
        token=token or None,
        max_upload_mb=max_upload_mb,
        max_concurrency=max_concurrency,
        max_queue=max_queue,
        backend=backend,
        precision=precision,
        tta=tta,
        compile=compile,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            f"[yellow]note:[/] listening on {host}: other machines can reach this server"
            + ("" if token else " (no --token set)")
        )
    console.print(f"LeukoScope at http://{host}:{port}/  (Ctrl+C to stop)")
    uvicorn.run(
        create_app(predictor, settings, source=model),
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        limit_concurrency=max_concurrency
        + max_queue
        + 64,  # a hard cap on open requests before the app's 503
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def _warm_up(predictor: object) -> None:
    """XLA-compile for the shapes requests use (1 image, a full batch) before the first request waits."""
    import numpy as np

    size = predictor.card.preprocess.image_size  # type: ignore[attr-defined]
    console.print("compiling the model for batch sizes 1 and 32 ...")
    for n in (1, 32):
        predictor.predict_arrays(np.zeros((n, size, size, 3), np.uint8))  # type: ignore[attr-defined]
