"""Start weights from a file: what kind a `--weights` value is; loading it so that it fits, or says why not.

- a Keras applications weights file (`.h5`, e.g. Keras' own `efficientnetb2_notop.h5` copied to an offline
  cluster): the backbone is built exactly as `weights="imagenet"` builds it, with Keras' `get_file`
  answering this file (no hash check, no network). EfficientNet adds an ImageNet-only `Rescaling` layer
  when built for ImageNet weights; loading the same file into a `weights=None` build would give it the
  wrong input normalisation. Backbones whose architecture depends on that (`BackboneSpec.imagenet_layout`)
  are therefore always built the ImageNet way, also without weights, so every start (and every rebuild of
  a trained model) has one architecture;
- a `.weights.h5` (Keras weights of a LeukoScope model of the same backbone) or a `.keras` model / model
  folder: every backbone layer must fit (checked, not assumed); a head that differs (other classes) starts
  fresh, with a note.

A file that does not fit is one line naming it and what does not fit (`ModelError`); a path that is missing
or not the file it claims to be is one line before any data is read (`ConfigError`, `weights_kind`).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from leukoscope.errors import ConfigError, ModelError

log = logging.getLogger(__name__)
MODEL_FILE = "model.keras"
HEAD_LAYERS = frozenset({"head_pool", "head_dense", "head_dropout", "logits"})  # models.factory's head
_HDF5 = b"\x89HDF\r\n\x1a\n"
_ZIP = b"PK\x03\x04"
_NO_WEIGHTS = "<leukoscope: the ImageNet architecture, no weights>"
_SUFFIXES = (".h5", ".hdf5", ".keras")


def weights_kind(weights: str) -> str:
    """imagenet | none | backbone.h5 | weights.h5 | keras for a --weights value; a file is checked by its
    first bytes (cheap, no Keras)."""
    text = str(weights).strip()
    if text.lower() in ("imagenet", "none"):
        return text.lower()
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            _expect(path / MODEL_FILE, _ZIP, "a .keras model")
            return "keras"
        raise ConfigError(
            "this folder holds no model.keras", path=path, hint="give a LeukoScope model folder or a file"
        )
    name = path.name.lower()
    if path.is_file():
        if name.endswith(".weights.h5"):
            _expect(path, _HDF5, "a Keras .weights.h5 file")
            return "weights.h5"
        if name.endswith((".h5", ".hdf5")):
            _expect(path, _HDF5, "a Keras weights file (HDF5)")
            return "backbone.h5"
        if name.endswith(".keras"):
            _expect(path, _ZIP, "a .keras model")
            return "keras"
        raise ConfigError(
            f"cannot start from {path.name}",
            path=path,
            hint="give Keras' notop .h5 weights, a .weights.h5 file, a .keras model or a model folder",
        )
    if "/" in text or "\\" in text or name.endswith(_SUFFIXES):
        raise ConfigError(
            "the start weights file does not exist",
            path=path.absolute(),
            hint="fix model.weights / --weights (relative paths start in the working directory)",
        )
    raise ConfigError(
        f"unknown weights {weights!r}",
        hint="choose imagenet, none, or an existing .h5 / .weights.h5 / .keras file or model folder",
    )


def _expect(path: Path, magic: bytes, what: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(2048 + len(magic))
    offsets = (0, 512, 1024, 2048) if magic == _HDF5 else (0,)  # HDF5 may follow a user block
    if not any(head[o : o + len(magic)] == magic for o in offsets):
        raise ConfigError(f"{path.name} is not {what}", path=path, hint="is it the file you meant?")


def start_file(weights: str) -> Path | None:
    """The file a --weights value reads (a model folder's model.keras), None for imagenet / none."""
    kind = weights_kind(weights)
    if kind in ("imagenet", "none"):
        return None
    path = Path(str(weights).strip()).expanduser()
    return path / MODEL_FILE if path.is_dir() else path


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line (Keras' messages span lines and list every tensor)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the backbone, built the Keras way -------------------------------------------------------------------


@contextlib.contextmanager
def keras_backbone_weights(label: str, weights: str, imagenet_layout: bool) -> Iterator[str | None]:
    """The `weights` argument for a keras.applications builder, with Keras' file access routed so that the
    build is `weights="imagenet"`'s for an ImageNet start, a backbone file, or an `imagenet_layout` backbone
    (then loading nothing); plain `None` otherwise (the weights, if any, are loaded into the classifier)."""
    from leukoscope.models.weights import guarded_downloads

    kind = weights_kind(weights)
    if kind == "imagenet":
        with guarded_downloads(label):
            yield "imagenet"
    elif kind == "backbone.h5":
        with _routed(label, Path(str(weights).strip()).expanduser()):
            yield "imagenet"
    elif imagenet_layout:
        with _routed(label, None):
            yield "imagenet"
    else:
        yield None


@contextlib.contextmanager
def _routed(label: str, path: Path | None) -> Iterator[None]:
    """Keras' `get_file` answers `path` (or a marker meaning "no weights"); loading it fails in one line."""
    from keras.src.saving import saving_api
    from keras.src.utils import file_utils

    real_get, real_load = file_utils.get_file, saving_api.load_weights
    asked: dict[str, Any] = {}

    def get_file(fname: str | None = None, origin: str | None = None, **kwargs: Any) -> str:
        asked.update(fname=fname, md5=kwargs.get("file_hash") or kwargs.get("md5_hash"))
        return str(path) if path is not None else _NO_WEIGHTS

    def load_weights(model: Any, filepath: Any, *args: Any, **kwargs: Any) -> Any:
        if str(filepath) == _NO_WEIGHTS:
            return None
        if path is None or str(filepath) != str(path):
            return real_load(model, filepath, *args, **kwargs)
        try:
            real_load(model, filepath, *args, **kwargs)
        except Exception as exc:  # other layers or shapes (ValueError), not Keras' layout (KeyError, ...)
            wanted = f" ({asked['fname']})" if asked.get("fname") else ""
            raise ModelError(
                f"{path.name} does not fit {label} ({one_line(exc)})",
                path=path,
                hint=f"give Keras' notop weights of {label}{wanted}, or fix model.weights / --weights",
            ) from None
        _note_origin(path, label, asked)
        return None

    file_utils.get_file, saving_api.load_weights = get_file, load_weights
    try:
        yield
    finally:
        file_utils.get_file, saving_api.load_weights = real_get, real_load


def _note_origin(path: Path, label: str, asked: dict[str, Any]) -> None:
    from leukoscope.data.hashing import file_digest

    expected = asked.get("md5")
    if not expected:
        log.info("%s: backbone weights from %s", label, path)
        return
    algorithm = "sha256" if len(expected) == 64 else "md5"
    actual = file_digest(path, algorithm)
    if actual == expected:
        log.info("%s: backbone weights from %s (Keras' %s, %s ok)", label, path, asked["fname"], algorithm)
    else:
        log.warning(
            "%s: %s is not Keras' published %s (%s %s, expected %s): using it as given",
            label, path, asked.get("fname"), algorithm, actual, expected,
        )  # fmt: skip


# -- a LeukoScope model's weights into a new classifier ---------------------------------------------------


def load_weights_file(model: Any, weights: str, label: str) -> None:
    """Load a .weights.h5 or .keras source into the classifier `model` of backbone `label`."""
    kind = weights_kind(weights)
    path = Path(str(weights).strip()).expanduser()
    if kind == "weights.h5":
        _load_h5(model, path, label)
    elif kind == "keras":
        _copy_layers(model, path / MODEL_FILE if path.is_dir() else path, label)


def _load_h5(model: Any, path: Path, label: str) -> None:
    """Every variable is first set to NaN, so what the file did not fill is known exactly (Keras skips
    some containers with only a warning): the head may start fresh (another head), the backbone may not."""
    import numpy as np

    fresh = [v.numpy() for v in model.weights]
    for v in model.weights:
        if "float" in str(v.dtype):
            v.assign(np.full(v.shape, np.nan, dtype=v.dtype))
    first = ""
    try:
        with warnings.catch_warnings():  # Keras prints every skipped tensor in full
            warnings.simplefilter("ignore")
            try:
                model.load_weights(str(path))
            except Exception as exc:  # another head: keep what fits, then see what that was
                first = f"; {one_line(exc, 160)}"
                model.load_weights(str(path), skip_mismatch=True)
    except Exception as exc:
        _restore(model, fresh)
        raise ModelError(f"{path.name} does not fit {label} ({one_line(exc)})", path=path) from None
    unfilled = [layer.name for layer in model.layers if any(np.isnan(w).any() for w in _float_weights(layer))]
    _restore(model, fresh, only_nan=True)
    backbone = [name for name in unfilled if name not in HEAD_LAYERS]
    if backbone:
        raise ModelError(
            f"{path.name} does not fit {label}: {len(backbone)} backbone layers get nothing from it "
            f"(e.g. {backbone[0]}{first})",
            path=path,
            hint="start from weights of a model with the same backbone",
        )
    for layer in model.layers:
        refresh(layer)
    if unfilled:
        log.warning("loaded %s; the head's %s start fresh%s", path.name, ", ".join(unfilled), first)


def _float_weights(layer: Any) -> list[Any]:
    return [w for w in layer.get_weights() if w.dtype.kind == "f"]


def _restore(model: Any, fresh: list[Any], only_nan: bool = False) -> None:
    import numpy as np

    for variable, value in zip(model.weights, fresh, strict=True):
        if not only_nan:
            variable.assign(value)
        elif "float" in str(variable.dtype):
            current = variable.numpy()
            if np.isnan(current).any():
                variable.assign(np.where(np.isnan(current), value, current))


def _copy_layers(model: Any, path: Path, label: str) -> None:
    """The backbone layer by layer in order (Keras numbers unnamed layers per process, so names differ
    between runs: `normalization_3`), every one required to fit; head layers by name where shapes fit."""
    from leukoscope.models.card import load_keras

    source = load_keras(path)
    mine = [layer for layer in model.layers if layer.weights and layer.name not in HEAD_LAYERS]
    theirs = [layer for layer in source.layers if layer.weights and layer.name not in HEAD_LAYERS]
    problem = _first_misfit(mine, theirs)
    if problem:
        raise ModelError(
            f"{path.name} does not fit {label}: {problem}",
            path=path,
            hint="start from a model with the same backbone, or use imagenet / none",
        )
    for a, b in zip(mine, theirs, strict=True):
        a.set_weights(b.get_weights())
        refresh(a)
    by_name = {layer.name: layer for layer in source.layers}
    skipped = []
    for layer in model.layers:
        other = by_name.get(layer.name)
        if layer.name not in HEAD_LAYERS or not layer.weights:
            continue
        if other is not None and _shapes(layer) == _shapes(other):
            layer.set_weights(other.get_weights())
        else:
            skipped.append(layer.name)
    note = f"; the head's {', '.join(skipped)} start fresh" if skipped else ""
    log.info("copied the %d backbone layers of %s%s", len(mine), path, note)


def refresh(layer: Any) -> None:
    """What Keras' loaders do after loading and `set_weights` does not: a Normalization layer computes with
    a copy of its statistics that only `finalize_state()` renews (else it keeps the old ones)."""
    if hasattr(layer, "finalize_state"):
        layer.finalize_state()


def _shapes(layer: Any) -> list[tuple[int, ...]]:
    return [tuple(w.shape) for w in layer.weights]


def _first_misfit(mine: list[Any], theirs: list[Any]) -> str:
    if len(mine) != len(theirs):
        return f"its backbone has {len(theirs)} layers with weights, this one {len(mine)}"
    for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        if _shapes(a) != _shapes(b):
            return (
                f"layer #{i} ({a.name}) has weights of shapes {_shapes(a)}, the file's {b.name} {_shapes(b)}"
            )
    return ""
