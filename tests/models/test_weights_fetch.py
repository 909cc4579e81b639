"""The `weights` rule: a backbone's ImageNet notop weights fetched once into resources/keras
(`leukoscope.models.weights.fetch_weights`), Keras' download pointed at a loopback server."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from leukoscope.models.weights import fetch_weights

MNV3_KEY = "small_224_1.0_float"
MNV3_FILE = "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def fake_mnv3_weights(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """MobileNetV3Small notop weights in Keras' legacy .h5 layout (random, not ImageNet's: no download)."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    model = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(224, 224, 3))
    path = tmp_path_factory.mktemp("w") / MNV3_FILE
    with h5py.File(path, "w") as fh:
        legacy_h5_format.save_weights_to_hdf5_group(fh, model)
    return path.read_bytes()


@pytest.fixture
def keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh KERAS_HOME for this process' already-imported Keras (the script sets it before import)."""
    from keras.src.backend import config

    home = tmp_path / "resources" / "keras"
    monkeypatch.setattr(config, "_KERAS_DIR", str(home))
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def _serve_weights(monkeypatch: pytest.MonkeyPatch, body: bytes, expected_md5: str) -> list[str]:
    """Keras' MobileNetV3 download pointed at a loopback server; the list of requests it receives."""
    from keras.src.applications import mobilenet_v3

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setattr(mobilenet_v3, "BASE_WEIGHT_PATH", f"http://127.0.0.1:{httpd.server_address[1]}/mnv3/")
    top = mobilenet_v3.WEIGHTS_HASHES[MNV3_KEY][0]
    monkeypatch.setitem(mobilenet_v3.WEIGHTS_HASHES, MNV3_KEY, (top, expected_md5))
    return hits


def test_weights_are_fetched_once_then_read_offline(
    fake_mnv3_weights: bytes,
    keras_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    md5 = hashlib.md5(fake_mnv3_weights).hexdigest()
    hits = _serve_weights(monkeypatch, fake_mnv3_weights, md5)
    record = fetch_weights("MobileNetV3Small", keras_home, record_out=keras_home / "record.json")
    assert json.loads((keras_home / "record.json").read_text()) == record  # the rule's output
    assert hits == [f"/mnv3/{MNV3_FILE}"]
    (entry,) = record["files"]
    assert entry["name"] == MNV3_FILE and entry["md5"] == entry["expected"] == md5
    assert Path(entry["path"]) == keras_home / "models" / MNV3_FILE and entry["bytes"] == len(
        fake_mnv3_weights
    )
    assert leftovers(keras_home / "models") == [MNV3_FILE]  # no temporary download folder left
    again = fetch_weights("mobilenetv3small", keras_home)
    assert hits == [f"/mnv3/{MNV3_FILE}"] and again["files"][0]["md5"] == md5  # the cache, no request


def test_a_corrupt_weights_download_leaves_nothing(
    fake_mnv3_weights: bytes,
    keras_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from leukoscope.errors import ModelError

    _serve_weights(
        monkeypatch, fake_mnv3_weights[:-100] + b"\0" * 100, hashlib.md5(fake_mnv3_weights).hexdigest()
    )
    with pytest.raises(ModelError, match="downloading ImageNet weights for MobileNetV3Small failed"):
        fetch_weights("mobilenetv3small", keras_home)
    assert leftovers(keras_home / "models") == []


def test_a_pre_placed_weights_file_is_checked_and_never_deleted(
    fake_mnv3_weights: bytes,
    keras_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the nodes have no internet at all, a copied file is used as it is (or reported, and kept)."""
    from leukoscope.errors import ModelError

    hits = _serve_weights(monkeypatch, b"", hashlib.md5(fake_mnv3_weights).hexdigest())
    placed = keras_home / "models" / MNV3_FILE
    placed.parent.mkdir(parents=True)
    placed.write_bytes(fake_mnv3_weights)
    assert fetch_weights("mobilenetv3small", keras_home)["files"][0]["path"] == str(placed)
    placed.write_bytes(fake_mnv3_weights[:1000])
    with pytest.raises(ModelError, match="damaged"):
        fetch_weights("mobilenetv3small", keras_home)
    assert hits == [] and placed.stat().st_size == 1000


def test_a_backbone_without_imagenet_weights_needs_nothing(
    keras_home: Path,
) -> None:
    record = fetch_weights("simplecnn", keras_home)
    assert record["imagenet"] is False and record["files"] == []
