"""`leukoscope backbones` lists what --backbone takes, through the installed executable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_backbones_json_lists_the_paper_backbones() -> None:
    exe = Path(sys.executable).with_name("leukoscope")
    result = subprocess.run([str(exe), "backbones", "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["densenet201"] == {"label": "DenseNet201", "size": 224, "input": "torch", "imagenet": True}
    assert listed["efficientnetb2"]["size"] == 260 and listed["simplecnn"]["imagenet"] is False
    assert len(listed) > 30
