"""Nested settings (dicts of dicts): the one set of helpers every configuration layer uses.

Dotted keys (`train.epochs`) address a tree; `merge` layers one tree over another the way Snakemake
layers config files (mappings key by key, any other value replaced whole, so a user's
`augment.target: {a: 5, b: 5}` replaces config.yaml's `auto` instead of mixing with it); `canonical`
sorts keys, because Snakemake compares a rule's params as text and the order of keys in a file must not
look like a change.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def plain(obj: Any) -> Any:
    """Tuples as lists, all the way down (what YAML and JSON hold)."""
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def canonical(obj: Any) -> Any:
    """`plain`, with every mapping's keys sorted (as text)."""
    if isinstance(obj, Mapping):
        return {str(k): canonical(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, list | tuple):
        return [canonical(v) for v in obj]
    return obj


def get(tree: Mapping[str, Any], dotted: str, default: Any = KeyError) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is KeyError:
                raise KeyError(dotted)
            return default
        node = node[part]
    return node


def put(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `dotted` in `tree`, creating the sections on the way."""
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def pop(tree: dict[str, Any], dotted: str) -> Any:
    *parents, leaf = dotted.split(".")
    node = get(tree, ".".join(parents)) if parents else tree
    return node.pop(leaf)


def has(tree: Mapping[str, Any], dotted: str) -> bool:
    return get(tree, dotted, default=None) is not None or _present(tree, dotted)


def _present(tree: Mapping[str, Any], dotted: str) -> bool:
    *parents, leaf = dotted.split(".")
    node = get(tree, ".".join(parents), default=None) if parents else tree
    return isinstance(node, Mapping) and leaf in node


def merge(base: Mapping[str, Any], *layers: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with each layer over it: mappings merged key by key, anything else replaced (a copy)."""
    out = copy.deepcopy(dict(base))
    for layer in layers:
        _merge_into(out, layer)
    return out


def _merge_into(base: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge_into(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
