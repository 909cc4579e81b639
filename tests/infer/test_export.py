"""Exports (SavedModel, TFLite, ONNX): the same probabilities as Keras, the card travels with each, and
`--backend auto` uses an export only while it matches model.keras and the card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from leukoscope.cli.main import app
from leukoscope.errors import ConfigError, ModelError
from leukoscope.infer.export import EXPORTS_NAME, ONNX_CARD_KEY, export_model_dir
from leukoscope.infer.predict import predict_paths
from leukoscope.infer.predictor import Predictor, load_predictor, predicted_labels, preprocess_rgb
from leukoscope.infer.runtimes import OnnxPredictor
from leukoscope.models.card import ModelCard

from .helpers import cell_image, write_mixed_folder

FILES = {"onnx": "model.onnx", "tflite": "model.tflite", "saved_model": "saved_model"}


@pytest.fixture(scope="module")
def exported(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every format through the CLI, into a folder of its own (the session's model folder stays bare)."""
    out = tmp_path_factory.mktemp("exports")
    paths = {}
    for fmt, name in FILES.items():
        result = CliRunner().invoke(
            app, ["export", str(model_dir), "--format", fmt, "--out", str(out / name)]
        )
        assert result.exit_code == 0, result.output
        info = json.loads(result.stdout.strip().splitlines()[-1])
        assert info["path"] == str(out / name) and info["input"]["name"] == "pixels"
        paths[fmt] = out / name
    return paths


@pytest.fixture(scope="module")
def batch(predictor: Predictor) -> np.ndarray:
    return np.stack([preprocess_rgb(cell_image(i), predictor.card) for i in range(7)])  # odd: dynamic batch


@pytest.mark.parametrize("fmt", list(FILES))
def test_each_export_matches_keras(fmt: str, exported: dict[str, Path], predictor: Predictor, batch) -> None:
    exp = load_predictor(exported[fmt])
    assert exp.backend == {"saved_model": "saved_model"}.get(fmt, fmt) and exp.precision == "fp32"
    expected = predictor.predict_arrays(batch)
    got = exp.predict_arrays(batch)
    assert got.shape == expected.shape == (7, 2)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(exp.predict_arrays(batch[:1]), expected[:1], atol=1e-4)
    assert np.ptp(expected[:, 0]) > 0.05  # the images really differ, so the match is not trivial
    assert exp.card.class_names == predictor.card.class_names and exp.model_id == "test-simplecnn"


def test_labels_agree_with_keras_on_512_images(exported: dict[str, Path], predictor: Predictor) -> None:
    images = np.stack([preprocess_rgb(cell_image(i), predictor.card) for i in range(512)])
    keras_labels = predicted_labels(predictor.predict_arrays(images), predictor.card)
    assert 0.1 < np.mean([label == "all" for label in keras_labels]) < 0.9  # both classes occur
    for fmt in ("tflite", "onnx"):
        exp = load_predictor(exported[fmt])
        agree = np.mean(np.asarray(predicted_labels(exp.predict_arrays(images), exp.card)) == keras_labels)
        assert agree >= 0.995, (fmt, agree)


def test_the_card_travels_with_each_export(exported: dict[str, Path], model_dir: Path) -> None:
    card = ModelCard.load(model_dir)
    proto = onnx.load(str(exported["onnx"]))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert ModelCard.from_dict(json.loads(meta[ONNX_CARD_KEY])) == card
    assert "0-255" in meta["leukoscope.input"] and "tf2onnx" in meta["leukoscope.exporter"]
    (inp,) = proto.graph.input
    assert inp.name == "pixels"
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 32, 32, 3]
    assert [o.name for o in proto.graph.output] == ["probabilities"]
    folder = exported["onnx"].parent
    assert ModelCard.load(folder) == card  # beside the .onnx / .tflite files
    assert ModelCard.load(exported["saved_model"]) == card  # inside the SavedModel folder
    records = json.loads((folder / EXPORTS_NAME).read_text())
    assert set(records) == set(FILES.values())
    assert {r["temperature"] for r in records.values()} == {card.temperature}


def test_saved_model_serving_signature(exported: dict[str, Path], predictor: Predictor, batch) -> None:
    """What TF Serving calls: `serving_default`, input `pixels` (float 0-255), output `probabilities`."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(exported["saved_model"])).signatures["serving_default"]
    assert list(fn.structured_input_signature[1]) == ["pixels"]
    out = fn(pixels=tf.constant(batch, tf.float32))["probabilities"].numpy()
    np.testing.assert_allclose(out, predictor.predict_arrays(batch), atol=1e-5)


def test_auto_uses_a_fresh_export_and_skips_a_stale_one(
    model_dir: Path, tmp_path: Path, batch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = Path(shutil.copytree(model_dir, tmp_path / "m"))
    assert load_predictor(folder).backend == "keras"  # nothing exported yet
    result = export_model_dir(folder, "tflite")
    assert result.path == folder / "model.tflite"
    auto = load_predictor(folder)
    assert auto.backend == "tflite"
    assert load_predictor(folder / "model.keras").backend == "keras"  # naming model.keras asks for Keras
    assert load_predictor(folder, precision="bf16").backend == "keras"  # bf16 is a Keras setting
    card = ModelCard.load(folder)
    card.temperature = 2.0  # as `calibrate` does: the export still has T = 1 baked in
    card.save(folder)
    with caplog.at_level("WARNING"):
        stale = load_predictor(folder)
    assert stale.backend == "keras" and "temperature changed" in caplog.text
    export_model_dir(folder, "tflite")
    fresh = load_predictor(folder)
    keras_pred = load_predictor(folder, backend="keras", precision="fp32")
    assert fresh.backend == "tflite" and fresh.card.temperature == 2.0
    np.testing.assert_allclose(fresh.predict_arrays(batch), keras_pred.predict_arrays(batch), atol=1e-4)
    (folder / "model.keras").write_bytes((folder / "model.keras").read_bytes() + b"\0")  # "retrained"
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert load_predictor(folder).backend == "keras"
    assert "made from another model.keras" in caplog.text


def test_first_use_builds_the_export_once_and_rebuilds_a_stale_one(
    model_dir: Path, tmp_path: Path, batch, caplog: pytest.LogCaptureFixture
) -> None:
    """`cache_export` (what `predict` and `serve` ask for): a fresh folder gets model.tflite + its record
    on the first call, later calls load it, and a recalibrated card makes the next call rebuild it."""
    folder = Path(shutil.copytree(model_dir, tmp_path / "m"))
    keras_pred = load_predictor(folder, backend="keras", precision="fp32")
    with caplog.at_level("INFO", logger="leukoscope"):
        first = load_predictor(folder, cache_export=True)
    assert first.backend == "tflite" and "building" in caplog.text and "built" in caplog.text
    record = json.loads((folder / EXPORTS_NAME).read_text())["model.tflite"]
    assert record["temperature"] == 1.0 and record["source_sha256"]
    np.testing.assert_allclose(first.predict_arrays(batch), keras_pred.predict_arrays(batch), atol=1e-4)
    caplog.clear()
    with caplog.at_level("INFO", logger="leukoscope"):
        assert load_predictor(folder, cache_export=True).backend == "tflite"
    assert "building" not in caplog.text
    card = ModelCard.load(folder)
    card.temperature = 2.0
    card.save(folder)
    with caplog.at_level("INFO", logger="leukoscope"):
        again = load_predictor(folder, cache_export=True)
    assert "temperature changed" in caplog.text and "building" in caplog.text
    assert again.backend == "tflite" and again.card.temperature == 2.0
    assert json.loads((folder / EXPORTS_NAME).read_text())["model.tflite"]["temperature"] == 2.0
    hot = load_predictor(folder, backend="keras", precision="fp32")
    np.testing.assert_allclose(again.predict_arrays(batch), hot.predict_arrays(batch), atol=1e-4)
    assert load_predictor(folder, backend="keras", cache_export=True).backend == "keras"


def test_no_export_is_built_where_it_cannot_be(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only folder, another process building it, a failed conversion: Keras runs, nothing is left."""
    import leukoscope.infer.export as export_module
    from leukoscope._io import try_lock

    folder = Path(shutil.copytree(model_dir, tmp_path / "m"))
    assert load_predictor(folder, precision="bf16", cache_export=True).backend == "keras"  # bf16: Keras
    monkeypatch.setattr(export_module.os, "access", lambda path, mode: False)
    with caplog.at_level("INFO", logger="leukoscope"):
        assert load_predictor(folder, cache_export=True).backend == "keras"
    assert "not writable" in caplog.text
    monkeypatch.undo()
    held = try_lock(export_module.cache_lock_path(folder))
    assert held is not None
    try:
        with caplog.at_level("INFO", logger="leukoscope"):
            assert load_predictor(folder, cache_export=True).backend == "keras"
        assert "another process is building" in caplog.text
    finally:
        held.close()

    def broken(saved_model: object) -> bytes:
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(export_module, "saved_model_to_tflite", broken)
    with caplog.at_level("WARNING", logger="leukoscope"):
        assert load_predictor(folder, cache_export=True).backend == "keras"
    assert "could not build" in caplog.text and "converter crashed" in caplog.text
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in model_dir.iterdir())


def test_named_backend_converts_in_memory(model_dir: Path, predictor: Predictor, tmp_path: Path) -> None:
    folder = write_mixed_folder(tmp_path / "in", good=2)["good0"].parent
    keras_rows = {Path(r.path).name: r for r in predict_paths(predictor, [folder], workers=0)}
    for backend in ("onnx", "tflite"):
        out = tmp_path / f"{backend}.json"
        args = ["predict", str(model_dir), str(folder), "--backend", backend, "--out", str(out)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        rows = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
        for name in ("good0.png", "good1.png"):
            assert rows[name]["p_all"] == pytest.approx(keras_rows[name].probabilities["all"], abs=1e-4)
        assert rows["empty.png"]["error"] and rows["notes.png"]["error"]
    assert not (model_dir / "model.onnx").exists() and not (model_dir / "model.tflite").exists()


def test_exports_without_their_card_are_refused(tmp_path: Path, exported: dict[str, Path]) -> None:
    proto = onnx.load(str(exported["onnx"]))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ModelError, match="no LeukoScope model card"):
        OnnxPredictor(bare)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_predictor(garbage)
    lonely = tmp_path / "lonely" / "m.tflite"
    lonely.parent.mkdir()
    shutil.copy(exported["tflite"], lonely)
    with pytest.raises(ModelError, match=r"no model_card\.json beside"):
        load_predictor(lonely)


def test_an_export_runs_only_on_its_backend(exported: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="cannot run on the keras backend"):
        load_predictor(exported["onnx"], backend="keras")
    with pytest.raises(ConfigError, match="runs in fp32"):
        load_predictor(exported["tflite"], precision="bf16")


def test_export_errors_are_one_line(model_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(
        app, ["export", str(model_dir), "--format", "torchscript", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code != 0 and "unknown export format" in str(bad.exception)
    wrong = runner.invoke(
        app, ["export", str(model_dir), "--format", "onnx", "--out", str(tmp_path / "m.bin")]
    )
    assert "needs a .onnx file name" in str(wrong.exception)


def test_in_model_normalization_constants_stay_constants(model_dir: Path) -> None:
    """Keras' own `model.export(format="onnx")` turns a Normalization layer's constants into required
    graph inputs (EfficientNet's; for this very model it asks for `.../normalization_1/Sub/y:0` and
    `.../Sqrt/x:0` too). Through a SavedModel the model takes `pixels` only and matches Keras."""
    import keras
    import onnxruntime as ort

    from leukoscope.infer.export import convert_in_memory

    card = ModelCard.load(model_dir)
    pixels = keras.Input((32, 32, 3), name="pixels")
    x = keras.layers.Normalization(mean=[120.0, 110.0, 100.0], variance=[900.0, 800.0, 700.0])(pixels)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(pixels, keras.layers.Dense(1, name="logits")(x))
    session = ort.InferenceSession(convert_in_memory(model, card, "onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["pixels"]
    images = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3)).astype(np.float32)
    z = np.asarray(model(images))[:, 0]
    p_all = 1 / (1 + np.exp(-z))  # the positive class "all" is index 0 here
    np.testing.assert_allclose(session.run(None, {"pixels": images})[0][:, 0], p_all, atol=1e-5)
