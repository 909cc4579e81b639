"""JSON schema of config.yaml, generated from `WorkflowConfig`: the documentation of every key.

`workflow/schemas/config.schema.yaml` is `render()`'s output, committed for editors and readers (each key's
type, default, bounds and whether the paper states it); a test regenerates it and compares. It does not
validate: `WorkflowConfig.from_dict` does, once, from the same dataclasses.

    python -m leukoscope.workflow.schema > workflow/schemas/config.schema.yaml
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from leukoscope.tree import plain

DRAFT = "https://json-schema.org/draft/2020-12/schema"
HEADER = (
    "# Generated from leukoscope.workflow.config.WorkflowConfig: do not edit by hand.\n"
    "#   python -m leukoscope.workflow.schema > workflow/schemas/config.schema.yaml\n"
)


def config_schema() -> dict[str, Any]:
    from leukoscope.workflow.config import WorkflowConfig

    schema = {"$schema": DRAFT, "title": "LeukoScope workflow configuration (config.yaml)"}
    schema.update(_object(WorkflowConfig))
    return schema


def render() -> str:
    return HEADER + yaml.safe_dump(config_schema(), sort_keys=False, width=110)


def _object(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("workflow", True):
            continue  # the rules fill it in (e.g. the model's backbone: grid.backbones)
        prop = _type(hints[f.name])
        meta = f.metadata
        help_text = meta.get("help", "") or (cls.__doc__ or "").strip().splitlines()[0]
        if meta.get("paper") is False:
            help_text += " (not in the paper)"
        elif meta.get("paper") is True:
            help_text += " (the paper)"
        if help_text:
            prop = {"description": help_text, **prop}
        for bound in ("minimum", "maximum"):
            if meta.get(bound) is not None:
                _bound(prop, bound, meta[bound])
        prop["default"] = _default(f)
        props[f.name] = prop
    return {"type": "object", "additionalProperties": False, "properties": props}


def _bound(prop: dict[str, Any], bound: str, value: float) -> None:
    """Bounds apply to the numeric branch of `int | None`."""
    if "anyOf" in prop:
        for branch in prop["anyOf"]:
            if branch.get("type") in ("integer", "number"):
                branch[bound] = value
        return
    prop[bound] = value


def _default(f: dataclasses.Field) -> Any:
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    if dataclasses.is_dataclass(value):
        return {}  # filled field by field by the nested schema's own defaults
    return plain(value)


def _type(tp: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _object(tp)
    if origin in (typing.Union, types.UnionType):
        branches = [_type(a) for a in args if a is not type(None)]
        nullable = type(None) in args
        if len(branches) == 1 and nullable:
            return {"anyOf": [branches[0], {"type": "null"}]}
        return {"anyOf": branches + ([{"type": "null"}] if nullable else [])}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is list:
        return {"type": "array", "items": _type(args[0])}
    if origin is tuple:
        return {"type": "array", "items": _type(args[0]), "minItems": len(args), "maxItems": len(args)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type(args[1])}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if tp is Any:
        return {}
    raise TypeError(f"no JSON schema for {tp!r}")


def schema_path(repo: Path) -> Path:
    return repo / "workflow" / "schemas" / "config.schema.yaml"


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
