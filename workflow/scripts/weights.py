"""Rule `weights` (a local rule): fetch a backbone's ImageNet notop weights once into `resources/keras/`.

Compute nodes often have no internet: training jobs run with KERAS_HOME pointing at the same folder, so
Keras finds the file (md5 checked) and never downloads. The backbone is built here with weights="imagenet"
through `leukoscope.models.weights.guarded_downloads` (no hang, a damaged cached file is reported, never
deleted), and a missing file is downloaded into a temporary folder and renamed into the cache only when its
hash is right, so a killed or corrupt download leaves nothing behind. The record (the rule's output) names
each file with its md5 and size.
"""

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("weights")


def fetch_weights(backbone: str, keras_home: str | Path) -> dict[str, Any]:
    """Make sure `backbone`'s ImageNet weights are in `<keras_home>/models`; the record."""
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

    from leukoscope.data.hashing import file_digest
    from leukoscope.models.weights import guarded_downloads, keras_cache_dir

    if keras_cache_dir().parent != home:
        from leukoscope.errors import ConfigError

        raise ConfigError(
            f"Keras was imported with another KERAS_HOME ({keras_cache_dir().parent})",
            hint="run the weights step in a fresh process",
        )
    from leukoscope.errors import ModelError

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


def main(smk: Any) -> None:
    from leukoscope._io import write_json

    write_json(smk.output[0], fetch_weights(smk.wildcards.backbone, smk.params.keras_home))


if "snakemake" in globals():
    from leukoscope.workflow.script import run

    run(snakemake, main)  # type: ignore[name-defined]  # noqa: F821
