from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from leukoscope.cli import data as data_cli

from .conftest import write_folder


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """Only this stage's commands, so other stages' CLI work cannot break these tests."""
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        pass

    data_cli.register(app)
    return app


def invoke(app: typer.Typer, *args: str) -> Result:
    return CliRunner().invoke(app, ["data", *args])


def test_synth_then_check_json(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "syn"
    args = ["--subjects", "3", "--cells-per-subject", "2", "--size", "48", "--prelim", "2", "--seed", "9"]
    result = invoke(app, "synth", "--out", str(out), *args)
    assert result.exit_code == 0, result.output
    result = invoke(app, "check", str(out), "--json", "--strict")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert report["layout"] == "cnmc" and report["n_images"] == 8
    assert report["classes"] == {"all": 5, "hem": 3}
    assert report["subjects"] == 5 and report["subject_known"] is True
    assert set(report["splits"]) == {"fold_0", "fold_1", "fold_2", "prelim"}
    assert report["problems"] == [] and report["differences"]["matches_known"] is False


def test_strict_exits_2_only_when_asked(app: typer.Typer, tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", {"a": 2, "b": 2})
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    relaxed = invoke(app, "check", str(root), "--json")
    assert relaxed.exit_code == 0
    report = json.loads(relaxed.stdout)
    assert [p["kind"] for p in report["problems"]] == ["unreadable"]
    assert report["problem_counts"] == {"unreadable": 1}
    assert invoke(app, "check", str(root), "--strict").exit_code == 2


def test_readable_report(app: typer.Typer, tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", {"blast": 2, "normal": 3})
    result = invoke(app, "check", str(root))
    assert result.exit_code == 0
    assert "layout: folder" in result.stdout and "64x64 RGB x5" in result.stdout
    assert "no problems found" in result.stdout and "own subject" in result.stdout


def test_entry_point_gives_one_line_and_exit_2(tmp_path: Path) -> None:
    """The real console script: bad input is one line on stderr and exit code 2, no traceback."""
    exe = Path(sys.executable).with_name("leukoscope")
    missing = tmp_path / "nowhere"
    result = subprocess.run(
        [str(exe), "data", "check", str(missing)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "dataset not found" in result.stderr and str(missing) in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    result = subprocess.run(
        [str(exe), "data", "synth", "--out", str(tmp_path / "s"), "--difficulty", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--difficulty must be between 0 and 1" in result.stderr


def test_strict_check_of_a_truncated_bmp_exits_2_through_the_console_script(tmp_path: Path) -> None:
    """`raise typer.Exit(2)` used to exit 0 from the installed script (click returned the code)."""
    exe = Path(sys.executable).with_name("leukoscope")
    import cv2
    import numpy as np

    root = write_folder(tmp_path / "f", {"all": 2, "hem": 2})
    ok, bmp = cv2.imencode(".bmp", np.full((64, 64, 3), 120, np.uint8))
    assert ok
    (root / "all" / "truncated.bmp").write_bytes(bmp.tobytes()[: len(bmp) // 2])
    strict = subprocess.run(
        [str(exe), "data", "check", str(root), "--strict"], capture_output=True, text=True, timeout=120
    )
    assert strict.returncode == 2, strict.stderr
    relaxed = subprocess.run(
        [str(exe), "data", "check", str(root)], capture_output=True, text=True, timeout=120
    )
    assert relaxed.returncode == 0 and "unreadable" in relaxed.stdout
