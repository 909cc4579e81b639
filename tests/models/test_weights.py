"""Weight sources: bundled (exact tensors), files (.pth, .safetensors, run directory), hub (mocked)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from leukoscope.config import PreprocessConfig
from leukoscope.errors import ConfigError, ModelError
from leukoscope.models import (
    BUNDLED,
    ModelCard,
    bundled_state,
    create_classifier,
    imagenet_model,
    load_model,
    save_model,
)
from leukoscope.models import weights as weights_mod
from leukoscope.models.weights import map_by_position

ALTERNATIVE_NAMES = ("bundled", "tf_efficientnet_lite0", "mobilenetv2_100", "none", "path")


class NotAWeight:
    """A picklable object that weights_only loading must refuse."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise socket.gaierror("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def _images() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(_images())


def _seeded(name: str, num_classes: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_classifier(name, num_classes)


def _same_tensors(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_tensors_equal_the_package_file(name: str) -> None:
    model = create_classifier(name, 2, "bundled")
    entry = BUNDLED[name]
    source = torch.load(entry.locate(), map_location="cpu", weights_only=True)
    backbone_source = [v for k, v in source.items() if not k.startswith(entry.classifier_prefix)]
    loaded = list(model.backbone.state_dict().values())
    assert len(loaded) == len(backbone_source) == len(source) - 2
    assert all(torch.equal(a, b) for a, b in zip(loaded, backbone_source, strict=True))
    assert model.weights_source == "bundled"


def test_imagenet_model_keeps_the_bundled_classifier() -> None:
    model = imagenet_model("mobilenetv2_100", "bundled")
    source = bundled_state("mobilenetv2_100", keep_classifier=True)
    assert torch.equal(model.classifier.weight, source["classifier.1.weight"])
    assert torch.equal(model.classifier.bias, source["classifier.1.bias"])
    assert not model.training


def test_bundled_for_another_backbone_names_the_bundled_ones() -> None:
    with pytest.raises(ModelError) as info:
        create_classifier("resnet18", 2, "bundled")
    assert all(name in str(info.value) for name in BUNDLED)


def test_position_mapping_refuses_shape_mismatch() -> None:
    source = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    with pytest.raises(ModelError, match="does not match"):
        map_by_position(source, {"x": torch.zeros(2, 3), "y": torch.zeros(5)}, "test")
    with pytest.raises(ModelError, match="tensors"):
        map_by_position(source, {"x": torch.zeros(2, 3)}, "test")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_whole_classifier_file_round_trip(tmp_path: Path, suffix: str) -> None:
    source = _seeded("resnet18", 2, seed=1)
    path = tmp_path / f"weights{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    torch.save(state, path) if suffix == ".pth" else save_file(state, str(path))
    loaded = create_classifier("resnet18", 2, str(path))
    assert torch.equal(_outputs(loaded), _outputs(source))
    assert loaded.weights_source == str(path)


def test_backbone_file_and_timm_imagenet_file_load_the_backbone(tmp_path: Path) -> None:
    source = _seeded("resnet18", 2, seed=2)
    torch.save(source.backbone.state_dict(), tmp_path / "backbone.pt")
    loaded = create_classifier("resnet18", 2, str(tmp_path / "backbone.pt"))
    assert _same_tensors(loaded.backbone.state_dict(), source.backbone.state_dict())

    timm_model = timm.create_model("resnet18")  # 1000-class ImageNet layout: fc.* is dropped
    torch.save({"state_dict": timm_model.state_dict()}, tmp_path / "imagenet.pth")
    loaded = create_classifier("resnet18", 2, str(tmp_path / "imagenet.pth"))
    expected = {k: v for k, v in timm_model.state_dict().items() if not k.startswith("fc.")}
    assert _same_tensors(loaded.backbone.state_dict(), expected)


def test_run_directory_round_trip(tmp_path: Path) -> None:
    source = _seeded("resnet18", 2, seed=3)
    card = ModelCard(backbone="resnet18", class_names=["hem", "all"], preprocess=PreprocessConfig())
    save_model(tmp_path / "run", source, card)
    expected = _outputs(source)
    restored, restored_card = load_model(tmp_path / "run")
    assert torch.equal(_outputs(restored), expected) and restored_card.backbone == "resnet18"
    for spec in (tmp_path / "run", tmp_path / "run" / "model.safetensors"):
        assert torch.equal(_outputs(create_classifier("resnet18", 2, str(spec))), expected)

    three = create_classifier("resnet18", 3, str(tmp_path / "run"))  # head does not fit: backbone only
    assert _same_tensors(three.backbone.state_dict(), source.backbone.state_dict())
    assert three.head[-1].out_features == 3


def test_run_directory_of_another_backbone_is_refused(tmp_path: Path) -> None:
    source = create_classifier("resnet18", 2)
    card = ModelCard(backbone="resnet18", class_names=["hem", "all"], preprocess=PreprocessConfig())
    save_model(tmp_path, source, card)
    with pytest.raises(ModelError, match="holds a 'resnet18' model"):
        create_classifier("mobilenetv2_100", 2, str(tmp_path))


def test_key_mismatch_is_one_clear_line(tmp_path: Path) -> None:
    torch.save(create_classifier("mobilenetv2_100", 2).state_dict(), tmp_path / "other.pth")
    with pytest.raises(ModelError) as info:
        create_classifier("resnet18", 2, str(tmp_path / "other.pth"))
    message = str(info.value)
    assert "do not fit backbone 'resnet18'" in message and "missing" in message and "unexpected" in message
    assert "\n" not in message


def test_pickle_that_needs_more_than_weights_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "extra": NotAWeight()}, path)
    with pytest.raises(ModelError, match="arbitrary pickle"):
        create_classifier("resnet18", 2, str(path))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="unreadable"):
        create_classifier("resnet18", 2, str(tmp_path / "junk.pt"))


def test_unknown_weight_strings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown weights 'imagenet'"):
        create_classifier("resnet18", 2, "imagenet")
    with pytest.raises(ModelError, match="not found"):
        create_classifier("resnet18", 2, str(tmp_path / "missing.safetensors"))


def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, offline: bool) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)  # read at import, so patch the constant too
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))


def test_hub_offline_is_one_line_naming_alternatives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _offline(monkeypatch, tmp_path, offline=True)
    with pytest.raises(ModelError) as info:
        create_classifier("resnet18", 2, "hub")
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message and "\n" not in message
    assert all(word in message for word in ALTERNATIVE_NAMES)


def test_hub_unreachable_reads_the_cache_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import constants

    _offline(monkeypatch, tmp_path, offline=False)
    with pytest.raises(ModelError, match="unreachable") as info:
        imagenet_model("resnet18", "hub")
    assert all(word in str(info.value) for word in ALTERNATIVE_NAMES)
    assert constants.HF_HUB_OFFLINE is False  # restored after the cache-only attempt


def test_hub_weights_load_through_timm_pretrained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """timm's own pretrained loading, pointed at a local file instead of the hub."""
    torch.manual_seed(4)
    reference = timm.create_model("resnet18")
    path = tmp_path / "resnet18.safetensors"
    save_file(reference.state_dict(), str(path))
    original = timm.create_model

    def from_local_file(name: str, pretrained: bool = False, **kwargs: object) -> torch.nn.Module:
        if pretrained:
            kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        return original(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(weights_mod.timm, "create_model", from_local_file)
    model = create_classifier("resnet18", 2, "hub")
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    assert _same_tensors(model.backbone.state_dict(), expected)
    assert model.weights_source == "hub"
    full = imagenet_model("resnet18", "hub")
    assert torch.equal(full.fc.weight, reference.fc.weight) and not full.training
