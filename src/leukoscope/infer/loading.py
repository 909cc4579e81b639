"""Loading one trained model: a model folder (its model.keras, or an up-to-date export beside it) or an
export made by `leukoscope export` (`.onnx`, `.tflite`, a SavedModel folder). Ensembles of such models
are `infer.ensemble`'s; `infer.predictor.load_predictor` takes either.

`auto` takes, for a model folder, an up-to-date export beside `model.keras` whose runtime imports, in the
order `AUTO_ORDER` (fastest first as measured on this CPU: both exports beat Keras 1.5-3x), else Keras. An
export is up to date when `exports.json` says it was made from this very `model.keras` (sha256) with the
card's temperature and classes; a stale one is skipped with a warning. With `cache_export` (what
`predict` and `serve` pass), a folder without an up-to-date export gets model.tflite built beside
model.keras once (`export.build_cache`), so the default path is the fast one. Otherwise converting happens
only in memory, when a backend is asked for explicitly and no export is there.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from leukoscope.errors import ConfigError, ModelError
from leukoscope.infer.keras_backend import KerasPredictor
from leukoscope.infer.runtimes import (
    OnnxPredictor,
    SavedModelPredictor,
    TFLitePredictor,
    require_runtime,
    runtime_available,
)
from leukoscope.models.card import CARD_NAME, WEIGHTS_NAME, ModelCard
from leukoscope.precision import canonical

log = logging.getLogger(__name__)

BACKENDS = ("auto", "keras", "tflite", "onnx")
# `auto` for a model folder: exports tried in this order before Keras. Measured here (2 shared cores,
# AVX-512, batch 32, one process per model, backends alternating, median images/s of 6 rounds; the host
# was loaded by other jobs, load average ~6): EfficientNetB0@224 keras 8.6 / tflite 25 / onnx 15;
# EfficientNetB2@260 keras 5.0 / tflite 10.4 / onnx 7.5; DenseNet201@224 keras 1.7 / tflite 4.4 / onnx
# 3.2; simplecnn@64 keras 600 / tflite 1190 / onnx 640. Both exports beat Keras in every round; LiteRT won
# the medians on all four. In an earlier, less loaded run onnxruntime overtook LiteRT on DenseNet201
# (11.7 vs 6.2) and EfficientNetB0 (53 vs 33): with both exports present, keep the one you prefer.
AUTO_ORDER = ("tflite", "onnx")
ModelPredictor = KerasPredictor | OnnxPredictor | TFLitePredictor | SavedModelPredictor


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}", hint=f"choose one of: {', '.join(BACKENDS)}")
    return backend


def export_kind(path: Path) -> str:
    """saved_model | onnx | tflite | folder (a model folder, or its model.keras)."""
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return "saved_model"
    suffix = path.suffix.lower()
    if path.is_file() and suffix in (".onnx", ".tflite"):
        return suffix[1:]
    folder = path if path.is_dir() else path.parent
    if (folder / CARD_NAME).is_file() and (path.is_dir() or suffix == ".keras"):
        return "folder"
    raise ModelError(
        "not a LeukoScope model",
        path=path,
        hint=f"pass a folder with {CARD_NAME} + {WEIGHTS_NAME}, an ensemble.json or an export "
        "(.onnx, .tflite, a SavedModel folder) made by `leukoscope export`",
    )


def load_model_predictor(
    path: str | Path,
    *,
    backend: str = "auto",
    precision: str = "auto",
    compile: bool = False,
    cache_export: bool = False,
) -> ModelPredictor:
    """The predictor of one model (not an ensemble); arguments as in `infer.predictor.load_predictor`."""
    check_backend(backend)
    precision = canonical(precision)
    path = Path(path)
    if not path.exists():
        raise ModelError(
            "model not found", path=path, hint="pass a model folder, an ensemble.json or an export"
        )
    kind = export_kind(path)
    if kind == "folder":
        return _load_folder(path, backend, precision, compile, cache_export)
    own = {"saved_model": "keras", "onnx": "onnx", "tflite": "tflite"}[kind]
    if backend not in ("auto", own):
        raise ConfigError(
            f"a {kind} export cannot run on the {backend} backend", path=path, hint=f"use --backend {own}"
        )
    _check_exported(own if kind != "saved_model" else "SavedModel", precision, compile)
    if kind == "onnx":
        require_runtime("onnx")
        return OnnxPredictor(path)
    card = _export_card(path)
    if kind == "tflite":
        require_runtime("tflite")
        return TFLitePredictor(path, card=card)
    return SavedModelPredictor(path, card)


def _check_exported(what: str, precision: str, compile: bool) -> None:
    if precision not in ("auto", "fp32"):
        raise ConfigError(
            f"the {what} backend runs in fp32, not {precision}", hint="use --precision auto or fp32"
        )
    if compile:
        raise ConfigError("--compile (XLA) applies to the keras backend only", hint="drop --compile")


def _export_card(path: Path) -> ModelCard:
    """The card beside (or, for a SavedModel, inside) an export, with the temperature baked into it."""
    from leukoscope.infer.export import read_record

    folder = path if path.is_dir() else path.parent  # a SavedModel folder holds its card inside
    if not (folder / CARD_NAME).is_file():
        raise ModelError(
            f"no {CARD_NAME} beside the exported model",
            path=path,
            hint=f"keep the {CARD_NAME} that `leukoscope export` wrote next to it",
        )
    card = ModelCard.load(folder)
    record = read_record(path.parent, path.name)
    if record is not None:
        card.temperature = float(record.get("temperature", card.temperature))
    card.model_id = card.model_id or folder.name
    return card


def _load_folder(
    path: Path, backend: str, precision: str, compile: bool, cache_export: bool
) -> ModelPredictor:
    from leukoscope.infer.export import EXPORT_FILES, fresh_export

    folder = path if path.is_dir() else path.parent
    card = ModelCard.load(folder)
    card.model_id = card.model_id or folder.name
    has_keras = (folder / WEIGHTS_NAME).is_file()
    if backend == "auto":
        wants_keras = path.suffix.lower() == ".keras" or precision not in ("auto", "fp32") or compile
        if not wants_keras:
            for name in AUTO_ORDER:
                found = fresh_export(folder, name, card) if runtime_available(name) else None
                if found is not None:
                    return _exported(found, name, card, precision, compile)
            cached = cache_first_export(folder, card) if cache_export and has_keras else None
            if cached is not None:
                return _exported(cached[0], cached[1], card, precision, compile)
        if not has_keras:
            present = [n for n in AUTO_ORDER if (folder / EXPORT_FILES[n]).is_file()]
            if present:
                require_runtime(present[0])
                return _exported(folder / EXPORT_FILES[present[0]], present[0], card, precision, compile)
        backend = "keras"
    if backend == "keras":
        return _load_keras(folder, card, precision, compile)
    _check_exported(backend, precision, compile)
    require_runtime(backend)
    found = fresh_export(folder, backend, card)
    if found is not None:
        return _exported(found, backend, card, precision, compile)
    if not has_keras:
        raise ModelError(f"no {WEIGHTS_NAME} and no {EXPORT_FILES[backend]} here", path=folder)
    from leukoscope.infer.export import convert_in_memory
    from leukoscope.models.card import load_keras

    log.warning(
        "no up-to-date %s beside %s: converting in memory (`leukoscope export %s --format %s` keeps one)",
        EXPORT_FILES[backend], WEIGHTS_NAME, folder, backend,
    )  # fmt: skip
    data = convert_in_memory(load_keras(folder / WEIGHTS_NAME), card, backend)
    return _exported(data, backend, card, precision, compile, name=str(folder))


def _exported(
    source: Path | bytes,
    backend: str,
    card: ModelCard,
    precision: str,
    compile: bool,
    name: str | None = None,
) -> ModelPredictor:
    """An export run with the folder's card (the record's temperature is what was baked in)."""
    from leukoscope.infer.export import read_record

    _check_exported(backend, precision, compile)
    if isinstance(source, Path):
        record = read_record(source.parent, source.name)
        if record is not None and "temperature" in record:
            card.temperature = float(record["temperature"])
    if backend == "onnx":
        return OnnxPredictor(source, card=card, name=name)
    return TFLitePredictor(source, card=card, name=name)


def _load_keras(folder: Path, card: ModelCard, precision: str, compile: bool) -> KerasPredictor:
    from leukoscope.models.card import load_keras

    if not (folder / WEIGHTS_NAME).is_file():
        raise ModelError(
            f"{WEIGHTS_NAME} is missing", path=folder, hint="the keras backend needs the trained model"
        )
    model = load_keras(folder / WEIGHTS_NAME)
    return KerasPredictor(
        model,
        card,
        model_id=card.model_id,
        precision=precision,
        compile=compile,
        source=folder / WEIGHTS_NAME,
    )


def cache_first_export(folder: Path, card: ModelCard) -> tuple[Path, str] | None:
    """Build the fastest export whose runtime is installed beside model.keras, once (`export.build_cache`)."""
    from leukoscope.infer.export import build_cache

    for name in AUTO_ORDER:
        if runtime_available(name) and (name != "onnx" or importlib.util.find_spec("tf2onnx")):
            built = build_cache(folder, name, card)
            return None if built is None else (built, name)
    return None
