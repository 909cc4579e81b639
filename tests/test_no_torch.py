"""The engine is Keras 3 on TensorFlow: no PyTorch-family package is imported by the code or installed."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GONE = ("torch", "torchvision", "timm", "lightning", "pytorch_grad_cam", "onnxscript", "safetensors")
IMPORT = re.compile(rf"^\s*(?:import|from)\s+({'|'.join(GONE)})\b", re.MULTILINE)


def test_no_source_file_imports_pytorch_family_packages() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("src", "tests", "benchmarks", "scripts", "workflow")
        for path in (REPO / folder).rglob("*.py")
        if IMPORT.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert offenders == []


def test_none_of_them_is_installed_or_required() -> None:
    installed = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
    assert not installed & {
        "torch",
        "torchvision",
        "timm",
        "lightning",
        "grad-cam",
        "onnxscript",
        "safetensors",
    }
    requires = " ".join(importlib.metadata.requires("leukoscope") or []).lower()
    assert not re.search(r"\b(torch|timm|lightning|grad-cam|onnxscript|safetensors)\b", requires)
