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
from typing import Any, Literal

import yaml

from leukoscope.tree import plain

HEADER = (
    "# Generated from leukoscope.workflow.config.WorkflowConfig: do not edit by hand.\n"
    "#   python -m leukoscope.workflow.schema > workflow/schemas/config.schema.yaml\n"
)
SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
PAPER = {True: " (the paper)", False: " (not in the paper)", None: ""}


def render() -> str:
    from leukoscope.workflow.config import WorkflowConfig

    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "LeukoScope workflow configuration (config.yaml)",
        **_object(WorkflowConfig),
    }
    return HEADER + yaml.safe_dump(schema, sort_keys=False, width=110)


def _object(cls: type) -> dict[str, Any]:
    """The fields config.yaml sets (not `workflow=False` ones: the rules fill those in, e.g. the backbone)."""
    hints, props = typing.get_type_hints(cls), {}
    for f in (f for f in dataclasses.fields(cls) if f.metadata.get("workflow", True)):
        meta = f.metadata
        about = meta.get("help") or (cls.__doc__ or "").strip().splitlines()[0]
        bounds = {b: meta[b] for b in ("minimum", "maximum") if meta.get(b) is not None}
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        props[f.name] = {
            "description": about + PAPER[meta.get("paper")],
            **_type(hints[f.name], bounds),
            "default": {} if dataclasses.is_dataclass(default) else plain(default),  # nested: key by key
        }
    return {"type": "object", "additionalProperties": False, "properties": props}


def _type(tp: Any, bounds: dict[str, float]) -> dict[str, Any]:
    """`bounds` apply to the numbers (in `int | None`, to the int branch)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _object(tp)
    if origin in (typing.Union, types.UnionType):  # null last
        return {"anyOf": [_type(a, bounds) for a in sorted(args, key=lambda a: a is type(None))]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is list:
        return {"type": "array", "items": _type(args[0], {})}
    if origin is tuple:
        return {"type": "array", "items": _type(args[0], {}), "minItems": len(args), "maxItems": len(args)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type(args[1], {})}
    if tp is Any:
        return {}
    return {"type": SCALARS[tp], **(bounds if tp in (int, float) else {})}


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
