"""ONNX export: same probabilities as PyTorch fp32, the card travels inside, predict runs on onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from leukoscope.cli.main import app
from leukoscope.errors import ModelError
from leukoscope.infer.export import export_model_dir
from leukoscope.infer.predict import predict_paths
from leukoscope.infer.predictor import ONNX_CARD_KEY, OnnxPredictor, Predictor, load_predictor, preprocess_rgb
from leukoscope.models.card import ModelCard

from .helpers import cell_image, write_mixed_folder


@pytest.fixture(scope="module")
def onnx_file(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    result = CliRunner().invoke(app, ["export", str(model_dir), "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["path"] == str(out)
    return out


def test_onnx_matches_pytorch_fp32(onnx_file: Path, predictor: Predictor) -> None:
    onnx_pred = load_predictor(onnx_file)
    assert onnx_pred.backend == "onnx"
    batch = np.stack([preprocess_rgb(cell_image(i), predictor.card) for i in range(7)])  # odd batch: dynamic
    expected = predictor.predict_arrays(batch)
    got = onnx_pred.predict_arrays(batch)
    assert got.shape == expected.shape == (7, 2)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(onnx_pred.predict_arrays(batch[:1]), expected[:1], atol=1e-4)
    assert np.ptp(expected[:, 0]) > 0.05  # the images really differ, so the match is not trivial


def test_card_and_io_are_in_the_metadata(onnx_file: Path, model_dir: Path) -> None:
    proto = onnx.load(str(onnx_file))
    meta = {p.key: p.value for p in proto.metadata_props}
    card = ModelCard.from_dict(json.loads(meta[ONNX_CARD_KEY]))
    assert card == ModelCard.load(model_dir)
    assert "mean" in meta["leukoscope.input"] and meta["leukoscope.exporter"] in ("torchscript", "dynamo")
    (inp,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 64, 64]
    assert [o.name for o in proto.graph.output] == ["probabilities"]


def test_predict_backend_onnx_from_file_and_run_dir(
    onnx_file: Path, model_dir: Path, predictor: Predictor, tmp_path: Path
) -> None:
    folder = write_mixed_folder(tmp_path / "in", good=2)["good0"].parent
    outputs = {}
    for name, model in (("file", onnx_file), ("dir", model_dir)):
        out = tmp_path / f"{name}.json"
        args = ["predict", str(model), str(folder), "--backend", "onnx", "--out", str(out), "--workers", "0"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        outputs[name] = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    torch_rows = {Path(r.path).name: r for r in predict_paths(predictor, [folder], workers=0)}
    for name in ("good0.png", "good1.png"):
        for rows in outputs.values():
            assert rows[name]["p_all"] == pytest.approx(torch_rows[name].probabilities["all"], abs=1e-4)
            assert rows[name]["model"] == "test-tf_efficientnet_lite0"
    assert outputs["file"]["empty.png"]["error"] and outputs["dir"]["notes.png"]["error"]


def test_onnx_without_card_is_refused(tmp_path: Path, onnx_file: Path) -> None:
    proto = onnx.load(str(onnx_file))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ModelError, match="no LeukoScope model card"):
        OnnxPredictor(bare)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_predictor(garbage)


def test_torch_backend_cannot_run_onnx(onnx_file: Path) -> None:
    from leukoscope.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot run on the torch backend"):
        load_predictor(onnx_file, backend="torch")


def test_export_default_path(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(model_dir, tmp_path / "run"))
    result = export_model_dir(copy)
    assert result.path == copy / "model.onnx" and result.path.is_file()
