"""scripts/loadtest.py at a tiny size: against a running server, and starting `leukoscope serve` itself."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "loadtest.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("loadtest", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loadtest_against_running_server(live_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    loadtest = _load_module()
    code = loadtest.main(["--url", live_server, "--requests", "20", "--concurrency", "4"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"]
    assert report["requests"] == 20 and report["status_counts"] == {"200": 20}
    assert report["server_errors_5xx"] == 0
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    assert report["requests_per_s"] > 0


def test_loadtest_refuses_non_loopback_targets() -> None:
    loadtest = _load_module()
    for url in ("http://10.0.0.1:8000", "http://example.org", "http://192.168.1.5"):
        with pytest.raises(SystemExit, match="not a loopback"):
            loadtest.check_loopback(url)
    loadtest.check_loopback("http://127.0.0.1:8000")
    loadtest.check_loopback("http://[::1]:8000")


@pytest.mark.slow
def test_loadtest_starts_the_serve_cli(serve_model_dir: Path, tmp_path: Path) -> None:
    """The real `leukoscope serve` command in a child process, driven by the script. With its default
    options it serves a model folder on the model.tflite it builds there (a copy: the session's folder
    stays bare)."""
    import shutil

    folder = Path(shutil.copytree(serve_model_dir, tmp_path / "model"))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(folder), "-n", "8", "-c", "2", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["status_counts"] == {"200": 8}
    assert (folder / "model.tflite").is_file() and not (serve_model_dir / "model.tflite").exists()
