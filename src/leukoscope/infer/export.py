"""Export a trained model for deployment: TensorFlow SavedModel (TF Serving), TFLite / LiteRT, ONNX.

Every export is the `probability_model`: input `pixels`, float32 NHWC RGB 0-255 (dynamic batch, the
card's `image_size` square, i.e. the preprocessed crop: cell crop / resize / CLAHE as in the card),
output `probabilities`, (N, num_classes) in the card's class order with the temperature applied. The
standardisation is inside the model, so no runtime needs the mean/std.

The route is always Keras -> SavedModel (`keras.export.ExportArchive`, exact) -> the other formats:
TFLite with `TFLiteConverter.from_saved_model`, ONNX with tf2onnx's SavedModel loader (what
`python -m tf2onnx.convert --saved-model` does). Keras' own `model.export(format="onnx")` traces the
live model and turned EfficientNet's Normalization constants into required graph inputs; through a
SavedModel they are frozen into constants.

The card travels with each export: `model_card.json` beside it (inside a SavedModel folder), and, for
ONNX, inside the file's metadata too. `exports.json` in the same folder records, per export, the
sha256 of the `model.keras` it came from and the temperature baked in, so a stale export (retrained or
recalibrated model) is never picked up by `--backend auto`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leukoscope import __version__
from leukoscope._io import atomic_path, write_json
from leukoscope.errors import ConfigError
from leukoscope.models.card import CARD_NAME, WEIGHTS_NAME, ModelCard

log = logging.getLogger(__name__)

FORMATS = ("onnx", "tflite", "saved_model")
EXPORT_FILES = {"onnx": "model.onnx", "tflite": "model.tflite", "saved_model": "saved_model"}
EXPORTS_NAME = "exports.json"
ONNX_CARD_KEY = "leukoscope.model_card"
DEFAULT_OPSET = 17
INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
INPUT_DOC = "float32 NHWC RGB pixels 0-255 of the preprocessed crop (card.preprocess), dynamic batch"
OUTPUT_DOC = "float32 (N, num_classes) probabilities in class_names order (sigmoid/softmax of logits / T)"


@dataclass
class ExportResult:
    path: Path
    format: str
    exporter: str
    opset: int | None
    input_shape: tuple[str | int, ...]


def _probability_model(model: Any, card: ModelCard) -> Any:
    import numpy as np

    from leukoscope.models.factory import probability_model

    probs = probability_model(model, card.temperature, card.positive_index)
    size = card.preprocess.image_size
    probs(np.zeros((1, size, size, 3), np.float32))  # a never-called model cannot be converted
    return probs


def write_saved_model(model: Any, card: ModelCard, out_dir: str | Path) -> Path:
    """`serving_default`: {pixels} -> {probabilities}; the folder is replaced only once complete."""
    import keras
    import tensorflow as tf

    out_dir = Path(out_dir)
    probs = _probability_model(model, card)
    size = card.preprocess.image_size
    archive = keras.export.ExportArchive()
    archive.track(probs)
    archive.add_endpoint(
        "serving_default",
        lambda pixels: {OUTPUT_NAME: probs(pixels, training=False)},
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name=INPUT_NAME)],
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        archive.write_out(str(tmp), verbose=False)
        card.save(tmp)
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _replace_dir(new: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def saved_model_to_tflite(saved_model: str | Path) -> bytes:
    import tensorflow as tf

    return bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved_model)).convert())


def saved_model_to_onnx(saved_model: str | Path, card: ModelCard, opset: int = DEFAULT_OPSET) -> bytes:
    """tf2onnx's SavedModel route (variables frozen to constants), with the card in the metadata."""
    import tensorflow as tf
    from tf2onnx import tf_loader
    from tf2onnx.convert import _convert_common

    if not 13 <= opset <= 21:
        raise ConfigError(f"ONNX opset {opset} is not supported", hint="use 13..21 (default 17)")
    graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
        str(saved_model), None, None, "serve", ["serving_default"], None, False,
        return_initialized_tables=True, return_tensors_to_rename=True,
    )  # fmt: skip
    with tf.device("/cpu:0"):
        proto, _ = _convert_common(
            graph_def, name="leukoscope", opset=opset, input_names=inputs, output_names=outputs,
            tensors_to_rename=renames, initialized_tables=tables,
        )  # fmt: skip
    for value in proto.graph.input:  # the batch axis gets a readable name instead of unk__123
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_param = "batch"
    for value in proto.graph.output:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_param = "batch"
    _set_metadata(proto, card, opset)
    return proto.SerializeToString()


def _set_metadata(proto: Any, card: ModelCard, opset: int) -> None:
    import tf2onnx

    props = {
        ONNX_CARD_KEY: json.dumps(card.to_dict()),
        "leukoscope.input": INPUT_DOC,
        "leukoscope.output": OUTPUT_DOC,
        "leukoscope.exporter": f"tf2onnx {tf2onnx.__version__} from a SavedModel, opset {opset}",
    }
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"LeukoScope {card.backbone} classifier ({', '.join(card.class_names)}). {OUTPUT_DOC}"


def convert_in_memory(model: Any, card: ModelCard, fmt: str, opset: int = DEFAULT_OPSET) -> bytes:
    """An ONNX or TFLite model as bytes, through a temporary SavedModel (nothing is kept on disk)."""
    if fmt not in ("onnx", "tflite"):
        raise ConfigError(f"cannot convert to {fmt!r} in memory", hint="onnx or tflite")
    with tempfile.TemporaryDirectory(prefix="leukoscope-export-") as tmp:
        saved = write_saved_model(model, card, Path(tmp) / "saved_model")
        return saved_model_to_onnx(saved, card, opset) if fmt == "onnx" else saved_model_to_tflite(saved)


def check_format(fmt: str) -> str:
    name = fmt.lower().replace("-", "_")
    name = {"litert": "tflite", "savedmodel": "saved_model", "tf_saved_model": "saved_model"}.get(name, name)
    if name not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}", hint=f"choose one of: {', '.join(FORMATS)}")
    return name


def export_model_dir(
    model_dir: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    *,
    model: Any = None,
) -> ExportResult:
    """`leukoscope export`: a model folder -> `<folder>/model.onnx | model.tflite | saved_model/` (or `out`),
    with the card beside it and a record in `exports.json`. `model`: the folder's model.keras, already
    loaded."""
    from leukoscope.data.hashing import file_digest
    from leukoscope.models.card import load_keras, model_folder

    fmt = check_format(fmt)
    folder = model_folder(model_dir)
    card = ModelCard.load(folder)
    card.model_id = card.model_id or folder.name
    source = folder / WEIGHTS_NAME
    model = load_keras(source) if model is None else model
    target = Path(out) if out is not None else folder / EXPORT_FILES[fmt]
    _check_target(target, fmt)
    size = card.preprocess.image_size
    if fmt == "saved_model":
        write_saved_model(model, card, target)
        exporter = f"keras {_keras_version()} ExportArchive"
    else:
        with tempfile.TemporaryDirectory(prefix="leukoscope-export-") as tmp:
            saved = write_saved_model(model, card, Path(tmp) / "saved_model")
            if fmt == "onnx":
                data, exporter = saved_model_to_onnx(saved, card, opset), f"tf2onnx (opset {opset})"
            else:
                data, exporter = saved_model_to_tflite(saved), "TFLiteConverter.from_saved_model"
        with atomic_path(target) as tmp_file:
            tmp_file.write_bytes(data)
    if fmt != "saved_model" and target.parent.resolve() != folder.resolve():
        card.save(target.parent)  # a SavedModel holds its card inside
    _record(target, fmt, card, file_digest(source, "sha256"), exporter)
    return ExportResult(target, fmt, exporter, opset if fmt == "onnx" else None, ("batch", size, size, 3))


def _check_target(target: Path, fmt: str) -> None:
    wanted = {"onnx": ".onnx", "tflite": ".tflite"}.get(fmt)
    if wanted and target.suffix.lower() != wanted:
        raise ConfigError(
            f"an {fmt} export needs a {wanted} file name", path=target, hint=f"--out model{wanted}"
        )
    not_ours = target.exists() and not (target / "saved_model.pb").is_file()
    if fmt == "saved_model" and not_ours and (target.is_file() or any(target.iterdir())):
        raise ConfigError(
            "the SavedModel folder exists and is not a SavedModel",
            path=target,
            hint="choose another --out",
        )


def _keras_version() -> str:
    import keras

    return str(keras.__version__)


def _record(target: Path, fmt: str, card: ModelCard, sha: str, exporter: str) -> None:
    """One entry in `<folder>/exports.json` per export file: where it came from and what is baked in."""
    records_file = target.parent / EXPORTS_NAME
    records = _read_records(target.parent)
    records[target.name] = {
        "format": fmt,
        "source": WEIGHTS_NAME,
        "source_sha256": sha,
        "temperature": float(card.temperature),
        "positive_index": card.positive_index,
        "class_names": list(card.class_names),
        "image_size": card.preprocess.image_size,
        "exporter": exporter,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "leukoscope_version": __version__,
    }
    write_json(records_file, records)


def _read_records(folder: Path) -> dict[str, Any]:
    path = folder / EXPORTS_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("%s is damaged; its records are ignored", path)
        return {}
    return data if isinstance(data, dict) else {}


def read_record(folder: Path, name: str) -> dict[str, Any] | None:
    record = _read_records(folder).get(name)
    return record if isinstance(record, dict) else None


_HASHES: dict[tuple[str, int, int], str] = {}


def source_sha256(path: Path) -> str:
    """sha256 of a model.keras, remembered per (path, size, mtime) so repeated loads hash once."""
    from leukoscope.data.hashing import file_digest

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_digest(path, "sha256")
    return _HASHES[key]


def fresh_export(folder: Path, fmt: str, card: ModelCard) -> Path | None:
    """`<folder>/model.<fmt>` when it matches the folder's model.keras and card; None (with a warning
    when a file is there) otherwise. A folder without model.keras trusts its exports."""
    path = folder / EXPORT_FILES[fmt]
    if not path.exists():
        return None
    problem = _staleness(folder, path, card)
    if problem:
        log.warning(
            "ignoring %s: %s; run `leukoscope export %s --format %s` again", path, problem, folder, fmt
        )
        return None
    return path


def _staleness(folder: Path, path: Path, card: ModelCard) -> str:
    """Why the export at `path` no longer matches the folder's model.keras and card ("" when it does)."""
    source = folder / WEIGHTS_NAME
    if not source.is_file():
        return ""
    record = read_record(folder, path.name)
    if record is None:
        return f"no record of it in {EXPORTS_NAME}"
    if record.get("source_sha256") != source_sha256(source):
        return f"it was made from another {WEIGHTS_NAME}"
    if abs(float(record.get("temperature", 1.0)) - float(card.temperature)) > 1e-9:
        return f"the card's temperature changed since (T {record.get('temperature')} -> {card.temperature})"
    if (
        record.get("class_names") != list(card.class_names)
        or record.get("positive_index") != card.positive_index
    ):
        return "the card's classes changed since"
    return ""


def cache_lock_path(folder: Path) -> Path:
    """One lock per model folder, outside it (nothing but the export is added to the folder)."""
    import hashlib

    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"leukoscope-export-{key}.lock"


def build_cache(folder: Path, fmt: str, card: ModelCard) -> Path | None:
    """`leukoscope export FOLDER --format fmt`, done by `predict` / `serve` on first use (backend auto), so
    the default path runs on the fast export; its one-time cost is logged.

    None (the caller runs Keras) when the folder is not writable, another process is building the same
    export, or the conversion fails (a warning says why). The export is written atomically and recorded
    in exports.json like any other, so a retrained or recalibrated model is never run on a stale one:
    `fresh_export` skips it and the next call rebuilds it.
    """
    from leukoscope._io import try_lock
    from leukoscope.models.card import load_keras

    target = folder / EXPORT_FILES[fmt]
    if not os.access(folder, os.W_OK):
        log.info("%s is not writable: no %s kept there, running Keras", folder, target.name)
        return None
    lock = try_lock(cache_lock_path(folder))
    if lock is None:
        log.info("another process is building %s: running Keras this time", target)
        return None
    try:
        if target.exists() and not _staleness(folder, target, card):
            return target  # built by the process that held the lock
        model = load_keras(folder / WEIGHTS_NAME)  # a model that cannot be loaded: one line, as for Keras
        log.info(
            "building %s from %s (once; later runs load it; --no-cache-export or --backend keras skip it)",
            target, WEIGHTS_NAME,
        )  # fmt: skip
        start = time.perf_counter()
        try:
            export_model_dir(folder, fmt, model=model)
        except Exception as exc:  # a conversion failure must not stop predictions: Keras still runs it
            log.warning("could not build %s (%s: %s): running Keras", target, type(exc).__name__, exc)
            return None
        log.info("built %s in %.1f s", target, time.perf_counter() - start)
        return target
    finally:
        lock.close()


def describe(result: ExportResult) -> dict[str, Any]:
    return {
        "path": str(result.path),
        "format": result.format,
        "exporter": result.exporter,
        "opset": result.opset,
        "input": {"name": INPUT_NAME, "shape": list(result.input_shape), "dtype": "float32"},
        "output": {"name": OUTPUT_NAME},
        "card": str(
            result.path / CARD_NAME if result.format == "saved_model" else result.path.parent / CARD_NAME
        ),
    }
