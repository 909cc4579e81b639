"""`leukoscope train`'s config: defaults, then `--config` (a RunConfig YAML such as configs/cpu-fast.yaml,
or the workflow's config.yaml read as one of its training jobs), then the flags (flags win).

Flags are matched to RunConfig fields by name (`--lr` sets `optim.lr`), so a new field needs no list
edit here, only a typer option.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

from leukoscope import tree
from leukoscope.config import RunConfig, load_yaml, runtime_keys, setting_keys

# The one flag not named after its field: `name` is both loss.name and optim.name.
RENAMED_FLAGS = {"loss": "loss.name"}


@functools.cache
def flag_keys() -> dict[str, str]:
    """Flag name (as a Python parameter) -> dotted RunConfig key: every field whose name is unique."""
    by_name: dict[str, list[str]] = {}
    for key in setting_keys():
        by_name.setdefault(key.rpartition(".")[2], []).append(key)
    return {name: keys[0] for name, keys in by_name.items() if len(keys) == 1} | RENAMED_FLAGS


def overrides(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags named after a setting, as dotted keys; None (not given) leaves the config's value."""
    keys = flag_keys()
    return {keys[name]: value for name, value in flags.items() if name in keys and value is not None}


def build_config(config: Path | None, flags: dict[str, Any], notices: list[str] | None = None) -> RunConfig:
    """Defaults, then the file, then `flags` (dotted keys); `notices`: renamed workflow keys read."""
    if config is None:
        return RunConfig().override(flags)
    data = load_yaml(config)
    if is_workflow_config(data):
        base = from_workflow(data, config, flags.get("model.backbone"), flags.get("loss.name"), notices)
    else:
        base = RunConfig.from_dict(data)
    return base.override(flags)


def is_workflow_config(data: dict[str, Any]) -> bool:
    """The workflow's config.yaml has keys a RunConfig lacks (dataset, grid, protocol, ...)."""
    from leukoscope.workflow.config import KEY_ALIASES, WorkflowConfig

    workflow = {f.name for f in dataclasses.fields(WorkflowConfig)} | {k.split(".")[0] for k in KEY_ALIASES}
    own = {f.name for f in dataclasses.fields(RunConfig)}
    return bool(set(data) & (workflow - own))


def from_workflow(
    data: dict[str, Any],
    source: str | Path,
    backbone: str | None = None,
    loss: str | None = None,
    notices: list[str] | None = None,
) -> RunConfig:
    """One training job of the workflow's grid (default: its first backbone, loss and seed) as a RunConfig.

    There is no offline augment stage here, so what it does moves into training: oversampling to
    `augment.target` (auto, balance or counts, resolved against the data's classes and sizes when they
    are read, as the workflow's augment stage does), and its CLAHE probability joins the online
    augmentation. The dataset's path, classes and validation fold (none under cv) fill `data`; runtime
    settings keep `leukoscope train`'s defaults.
    """
    from leukoscope.workflow.config import WorkflowConfig, run_config

    cfg = WorkflowConfig.from_dict(data, source=str(source), notices=notices)
    run = run_config(
        cfg, backbone or cfg.grid.backbones[0], loss or cfg.grid.losses[0], out="", state_dir="",
        seed=cfg.grid.seeds[0],
    )  # fmt: skip
    merged = run.to_dict()
    defaults = RunConfig().to_dict()
    for key in runtime_keys():
        tree.put(merged, key, tree.get(defaults, key))
    aug, dataset = cfg.augment, cfg.dataset
    merged["train"] |= {  # auto / balance / counts, resolved against the data when it is read
        "balance": "oversample" if aug.enabled else "none",
        "oversample_to": aug.target if aug.enabled else None,
    }
    if aug.enabled:
        merged["augment"]["clahe_p"] = max(merged["augment"]["clahe_p"], aug.clahe_p)
    merged["data"] |= {
        "data": dataset.path,
        "classes": dataset.classes,
        "positive_class": dataset.positive_class,
        "limit_per_class": dataset.limit_per_class,
        "val_fold": cfg.val_fold if cfg.protocol != "cv" else None,  # cv: a grouped hold-out
        "val_fraction": cfg.val_fraction,
    }
    return RunConfig.from_dict(merged)
