"""JSON schema of config.yaml, generated from `WorkflowConfig`, and validation with one-line errors.

`workflow/schemas/config.schema.yaml` is `render()`'s output, committed so Snakemake's
`validate(config, ...)` can read it; a test regenerates it and compares, so the dataclasses stay the one
source of types and defaults. Every object has `default: {}`, so Snakemake's default-filling validator
creates missing sections and fills their fields in turn.

    python -m leukoscope.workflow.schema > workflow/schemas/config.schema.yaml
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from leukoscope.errors import ConfigError
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


def check(
    config: dict[str, Any], schema: dict[str, Any] | None = None, source: str = "config"
) -> dict[str, Any]:
    """Validate `config` and fill in defaults (a deep copy); the first problem is one ConfigError line."""
    import jsonschema

    schema = copy.deepcopy(schema if schema is not None else config_schema())
    data = copy.deepcopy(config)
    validator_class = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_class(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(describe(jsonschema.exceptions.best_match(errors)), path=source)
    _fill_defaults(schema, data)
    return data


def describe(error: Any) -> str:
    """`train.epochs: 0 is less than the minimum of 1`: where, and jsonschema's own words."""
    where = ".".join(str(p) for p in error.absolute_path) or "config"
    if error.validator == "additionalProperties":
        return f"{where}: {error.message} (check the spelling against config.yaml)"
    if error.validator == "anyOf":
        return f"{where}: {error.instance!r} is not a valid value"
    return f"{where}: {error.message}"


def _fill_defaults(schema: dict[str, Any], data: Any) -> None:
    if not isinstance(data, dict) or schema.get("type") != "object":
        return
    for name, sub in schema.get("properties", {}).items():
        if name not in data and "default" in sub:
            data[name] = copy.deepcopy(sub["default"])
        if name in data:
            _fill_defaults(sub, data[name])


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
