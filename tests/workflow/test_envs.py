"""envs/leukoscope.yaml installs what pyproject.toml declares, with the same pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
EXTRAS = ("workflow", "gpu")  # the rules run on GPU nodes: TensorFlow's CUDA build


def _key(spec: str) -> tuple[str, str, str]:
    req = Requirement(spec)
    return (
        req.name.lower().replace("_", "-"),
        ",".join(sorted(str(s) for s in req.specifier)),
        ",".join(sorted(req.extras)),
    )


def test_conda_env_pins_match_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {_key(s) for s in project["dependencies"]}
    for extra in EXTRAS:
        wanted |= {_key(s) for s in project["optional-dependencies"][extra]}
    env = yaml.safe_load((REPO / "envs" / "leukoscope.yaml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert {_key(s) for s in pip} == wanted
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    minimum = project["requires-python"].removeprefix(">=")
    assert python.split("=")[-1] >= minimum


def test_every_rule_names_the_env() -> None:
    rules = sorted((REPO / "workflow" / "rules").glob("*.smk"))
    text = "\n".join(p.read_text(encoding="utf-8") for p in rules)
    assert text.count("conda:") == text.count("\nrule ")
