"""`predict` on good and broken files: every file gets a row, broken ones an error, none aborts the batch."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from leukoscope.cli.main import app
from leukoscope.errors import DataError
from leukoscope.infer.predict import find_images, predict_paths, write_predictions
from leukoscope.infer.predictor import Predictor, load_predictor, preprocess_rgb

from .helpers import cell_image, make_model_dir, write_image, write_mixed_folder

runner = CliRunner()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_mixed_folder(tmp_path_factory.mktemp("mixed"))


def _check_rows(rows: list[dict], mixed: dict[str, Path]) -> None:
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == {p.name for p in mixed.values()}
    for key, path in mixed.items():
        row = by_name[path.name]
        if key.startswith("good"):
            assert row["error"] in ("", None)
            p = float(row["p_all"]) + float(row["p_hem"])
            assert p == pytest.approx(1.0, abs=1e-5)
            assert row["predicted"] in ("all", "hem")
            assert row["model"] == "test-simplecnn"
        else:
            assert row["error"], f"{key} should have an error"
            assert row["predicted"] in ("", None) and row["p_all"] in ("", None)
    assert "truncated" in by_name["truncated.jpg"]["error"]
    assert "empty" in by_name["empty.png"]["error"]
    assert "not a readable image" in by_name["notes.png"]["error"]


def test_predict_paths_mixed_inputs_with_workers(predictor: Predictor, mixed: dict[str, Path]) -> None:
    folder = mixed["good0"].parent
    results = predict_paths(predictor, [folder], batch_size=2, workers=2)
    rows = [r.row(predictor.card.class_names) for r in results]
    _check_rows(rows, mixed)
    # label follows the card's threshold on P(positive = "all")
    for r in results:
        if not r.error:
            assert r.predicted == ("all" if r.probabilities["all"] >= 0.5 else "hem")


def test_decoding_stays_a_bounded_number_of_batches_ahead(
    predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many files, only PREFETCH + 1 batches are decoded before the first one is used."""
    import leukoscope.infer.predict as predict_module

    items = [(write_image(tmp_path / f"{i}.png", cell_image(i)), "") for i in range(40)]
    calls: list[int] = []
    real = predict_module.load_item
    monkeypatch.setattr(predict_module, "load_item", lambda item, cfg: calls.append(1) or real(item, cfg))
    batches = predict_module.decoded_batches(items, predictor.card.preprocess, 4, workers=2)
    first = next(batches)
    assert [i for i, _, _ in first] == [0, 1, 2, 3]
    assert len(calls) <= (predict_module.PREFETCH + 1) * 4
    rest = list(batches)
    assert [i for b in [first, *rest] for i, _, _ in b] == list(range(40)) and len(calls) == 40


def test_predictions_do_not_depend_on_batch_composition(predictor: Predictor, mixed: dict[str, Path]) -> None:
    alone = predict_paths(predictor, [mixed["good1"]], workers=0)[0]
    together = {r.path: r for r in predict_paths(predictor, [mixed["good0"].parent], batch_size=8, workers=0)}
    got = together[str(mixed["good1"])].probabilities
    assert got == pytest.approx(alone.probabilities, abs=1e-5)


def test_find_images_files_folders_globs(tmp_path: Path) -> None:
    a = write_image(tmp_path / "a" / "x.png", cell_image(1))
    b = write_image(tmp_path / "a" / "deep" / "y.bmp", cell_image(2))
    (tmp_path / "a" / "readme.txt").write_text("not an image")
    c = write_image(tmp_path / "c.jpg", cell_image(3))
    found = dict(find_images([tmp_path / "a", str(tmp_path / "*.jpg"), a, tmp_path / "missing.png"]))
    assert list(found) == [b, a, c, tmp_path / "missing.png"]  # sorted folder walk, dedup, no .txt
    assert found[tmp_path / "missing.png"] == "file not found"
    assert found[a] == found[b] == found[c] == ""
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        find_images([tmp_path / "empty"])


def test_cli_writes_csv_json_and_parquet(model_dir: Path, mixed: dict[str, Path], tmp_path: Path) -> None:
    import pandas as pd

    folder = str(mixed["good0"].parent)
    for suffix in (".csv", ".json", ".parquet"):
        out = tmp_path / f"preds{suffix}"
        args = ["predict", str(model_dir), folder, "--out", str(out), "--workers", "0", "--no-cache-export"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        if suffix == ".csv":
            with out.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            assert list(rows[0]) == ["path", "predicted", "p_all", "p_hem", "model", "error"]
        elif suffix == ".parquet":
            frame = pd.read_parquet(out)
            assert list(frame.columns) == ["path", "predicted", "p_all", "p_hem", "model", "error"]
            assert frame["p_all"].dtype == "float64"
            rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]
        else:
            rows = json.loads(out.read_text())
            assert isinstance(rows, list)
        _check_rows(rows, mixed)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_cli_table_without_out(model_dir: Path, mixed: dict[str, Path]) -> None:
    args = ["predict", str(model_dir), str(mixed["good0"]), str(mixed["empty"]), "--tta", "flips",
            "--no-cache-export"]  # fmt: skip
    # wide enough that rich does not fold a long temporary path in the middle of a file name
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "good0.png" in result.stdout and "empty file" in result.stdout
    assert "p_all" in result.stdout


def test_tta_rows_still_sum_to_one(predictor: Predictor, mixed: dict[str, Path]) -> None:
    plain = predict_paths(predictor, [mixed["good2"]], workers=0)[0].probabilities
    d8 = predict_paths(predictor, [mixed["good2"]], tta="d8", workers=0)[0].probabilities
    assert sum(d8.values()) == pytest.approx(1.0, abs=1e-5)
    assert d8["all"] != pytest.approx(plain["all"], abs=1e-7)  # the views were really used


def test_write_predictions_refuses_unknown_suffix(tmp_path: Path) -> None:
    from leukoscope.errors import ConfigError

    with pytest.raises(ConfigError, match=r"use \.csv, \.json or \.parquet"):
        write_predictions([], ["all", "hem"], tmp_path / "p.xlsx")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/nope", "{tmp}"], "model not found"),
        (["{model}", "{tmp}", "--out", "{tmp}/p.xlsx"], "use --out preds.csv"),
        (["{model}", "{tmp}", "--tta", "d4"], "unknown TTA mode"),
        (["{model}", "{tmp}", "--backend", "onnx", "--precision", "bf16"], "runs in fp32"),
        (["{model}", "{tmp}", "--backend", "tflite", "--compile"], "keras backend only"),
        (["{model}", "{tmp}", "--backend", "torch"], "unknown backend 'torch'"),
        (["{model}", "{tmp}", "--precision", "fp8"], "unknown precision 'fp8'"),
    ],
)
def test_user_errors_are_one_line_exit_2(
    args: list[str],
    message: str,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from leukoscope.cli.main import run

    argv = [a.format(tmp=tmp_path, model=model_dir) for a in args]
    monkeypatch.setattr(sys, "argv", ["leukoscope", "predict", *argv])
    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_exit_codes_through_the_installed_command(
    model_dir: Path, mixed: dict[str, Path], tmp_path: Path
) -> None:
    """The console script itself: a user error is one line and exit 2; a mixed folder is exit 0. On a
    fresh model folder the default path builds model.tflite once (recorded in exports.json) and runs on it;
    the next call loads it without building."""
    import shutil

    folder = Path(shutil.copytree(model_dir, tmp_path / "model"))
    exe = Path(sys.executable).with_name("leukoscope")
    bad = subprocess.run([str(exe), "predict", str(folder), str(tmp_path), "--backend", "torch"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "unknown backend" in bad.stderr and "Traceback" not in bad.stderr
    rows = {}
    for call in ("first", "second"):
        out = tmp_path / f"{call}.json"
        args = [str(exe), "predict", str(folder), str(mixed["good0"].parent), "--out", str(out)]
        good = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert good.returncode == 0, good.stderr
        assert len(json.loads(out.read_text())) == len(mixed) and "on tflite fp32" in good.stderr
        assert ("building" in good.stderr) == (call == "first"), good.stderr
        rows[call] = {r["path"]: r["p_all"] for r in json.loads(out.read_text()) if not r["error"]}
    assert json.loads((folder / "exports.json").read_text())["model.tflite"]["source_sha256"]
    assert rows["first"] == rows["second"]
    keras_rows = predict_paths(
        load_predictor(folder, backend="keras", precision="fp32"), [mixed["good0"].parent], workers=0
    )
    for r in keras_rows:
        if not r.error:
            assert rows["first"][r.path] == pytest.approx(r.probabilities["all"], abs=1e-4)


def test_auto_precision_gives_the_same_probabilities_on_every_cpu(
    model_dir: Path, predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auto is fp32 on a CPU (its features are never read): the same probabilities (within 1e-5)."""
    from leukoscope import precision

    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    auto = load_predictor(model_dir)  # the library's defaults: backend auto, precision auto
    assert (auto.backend, auto.precision) == ("keras", "fp32")
    batch = np.stack([preprocess_rgb(cell_image(i), predictor.card) for i in range(16)])
    np.testing.assert_allclose(auto.predict_arrays(batch), predictor.predict_arrays(batch), atol=1e-5)


def test_a_model_that_cannot_run_in_bf16_is_one_line(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import leukoscope.infer.keras_backend as keras_backend
    from leukoscope.cli.main import run

    def refuse(model: object, policy: str) -> object:
        raise TypeError("Operation.__init__() got an unexpected keyword argument 'dtype'\nmore detail")

    monkeypatch.setattr(keras_backend, "mixed_precision_model", refuse)
    image = write_image(tmp_path / "c.png", cell_image(1))
    monkeypatch.setattr(
        sys, "argv", ["leukoscope", "predict", str(model_dir), str(image), "--precision", "bf16"]
    )
    with pytest.raises(SystemExit) as exit_info:
        run()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert "cannot run the model in bf16 (TypeError: Operation.__init__()" in err
    assert str(model_dir / "model.keras") in err and "--precision fp32" in err and "more detail" not in err


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_a_lambda_layer_is_refused_without_running_it(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .keras file can carry Python bytecode in a Lambda layer: loading it must not run it."""
    import keras
    import uvicorn

    from leukoscope.cli.main import run
    from leukoscope.models.card import ModelCard, save_model

    marker = tmp_path / "lambda-ran"
    pixels = keras.Input((32, 32, 3), name="pixels")
    touch = keras.layers.Lambda(lambda x, m=str(marker): (__import__("pathlib").Path(m).touch(), x)[1])
    x = keras.layers.GlobalAveragePooling2D()(touch(pixels))
    model = keras.Model(pixels, keras.layers.Dense(1, name="logits")(x))
    card = ModelCard.load(make_model_dir(tmp_path / "plain"))
    folder = save_model(tmp_path / "evil", model, card)
    marker.unlink(missing_ok=True)  # building the model ran it once; loading must not
    image = write_image(tmp_path / "c.png", cell_image(1))
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started"))
    args = [str(folder), str(image)] if command == "predict" else [str(folder)]
    monkeypatch.setattr(sys, "argv", ["leukoscope", command, *args])
    with pytest.raises(SystemExit) as exit_info:
        run()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "cannot load the model" in err and str(folder / "model.keras") in err
    assert not marker.exists()


def test_bf16_and_fp32_labels_agree(model_dir: Path, predictor: Predictor) -> None:
    """Keras' mixed_bfloat16 policy must not change decisions except within rounding of the threshold."""
    from leukoscope.infer.predictor import preprocess_rgb

    fp32 = predictor
    bf16 = load_predictor(model_dir, backend="keras", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    batch = np.stack([preprocess_rgb(cell_image(i), fp32.card) for i in range(32)])
    p32, p16 = fp32.predict_arrays(batch), bf16.predict_arrays(batch)
    # the test head is untrained and stretched (logit std 2), which amplifies bf16 rounding; trained
    # models have wider margins. Decisions must agree wherever fp32 is not within rounding of 0.5.
    assert np.abs(p32 - p16).max() < 0.15
    clear = np.abs(p32[:, 0] - 0.5) > 0.1
    assert clear.sum() >= 16, "the test model should give spread-out probabilities"
    same = (p32[:, 0] >= 0.5) == (p16[:, 0] >= 0.5)
    assert same[clear].all()
    assert same.mean() >= 0.9


def test_predict_runs_an_ensemble_spec(model_dir: Path, predictor: Predictor, tmp_path: Path) -> None:
    """`load_predictor` dispatches an ensemble.json to `infer.ensemble`; a 1-model mean = the model."""
    from leukoscope.infer.spec import EnsembleSpec, save_spec

    spec = save_spec(tmp_path / "ens", EnsembleSpec(members=[str(model_dir)] * 2, class_names=["all", "hem"]))
    image = write_image(tmp_path / "c.png", cell_image(5))
    for target in (spec, spec.parent):
        ens = load_predictor(target, backend="keras", precision="fp32")
        row = predict_paths(ens, [image], workers=0)[0]
        assert row.model.startswith("ensemble-")
        assert row.probabilities == pytest.approx(
            predict_paths(predictor, [image], workers=0)[0].probabilities
        )


def test_an_ensemble_spec_written_like_the_workflow_does(
    model_dir: Path, predictor: Predictor, tmp_path: Path
) -> None:
    """The workflow writes `write_json(path, EnsembleSpec(...).to_dict())` with members relative to it."""
    import os

    from leukoscope._io import write_json
    from leukoscope.infer.spec import EnsembleSpec

    spec_file = tmp_path / "results" / "ensemble" / "ensemble.json"
    member = os.path.relpath(model_dir, spec_file.parent)
    spec = EnsembleSpec(members=[member], class_names=["hem", "all"], method="weighted", weights=[1.0])
    write_json(spec_file, spec.to_dict())
    ens = load_predictor(spec_file)
    batch = np.stack([preprocess_rgb(cell_image(i), predictor.card) for i in range(5)])
    expected = predictor.predict_arrays(batch)[:, ::-1]  # the spec's class order, not the member's
    np.testing.assert_allclose(ens.predict_arrays(batch), expected, atol=1e-6)
    assert ens.card.class_names == ["hem", "all"] and ens.backend == "keras"


def test_isbi_submission_in_numeric_order(
    model_dir: Path,
    predictor: Predictor,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import zipfile

    from leukoscope.cli.main import run

    folder = tmp_path / "C-NMC_test_final_phase_data"
    paths = [write_image(folder / f"{n}.bmp", cell_image(n)) for n in (1, 2, 10, 11, 3)]
    out = tmp_path / "sub.zip"
    result = runner.invoke(app, ["predict", str(model_dir), str(folder), "--submission", "isbi", "--out",
                                 str(out), "--workers", "0", "--precision", "fp32",
                                 "--no-cache-export"])  # fmt: skip
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as zf:
        lines = zf.read("isbi_valid.predict").decode().splitlines()
    by_number = sorted(predict_paths(predictor, paths, workers=0), key=lambda r: int(Path(r.path).stem))
    assert lines == ["1" if r.predicted == "all" else "0" for r in by_number]

    write_image(folder / "4.bmp", cell_image(4)).write_bytes(b"broken")
    argv = [
        "predict",
        str(model_dir),
        str(folder),
        "--submission",
        "isbi",
        "--out",
        str(tmp_path / "bad.zip"),
    ]
    monkeypatch.setattr(sys, "argv", ["leukoscope", *argv, "--workers", "0", "--no-cache-export"])
    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code == 2 and not (tmp_path / "bad.zip").exists()
    assert "no submission was written" in capsys.readouterr().err
