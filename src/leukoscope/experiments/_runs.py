"""Resumable training runs shared by cross-validation and the grids: train, continue, or reuse."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from leukoscope._io import write_json
from leukoscope.config import RunConfig, load_yaml
from leukoscope.errors import ConfigError


def is_trained(run_dir: Path) -> bool:
    return (run_dir / "model.safetensors").is_file() and (run_dir / "metrics.json").is_file()


def ensure_trained(cfg: RunConfig, run_dir: Path) -> Path:
    """A finished run is reused; an interrupted one continues from last.ckpt; otherwise train from scratch."""
    from leukoscope.train.fit import fit

    if is_trained(run_dir):
        return run_dir
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return fit(cfg, resume=run_dir)
    return fit(cfg, overwrite=True)


def signature(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, default=str, sort_keys=True).encode()).hexdigest()[:16]


def claim_out(out: Path, sig: str, marker: str) -> None:
    """Refuse to resume into a folder that holds another experiment (different data or settings)."""
    path = out / marker
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8")).get("signature")
        if previous != sig:
            raise ConfigError(
                "the output folder holds a different experiment (data, folds or settings changed)",
                path=out,
                hint="pass another --out, or delete the folder to start again",
            )
    write_json(path, {"signature": sig})


def layered_config(presets: dict[str, Any], config: Path | None, flags: dict[str, Any]) -> RunConfig:
    """Defaults <- scale presets (dotted keys) <- the YAML file <- CLI flags (later wins)."""
    merged = RunConfig().override(presets).to_dict()
    if config is not None:
        _deep_merge(merged, load_yaml(config))
    return RunConfig.from_dict(merged).override(flags)


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "params":
            _deep_merge(base[key], value)
        else:
            base[key] = value
