"""Start weights: ImageNet through Keras' cache (no network when the file is there), files, transfer."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from keras.src.applications import efficientnet
from keras.src.backend import config as keras_config
from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

from leukoscope.errors import ConfigError, ModelError
from leukoscope.models.factory import ClassifierSpec, build_classifier
from leukoscope.models.weights import weights_kind

STATS = {"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.2, 0.2)}
NOTOP = "efficientnetb0_notop.h5"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every attempt to open a connection is recorded and refused."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: refuse(*a))
    return attempts


@pytest.fixture
def keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "keras"
    (home / "models").mkdir(parents=True)
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    return home


def _imagenet_like_file(path: Path) -> tuple[str, np.ndarray]:
    """A notop weights file in the legacy HDF5 layout Keras publishes (random values, a known stem kernel)."""
    base = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    stem = base.get_layer("stem_conv")
    stem.set_weights([np.full_like(w, 0.125) for w in stem.get_weights()])
    with h5py.File(path, "w") as fh:
        save_weights_to_hdf5_group(fh, base)
    return hashlib.md5(path.read_bytes()).hexdigest(), stem.get_weights()[0]


def _spec(backbone: str = "efficientnetb0", classes: int = 2) -> ClassifierSpec:
    return ClassifierSpec(backbone, classes, 32, **STATS)  # type: ignore[arg-type]


def test_imagenet_file_in_the_keras_cache_is_used_without_network(
    keras_home: Path, no_network: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    md5, stem = _imagenet_like_file(keras_home / "models" / NOTOP)
    top_md5 = efficientnet.WEIGHTS_HASHES["b0"][0]
    monkeypatch.setitem(efficientnet.WEIGHTS_HASHES, "b0", (top_md5, md5))  # our file is "the" published one
    model, _ = build_classifier(_spec(), "imagenet")
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0], stem)
    assert no_network == []
    # built with ImageNet weights, EfficientNet adds its extra Rescaling(1/sqrt(std)) (KERAS-FACTS pitfall)
    rescalings = [layer for layer in model.layers if isinstance(layer, keras.layers.Rescaling)]
    assert len(rescalings) == 2


def test_damaged_cached_file_is_reported_and_kept(keras_home: Path, no_network: list[object]) -> None:
    cached = keras_home / "models" / NOTOP
    cached.write_bytes(b"not the weights")
    with pytest.raises(ModelError, match="damaged") as info:
        build_classifier(_spec(), "imagenet")
    assert "\n" not in str(info.value) and cached.read_bytes() == b"not the weights"  # Keras would delete it


def test_missing_file_offline_is_one_line_naming_file_and_place(
    keras_home: Path, no_network: list[object]
) -> None:
    start = time.monotonic()
    with pytest.raises(ModelError) as info:
        build_classifier(_spec(), "imagenet")
    message = str(info.value)
    assert "unreachable" in message and str(keras_home / "models" / NOTOP) in message
    assert "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5" in message
    assert "\n" not in message and time.monotonic() - start < 30


def test_simplecnn_has_no_imagenet_weights() -> None:
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        build_classifier(_spec("simplecnn"), "imagenet")


def test_weights_h5_round_trip_and_other_head_is_skipped(tmp_path: Path) -> None:
    model, _ = build_classifier(_spec("simplecnn"))
    path = tmp_path / "start.weights.h5"
    model.save_weights(str(path))
    again, _ = build_classifier(_spec("simplecnn"), str(path))
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    three, _ = build_classifier(_spec("simplecnn", classes=3), str(path))  # logits do not fit: skipped
    np.testing.assert_array_equal(
        three.get_layer("block1_conv").get_weights()[0], model.get_layer("block1_conv").get_weights()[0]
    )


def test_keras_model_or_folder_transfers_matching_layers(tmp_path: Path) -> None:
    source, _ = build_classifier(_spec("simplecnn", classes=3))
    folder = tmp_path / "run"
    folder.mkdir()
    source.save(str(folder / "model.keras"))
    for start in (folder, folder / "model.keras"):
        model, _ = build_classifier(_spec("simplecnn"), str(start))
        np.testing.assert_array_equal(
            model.get_layer("head_dense").get_weights()[0], source.get_layer("head_dense").get_weights()[0]
        )


def test_unknown_weight_strings(tmp_path: Path) -> None:
    assert weights_kind("ImageNet") == "imagenet" and weights_kind("none") == "none"
    with pytest.raises(ConfigError, match="unknown weights 'hub'"):
        weights_kind("hub")
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"cannot start from w\.pth"):
        weights_kind(str(tmp_path / "w.pth"))
