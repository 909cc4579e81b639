"""The package's stage order, as docs/ARCHITECTURE.md states it, is the order its imports follow.

Every import counts, lazy ones inside functions included (and `import_module` tables): a stage imports only
the shared top-level modules and earlier stages, no module takes part in an import circle, and each
stage's package docstring names its place in the order.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "leukoscope"
TOP = ("workflow", "cli", "__main__")  # on top of every stage, in this order (the CLI runs the workflow)
MODULE_NAME = re.compile(r"^leukoscope(\.\w+)+$")


def stage_levels() -> list[list[str]]:
    """[[data], [preprocess], [models, losses], ...] from the order line of docs/ARCHITECTURE.md."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    line = next(raw for raw in text.splitlines() if raw.startswith("data -> "))
    return [[name.strip() for name in level.split("/")] for level in line.split("->")]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(module: str) -> str:
    """A stage folder's name, or "" for the shared top-level modules (config, errors, _io, ...)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() or parts[-1] in TOP else ""


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` names in any import statement, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, f"{path}: use absolute imports"
            for alias in node.names:  # a submodule, else a name of the module itself
                sub = f"{node.module}.{alias.name}"
                names.append(sub if sub in modules else node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.match(node.value):
            names = [node.value]  # e.g. a lazy `import_module` table
        found |= {name for name in names if name in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {name: imports_of(path, modules) - {name} for name, path in files.items()}


def test_the_documented_order_names_every_stage() -> None:
    stages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} - set(TOP)
    documented = [name for level in stage_levels() for name in level]
    assert sorted(documented) == sorted(stages)


def test_stages_import_only_earlier_stages() -> None:
    rank = {name: i + 1 for i, level in enumerate(stage_levels()) for name in level}
    rank |= {"": 0} | {name: len(rank) + 1 + i for i, name in enumerate(TOP)}
    wrong = [
        f"{src} ({stage_of(src) or 'shared'}) imports {dst} ({stage_of(dst) or 'shared'})"
        for src, targets in import_graph().items()
        for dst in targets
        if stage_of(src) != stage_of(dst) and rank[stage_of(dst)] >= rank[stage_of(src)]
    ]
    assert wrong == []


def test_no_import_circles() -> None:
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert circles == []


def test_package_docstrings_state_their_place_in_the_order() -> None:
    for number, level in enumerate(stage_levels(), start=1):
        for name in level:
            doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text(encoding="utf-8")))
            assert doc is not None and doc.startswith(f"Stage {number}:"), (name, doc)


def test_the_checks_see_lazy_imports_and_name_the_offender(tmp_path: Path) -> None:
    """The parser must not miss an import inside a function, nor invent one from a docstring."""
    source = tmp_path / "probe.py"
    source.write_text(
        '"""mentions leukoscope.infer.predictor in prose"""\n'
        "def f():\n    from leukoscope.infer.predictor import load_predictor\n"
        "    from leukoscope import errors\n",
        encoding="utf-8",
    )
    modules = {"leukoscope.infer.predictor", "leukoscope.errors", "leukoscope"}
    assert imports_of(source, modules) == {"leukoscope.infer.predictor", "leukoscope.errors"}
