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
from leukoscope.models.backbones import BACKBONES
from leukoscope.models.card import load_keras
from leukoscope.models.factory import ClassifierSpec, build_classifier
from leukoscope.models.layers import IMAGENET_MEAN, IMAGENET_STD
from leukoscope.models.weight_files import HEAD_LAYERS, weights_kind

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


def _notop_file(path: Path, application: str = "EfficientNetB0") -> tuple[str, list[np.ndarray]]:
    """A notop weights file in the legacy HDF5 layout Keras publishes: random kernels, a known stem kernel,
    and (EfficientNet) the published files' Normalization statistics: ImageNet's mean, and its std stored
    as the variance (the quirk Keras' extra Rescaling(1/sqrt(std)) makes up for). (md5, weights in order)"""
    base = getattr(keras.applications, application)(include_top=False, weights=None, input_shape=(32, 32, 3))
    if "stem_conv" in [layer.name for layer in base.layers]:
        stem = base.get_layer("stem_conv")
        stem.set_weights([np.full_like(w, 0.125) for w in stem.get_weights()])
    for layer in base.layers:
        if isinstance(layer, keras.layers.Normalization):
            count = layer.get_weights()[2]
            layer.set_weights([np.float32(IMAGENET_MEAN), np.float32(IMAGENET_STD), count])
    with h5py.File(path, "w") as fh:
        save_weights_to_hdf5_group(fh, base)
    weights = [w for layer in base.layers for w in layer.get_weights()]
    return hashlib.md5(path.read_bytes()).hexdigest(), weights


def _imagenet_like_file(path: Path) -> tuple[str, np.ndarray]:
    md5, _ = _notop_file(path)
    with h5py.File(path) as fh:
        group = fh["stem_conv"]
        return md5, np.asarray(group[_name(group.attrs["weight_names"][0])])


def _name(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _features(model: keras.Model, pixels: np.ndarray) -> np.ndarray:
    """The backbone's last feature map: what a start from ImageNet weights is about (the head is random)."""
    return np.asarray(keras.Model(model.input, model.get_layer("top_activation").output)(pixels))


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    """Equal up to float rounding, on the scale of the values (random-weight features are tiny)."""
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def _differs(got: np.ndarray, want: np.ndarray) -> bool:
    return float(np.abs(got - want).max()) > 0.05 * float(np.abs(want).max())


def _backbone_weights(model: keras.Model) -> list[np.ndarray]:
    return [w for layer in model.layers if layer.name not in HEAD_LAYERS for w in layer.get_weights()]


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
    (tmp_path / "b2.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    assert weights_kind(str(tmp_path / "b2.h5")) == "backbone.h5"
    with pytest.raises(ConfigError, match="unknown weights 'hub'"):
        weights_kind("hub")
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"cannot start from w\.pth"):
        weights_kind(str(tmp_path / "w.pth"))


def test_a_keras_notop_file_is_the_imagenet_model_offline(
    tmp_path: Path, keras_home: Path, no_network: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """model.weights: a copy of Keras' notop file gives what weights="imagenet" gives, with no network:
    the same weights, and EfficientNet's ImageNet-only Rescaling, so the same input normalisation."""
    offline = tmp_path / "offline" / "my-b0-weights.h5"
    offline.parent.mkdir()
    md5, weights = _notop_file(offline)
    cached = keras_home / "models" / NOTOP
    cached.write_bytes(offline.read_bytes())
    top_md5 = efficientnet.WEIGHTS_HASHES["b0"][0]
    monkeypatch.setitem(efficientnet.WEIGHTS_HASHES, "b0", (top_md5, md5))
    from_cache, _ = build_classifier(_spec(), "imagenet")
    cached.unlink()  # the path must not need the cache
    from_file, _ = build_classifier(_spec(), str(offline))
    assert no_network == []
    for got, want in zip(_backbone_weights(from_file), weights, strict=True):  # (a) exactly those weights
        np.testing.assert_array_equal(got, want)
    pixels = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    reference = _features(from_cache, pixels)
    _assert_same(_features(from_file, pixels), reference)  # (b) the same input normalisation
    # the pitfall, to show the comparison has teeth: the file loaded into a weights=None build
    plain = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    plain.load_weights(str(offline))
    standardize = keras.Model(from_cache.input, from_cache.get_layer("standardize").output)
    pitfall = np.asarray(plain(standardize(pixels)))
    assert _differs(pitfall, reference)


def test_every_efficientnet_build_has_the_imagenet_architecture(
    tmp_path: Path, keras_home: Path, no_network: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built with none (as every trained model is rebuilt for export) and given the trained weights, an
    EfficientNet computes what the ImageNet-started one did."""
    md5, _ = _notop_file(keras_home / "models" / NOTOP)
    monkeypatch.setitem(efficientnet.WEIGHTS_HASHES, "b0", (efficientnet.WEIGHTS_HASHES["b0"][0], md5))
    trained, _ = build_classifier(_spec(), "imagenet")
    rebuilt, _ = build_classifier(_spec(), "none")  # train.session.export_model's way, then save_model's
    assert [type(x).__name__ for x in rebuilt.layers] == [type(x).__name__ for x in trained.layers]
    rebuilt.set_weights(trained.get_weights())
    rebuilt.save(str(tmp_path / "model.keras"))
    exported = load_keras(tmp_path / "model.keras")
    pixels = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    _assert_same(np.asarray(exported(pixels)), np.asarray(trained(pixels)))
    assert no_network == []


def test_imagenet_layout_backbones_are_the_ones_keras_builds_differently() -> None:
    """A Keras upgrade that makes another architecture depend on weights == "imagenet" fails here."""
    import importlib
    import inspect
    import re

    specs = [BACKBONES.get(name) for name in BACKBONES.names() if name != "simplecnn"]
    differs = set()
    for spec in specs:
        module = importlib.import_module(getattr(keras.applications, spec.label).__module__)
        for block in re.findall(
            r'\n( *)if weights == "imagenet":\n((?:\1 +.*\n|\n)+)', inspect.getsource(module)
        ):
            if "layers." in block[1]:
                differs.add(spec.name)
    assert differs == {s.name for s in specs if s.imagenet_layout}
    assert "efficientnetb2" in differs and "densenet201" not in differs


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other backbone", r"mobilenetv3small\.h5 does not fit EfficientNetB0 \(.*layer"),
        ("other shapes", r"reshaped\.h5 does not fit EfficientNetB0 \(.*shape"),
        ("not hdf5", r"garbage\.h5 is not a Keras weights file"),
        ("missing", r"the start weights file does not exist"),
    ],
)
def test_a_backbone_file_that_does_not_fit_is_one_line(
    tmp_path: Path, no_network: list[object], case: str, message: str
) -> None:
    if case == "other backbone":
        path = tmp_path / "mobilenetv3small.h5"
        _notop_file(path, "MobileNetV3Small")
    elif case == "other shapes":
        path = tmp_path / "reshaped.h5"
        _notop_file(path)
        with h5py.File(path, "r+") as fh:
            group = fh["stem_conv"]
            kernel = _name(group.attrs["weight_names"][0])  # Keras 3 writes 'stem_conv/kernel'
            del group[kernel]
            group[kernel] = np.zeros((3, 3, 3, 16), np.float32)
    elif case == "not hdf5":
        path = tmp_path / "garbage.h5"
        path.write_text("<html>a login page saved as the weights</html>")
    else:
        path = tmp_path / "absent" / "efficientnetb0_notop.h5"
    with pytest.raises((ModelError, ConfigError), match=message) as info:
        build_classifier(_spec(), str(path))
    line = info.value.one_line()
    assert "\n" not in line and str(path.name) in line and len(line) < 600
    if case == "other backbone":
        assert "efficientnetb0_notop.h5" in line  # the file Keras would have wanted
    assert no_network == []


def test_a_model_of_another_backbone_does_not_fit(tmp_path: Path) -> None:
    source, _ = build_classifier(_spec("simplecnn"))
    source.save(str(tmp_path / "simple.keras"))
    source.save_weights(str(tmp_path / "simple.weights.h5"))
    with pytest.raises(ModelError, match=r"simple\.keras does not fit EfficientNetB0: its backbone has 8"):
        build_classifier(_spec(), str(tmp_path / "simple.keras"))
    with pytest.raises(ModelError, match=r"simple\.weights\.h5 does not fit EfficientNetB0: \d+ backbone"):
        build_classifier(_spec(), str(tmp_path / "simple.weights.h5"))


def test_a_keras_model_transfers_its_whole_backbone_whatever_keras_named_its_layers(tmp_path: Path) -> None:
    """Unnamed layers (EfficientNet's Normalization) are numbered per process: normalization_7 here,
    normalization_2 there; the backbone is copied in order, so its statistics come along."""
    source, _ = build_classifier(_spec())
    norm = next(x for x in source.layers if isinstance(x, keras.layers.Normalization))
    norm.set_weights([np.float32(IMAGENET_MEAN), np.float32(IMAGENET_STD), norm.get_weights()[2]])
    source.save(str(tmp_path / "b0.keras"))
    model, _ = build_classifier(_spec(classes=3), str(tmp_path / "b0.keras"))
    copied = next(x for x in model.layers if isinstance(x, keras.layers.Normalization))
    assert copied.name != norm.name  # the situation the test is about
    np.testing.assert_array_equal(copied.get_weights()[1], np.float32(IMAGENET_STD))
    pixels = np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    _assert_same(_features(model, pixels), _features(load_keras(tmp_path / "b0.keras"), pixels))
