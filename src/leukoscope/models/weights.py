"""ImageNet start weights: `--weights imagenet` (files: `leukoscope.models.weight_files`).

`imagenet` is Keras' own download into `$KERAS_HOME/models` (default `~/.keras/models`). Keras' downloader
has no timeout and, when a cached file's hash is wrong and the download fails, deletes the cached file; so
every `get_file` call made while a backbone is built goes through `guarded_downloads()`: a valid cached
file is used with no network call, a damaged one is reported (and kept), a missing one is fetched only
when the host answers within seconds, else one line names the file and where to put it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from leukoscope.data.hashing import file_digest
from leukoscope.errors import ConfigError, ModelError

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 5.0
DOWNLOAD_TIMEOUT_S = 60.0


def keras_cache_dir() -> Path:
    """The folder Keras reads ImageNet weights from (`$KERAS_HOME/models`, read when Keras is imported)."""
    from keras.src.backend import config

    return Path(os.path.expanduser(config.keras_home())) / "models"


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def guarded_downloads(backbone: str) -> Iterator[list[dict[str, Any]]]:
    """Route Keras' `get_file` through `_guarded_get_file`; yields the list of files it was asked for."""
    from keras.src.utils import file_utils

    real = file_utils.get_file
    requests: list[dict[str, Any]] = []

    def guarded(fname: str | None = None, origin: str | None = None, **kwargs: Any) -> str:
        requests.append({"fname": fname, "origin": origin, **kwargs})
        return _guarded_get_file(real, backbone, fname, origin, **kwargs)

    file_utils.get_file = guarded
    try:
        yield requests
    finally:
        file_utils.get_file = real


def _guarded_get_file(real: Any, backbone: str, fname: str | None, origin: str | None, **kwargs: Any) -> str:
    fname = fname or Path(urlparse(origin or "").path).name
    folder = kwargs.get("cache_subdir", "datasets")
    cached = keras_cache_dir().parent / folder / fname
    expected = kwargs.get("file_hash") or kwargs.get("md5_hash")
    where = f"put {origin} at {cached}"
    if cached.is_file():
        if expected:
            algorithm = "sha256" if len(expected) == 64 else "md5"
            actual = file_digest(cached, algorithm)
            if actual != expected:
                raise ModelError(
                    f"the cached ImageNet weights for {backbone} are damaged ({algorithm} {actual}, "
                    f"expected {expected})",
                    path=cached,
                    hint=f"delete it and download again, or {where}",
                )
        return str(real(fname, origin, **kwargs))  # valid: Keras uses it without a network call
    if not origin or not reachable(origin):
        raise ModelError(
            f"ImageNet weights for {backbone} are not in the Keras cache and the download host is "
            "unreachable",
            path=cached,
            hint=f"{where} (md5 {expected or 'unknown'}), run the workflow's `weights` rule where there is "
            "internet, or use --weights none",
        )
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a stalled transfer fails instead of hanging
    try:
        return str(real(fname, origin, **kwargs))
    except Exception as exc:
        raise ModelError(
            f"downloading ImageNet weights for {backbone} failed ({type(exc).__name__})",
            path=cached,
            hint=where,
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def fetch_weights(
    backbone: str, keras_home: str | Path, record_out: str | Path | None = None
) -> dict[str, Any]:
    """Make sure `backbone`'s ImageNet weights are in `<keras_home>/models` (the workflow's `weights` rule);
    the record of each file (md5, size), also written to `record_out` (last, atomically)."""
    record = _ensure_weights(backbone, keras_home)
    if record_out is not None:
        from leukoscope._io import write_json

        write_json(record_out, record)
    return record


def _ensure_weights(backbone: str, keras_home: str | Path) -> dict[str, Any]:
    """Built with weights="imagenet" under `guarded_downloads` (no hang; a damaged cached file is
    reported, never deleted); a missing file is downloaded into a temporary folder and renamed into the
    cache only once Keras has checked its hash, so a killed or corrupt download leaves nothing behind."""
    home = Path(keras_home).absolute()
    os.environ["KERAS_HOME"] = str(home)  # read by Keras on import: set before it
    from leukoscope.models.backbones import get_backbone

    spec = get_backbone(backbone)
    record: dict[str, Any] = {
        "backbone": spec.name,
        "label": spec.label,
        "keras_home": str(keras_home),
        "imagenet": spec.imagenet,
        "files": [],
    }
    if not spec.imagenet:
        log.info("%s has no ImageNet weights: nothing to fetch", spec.label)
        return record
    import keras

    if keras_cache_dir().parent != home:
        raise ConfigError(
            f"Keras was imported with another KERAS_HOME ({keras_cache_dir().parent})",
            hint="run the weights step in a fresh process",
        )
    with guarded_downloads(spec.label) as requests, _atomic_downloads(home):
        size = max(spec.default_size, spec.min_size)
        try:
            spec.build(input_tensor=keras.Input((size, size, 3)), weights="imagenet")
        except (ValueError, OSError) as exc:  # a file with the right hash that Keras cannot load
            raise ModelError(f"the ImageNet weights of {spec.label} do not load ({exc})"[:300]) from None
    for req in requests:
        path = home / req.get("cache_subdir", "datasets") / str(req["fname"])
        record["files"].append(
            {
                "name": path.name,
                "path": str(path),
                "origin": req.get("origin"),
                "md5": file_digest(path, "md5"),
                "expected": req.get("file_hash"),
                "bytes": path.stat().st_size,
            }
        )
        log.info("%s: %s (%s bytes) in %s", spec.label, path.name, f"{path.stat().st_size:,}", path.parent)
    return record


@contextlib.contextmanager
def _atomic_downloads(home: Path) -> Any:
    """Inside guarded_downloads: a missing file is fetched into a temporary cache, then renamed into place."""
    from keras.src.utils import file_utils

    guarded = file_utils.get_file

    def atomic(fname: str | None = None, origin: str | None = None, **kwargs: Any) -> str:
        target = home / kwargs.get("cache_subdir", "datasets") / str(fname)
        if target.is_file():
            return str(guarded(fname, origin, **kwargs))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
        try:
            fetched = Path(guarded(fname, origin, **{**kwargs, "cache_dir": str(tmp)}))
            os.replace(fetched, target)  # complete and hash-checked by Keras
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return str(target)

    file_utils.get_file = atomic
    try:
        yield
    finally:
        file_utils.get_file = guarded
