"""The dataset download, against a loopback HTTP server serving a small synthetic C-NMC zip (and bad ones)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import types
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from leukoscope.data import known
from leukoscope.data.download import MARKER, DatasetConfig, download_stage, fetch, verify_cnmc
from leukoscope.data.readers import read_dataset
from leukoscope.data.synth import write_cnmc_synth
from leukoscope.errors import ConfigError, DataError

LEUKOSCOPE = Path(sys.executable).with_name("leukoscope")
SYNTH = {"subjects": 3, "cells_per_subject": 2, "size": 48, "seed": 5, "prelim": 2}


@pytest.fixture(scope="module")
def dataset_zip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A zip of a synthetic C-NMC_Leukemia folder, laid out like Kaggle's."""
    root = tmp_path_factory.mktemp("zsrc") / "C-NMC_Leukemia"
    write_cnmc_synth(root, **SYNTH)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, Path("C-NMC_Leukemia") / path.relative_to(root))
    return buf.getvalue()


@dataclass
class Server:
    """Routes: /good.zip, /truncated.zip (announces more bytes than it sends), /corrupt.zip, /notzip."""

    base: str
    payload: bytes
    hits: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@pytest.fixture(scope="module")
def server(dataset_zip: bytes) -> Iterator[Server]:
    state = Server("", dataset_zip)
    corrupt = bytearray(dataset_zip)
    corrupt[len(corrupt) // 2] ^= 0xFF

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            body = {
                "/good.zip": dataset_zip,
                "/truncated.zip": dataset_zip,
                "/corrupt.zip": bytes(corrupt),
                "/notzip": b"this is not a zip file" * 100,
            }.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path == "/truncated.zip":
                self.wfile.write(body[: len(body) // 3])
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def url_request(dest: Path, server: Server, name: str, **kw: object) -> DatasetConfig:
    values = {"source": "url", "path": str(dest), "url": server.url(name), "sha256": sha(server.payload)}
    return DatasetConfig.from_mapping({"verify": False, **values, **kw})


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_url_download_lands_complete_and_is_reused(tmp_path: Path, server: Server) -> None:
    dest = tmp_path / "resources" / "C-NMC_Leukemia"
    record = fetch(url_request(dest, server, "good.zip"))
    assert record["path"] == str(dest) and record["source"] == "url" and record["reused"] is False
    assert record["sha256"] == sha(server.payload) and record["archive_bytes"] == len(server.payload)
    table = read_dataset(dest)
    assert len(table) == record["files"] - 1  # every image, plus the prelim labels CSV
    assert (dest / MARKER).is_file() and leftovers(dest.parent) == ["C-NMC_Leukemia"]  # no temporaries
    hits = len(server.hits)
    again = fetch(url_request(dest, server, "good.zip"))
    assert again["reused"] is True and len(server.hits) == hits  # no second download
    assert again["files"] == record["files"]


def test_the_download_stage_logs_progress_and_writes_the_record(
    tmp_path: Path, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """The `download` rule: the `dataset` section in, the record out; nothing written when it fails."""
    dest, record_out = tmp_path / "C-NMC_Leukemia", tmp_path / "download" / "dataset.json"
    settings = {"source": "url", "path": str(dest), "url": server.url("good.zip"), "verify": False}
    with caplog.at_level("INFO", logger="leukoscope.data.download"):
        record = download_stage(settings | {"sha256": sha(server.payload), "classes": None}, record_out)
    assert json.loads(record_out.read_text()) == record and record["path"] == str(dest)
    assert f"downloaded {len(server.payload):,} of {len(server.payload):,} bytes" in caplog.text
    assert f"{dest}: {record['files']} files, verified: " in caplog.text
    failed = tmp_path / "failed.json"
    with pytest.raises(DataError, match="is truncated"):
        bad = {"url": server.url("truncated.zip"), "sha256": sha(server.payload), "path": str(tmp_path / "b")}
        download_stage(settings | bad, failed)
    assert not failed.exists()


@pytest.mark.parametrize(
    ("name", "sha256", "message"),
    [
        ("truncated.zip", None, "is truncated"),
        ("corrupt.zip", None, "has sha256"),
        ("good.zip", "0" * 64, "has sha256"),
        ("missing.zip", None, "HTTP 404"),
    ],
)
def test_bad_download_leaves_nothing(
    tmp_path: Path, server: Server, name: str, sha256: str | None, message: str
) -> None:
    dest = tmp_path / "res" / "C-NMC_Leukemia"
    extra = {"sha256": sha256} if sha256 else {}
    with pytest.raises(DataError, match=message) as info:
        fetch(url_request(dest, server, name, **extra))
    assert server.url(name) in str(info.value)
    assert leftovers(dest.parent) == []  # nothing a rerun could take as complete
    assert fetch(url_request(dest, server, "good.zip"))["files"] > 0  # the rerun fetches afresh


def test_checksum_right_but_not_a_zip(tmp_path: Path, server: Server) -> None:
    dest = tmp_path / "r" / "C-NMC_Leukemia"
    request = url_request(dest, server, "notzip", sha256=sha(b"this is not a zip file" * 100))
    with pytest.raises(DataError, match="cannot be unpacked"):
        fetch(request)
    assert leftovers(dest.parent) == []


def test_verify_refuses_a_copy_that_is_not_the_real_dataset(tmp_path: Path, server: Server) -> None:
    dest = tmp_path / "r" / "C-NMC_Leukemia"
    with pytest.raises(DataError, match="not the real C-NMC 2019"):
        fetch(url_request(dest, server, "good.zip", verify=True))
    assert leftovers(dest.parent) == []


def test_verify_compares_every_file_with_the_manifest(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the manifest describing the served files, verification passes; one changed byte fails it."""
    source = tmp_path / "src" / "C-NMC_Leukemia"
    write_cnmc_synth(source, **SYNTH)
    rows = [
        {
            "path": p.relative_to(source).as_posix(),
            "bytes": p.stat().st_size,
            "lfs_sha256": sha(p.read_bytes()),
        }
        for p in sorted(source.rglob("*"))
        if p.is_file()
    ]
    manifest = pd.DataFrame(rows)
    manifest["part"] = manifest["path"].map(known.part_of)
    monkeypatch.setattr(known, "cnmc_manifest", lambda: manifest)
    dest = tmp_path / "r" / "C-NMC_Leukemia"
    record = fetch(url_request(dest, server, "good.zip", verify=True))
    checked = record["verification"]
    assert checked["verified"] is True and checked["files_checked"] == len(rows) == record["files"]
    victim = dest / rows[0]["path"]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0x01
    victim.write_bytes(bytes(data))
    result = verify_cnmc(dest)
    assert result["verified"] is False and result["sha256_mismatches"] == 1
    assert result["examples"]["sha256"] == [rows[0]["path"]]


def _manifest_of(root: Path) -> pd.DataFrame:
    """A manifest that describes `root` file by file, as the embedded one describes the real C-NMC."""
    rows = [
        {"path": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "lfs_sha256": sha(p.read_bytes())}
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]
    manifest = pd.DataFrame(rows)
    manifest["part"] = manifest["path"].map(known.part_of)
    return manifest


def test_verification_is_the_default_and_never_fails_a_users_own_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from leukoscope.workflow.config import WorkflowConfig

    assert DatasetConfig().verify is True and WorkflowConfig().dataset.verify is True
    synthetic = tmp_path / "synth" / "C-NMC_Leukemia"  # C-NMC's layout, not its files (the demo's kind)
    write_cnmc_synth(synthetic, **SYNTH)
    folders = tmp_path / "cells"  # class folders: no manifest describes them
    for label in ("all", "hem"):
        (folders / label).mkdir(parents=True)
        (folders / label / "a.png").write_bytes(
            (synthetic / "training_data").rglob("*.bmp").__next__().read_bytes()
        )
    with caplog.at_level("INFO", logger="leukoscope.data.download"):
        own = fetch(DatasetConfig(source="local", path=str(synthetic)))["verification"]
        other = fetch(DatasetConfig(source="local", path=str(folders)))["verification"]
    assert own["verified"] is False and "not C-NMC 2019's file list" in own["skipped"]
    assert other["verified"] is False and "only C-NMC 2019 has a manifest" in other["skipped"]
    assert "checksums are not verified" in caplog.text and "nothing to verify" in caplog.text
    # a local copy whose file list is C-NMC's is checked: identical passes, one changed byte is one line
    manifest = _manifest_of(synthetic)
    monkeypatch.setattr(known, "cnmc_manifest", lambda: manifest)
    checked = fetch(DatasetConfig(source="local", path=str(synthetic)))["verification"]
    assert checked["verified"] is True and checked["files_checked"] == len(manifest)
    victim = next((synthetic / "training_data").rglob("*.bmp"))
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0x01
    victim.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"not the real C-NMC 2019 \(1 files differ") as info:
        fetch(DatasetConfig(source="local", path=str(synthetic)))
    assert "\n" not in str(info.value) and "restore it from the source" in str(info.value)


def test_an_unverified_download_is_verified_in_place_not_fetched_again(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder fetched with verify: false, then asked for with the new default: hashed where it is."""
    dest = tmp_path / "r" / "C-NMC_Leukemia"
    fetch(url_request(dest, server, "good.zip", verify=False))
    hits = len(server.hits)
    with pytest.raises(DataError, match="not the real C-NMC 2019"):  # the real manifest: refused, kept
        fetch(url_request(dest, server, "good.zip", verify=True))
    assert (dest / MARKER).is_file() and len(server.hits) == hits
    manifest = _manifest_of(dest)
    monkeypatch.setattr(known, "cnmc_manifest", lambda: manifest)
    record = fetch(url_request(dest, server, "good.zip", verify=True))
    assert record["reused"] is True and record["verification"]["verified"] is True
    assert len(server.hits) == hits  # no second download
    marker = json.loads((dest / MARKER).read_text(encoding="utf-8"))
    assert marker["verification"]["verified"] is True  # remembered: the next run hashes nothing
    assert fetch(url_request(dest, server, "good.zip", verify=True))["verification"]["verified"] is True


def test_never_overwrites_a_folder_it_did_not_make(tmp_path: Path, server: Server) -> None:
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not made by the download rule"):
        fetch(url_request(dest, server, "good.zip"))
    assert leftovers(dest) == ["notes.txt"]


def test_synthetic_and_local_sources(tmp_path: Path) -> None:
    dest = tmp_path / "res" / "synth"
    request = DatasetConfig.from_mapping({"source": "synthetic", "path": str(dest), "synthetic": SYNTH})
    record = fetch(request)
    assert record["verification"]["verified"] is False and "synthetic" in record["verification"]["skipped"]
    assert record["synthetic"]["subjects"] == 3 and len(read_dataset(dest)) == record["files"] - 1
    assert fetch(request)["reused"] is True
    changed = DatasetConfig.from_mapping(
        {"source": "synthetic", "path": str(dest), "synthetic": {**SYNTH, "seed": 6}}
    )
    assert fetch(changed)["reused"] is False  # its own earlier download is replaced
    assert leftovers(dest.parent) == ["synth"]
    local = fetch(DatasetConfig(source="local", path=str(dest), verify=False))
    assert local["path"] == str(dest) and local["files"] == record["files"]
    with pytest.raises(DataError, match="dataset folder not found"):
        fetch(DatasetConfig(source="local", path=str(tmp_path / "absent")))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"source": "ftp"}, "dataset.source"),
        ({"source": "url", "url": "http://x/y.zip"}, "sha256"),
        ({"source": "url", "sha256": "a" * 64}, "dataset.url is empty"),
        ({"synthetic": {"cells": 3}}, "dataset.synthetic"),
    ],
)
def test_bad_settings_are_one_line(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DatasetConfig.from_mapping(values)


def test_the_workflow_config_section_is_accepted() -> None:
    """The `dataset` section also holds reader settings, and None for unset download fields."""
    section = {"source": "synthetic", "path": "r/x", "url": None, "sha256": None, "kaggle": None,
               "verify": False, "classes": None, "positive_class": "all", "limit_per_class": 3,
               "synthetic": SYNTH}  # fmt: skip
    request = DatasetConfig.from_mapping(section)
    assert request.kaggle == "andrewmvd/leukemia-classification" and request.synthetic.subjects == 3


def test_kaggle_needs_credentials_then_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dataset_zip: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.kaggle of the machine running the tests
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    request = DatasetConfig(source="kaggle", path=str(tmp_path / "res" / "C-NMC_Leukemia"), verify=False)
    with pytest.raises(ConfigError, match="no Kaggle API credentials"):
        fetch(request)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    monkeypatch.setitem(sys.modules, "kaggle", None)  # not installed
    with pytest.raises(ConfigError, match="pip install kaggle"):
        fetch(request)
    assert leftovers(tmp_path / "res") == []

    calls: list[tuple[str, str]] = []

    class KaggleApi:  # the API's shape: authenticate(), dataset_download_files(slug, path, unzip, quiet)
        def authenticate(self) -> None:
            calls.append(("auth", os.environ["KAGGLE_USERNAME"]))

        def dataset_download_files(self, slug: str, path: str, unzip: bool, quiet: bool) -> None:
            assert unzip is False
            calls.append(("download", slug))
            (Path(path) / f"{slug.rpartition('/')[2]}.zip").write_bytes(dataset_zip)

    extended = types.ModuleType("kaggle.api.kaggle_api_extended")
    extended.KaggleApi = KaggleApi  # type: ignore[attr-defined]
    for name, module in (
        ("kaggle", types.ModuleType("kaggle")),
        ("kaggle.api", types.ModuleType("kaggle.api")),
        ("kaggle.api.kaggle_api_extended", extended),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    record = fetch(request)
    assert calls == [("auth", "someone"), ("download", "andrewmvd/leukemia-classification")]
    assert record["kaggle"] == "andrewmvd/leukemia-classification" and record["sha256"] == sha(dataset_zip)
    assert leftovers(tmp_path / "res") == ["C-NMC_Leukemia"]

    # a new-style token alone is enough to try; the client's own refusal (a help page, then exit(1)) is
    # one line, with its page kept off the terminal
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("KAGGLE_API_TOKEN", "expired")

    def refuse(self: KaggleApi) -> None:
        print("Authentication required to call the Kaggle API.\n\nFirst, you will need...")
        raise SystemExit(1)

    monkeypatch.setattr(KaggleApi, "authenticate", refuse)
    again = DatasetConfig(source="kaggle", path=str(tmp_path / "res2" / "C-NMC_Leukemia"), verify=False)
    with pytest.raises(ConfigError, match="the Kaggle API refused the credentials"):
        fetch(again)
    assert "Authentication required" not in capsys.readouterr().out
    assert leftovers(tmp_path / "res2") == []


def test_cli_fetch_exit_codes(tmp_path: Path, server: Server) -> None:
    """Through the installed executable: a truncated download is one line and exit 2; a good one exits 0."""
    out = tmp_path / "cli" / "C-NMC_Leukemia"
    args = [
        str(LEUKOSCOPE),
        "data",
        "fetch",
        "--source",
        "url",
        "--sha256",
        sha(server.payload),
        "--out",
        str(out),
    ]
    env = {**os.environ, "COLUMNS": "400"}
    bad = subprocess.run(
        [*args, "--url", server.url("truncated.zip")], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2, bad.stderr
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "truncated" in lines[0] and server.url("truncated.zip") in lines[0]
    assert "Traceback" not in bad.stderr and leftovers(out.parent) == []
    record_file = tmp_path / "cli" / "dataset.json"
    good = subprocess.run(
        [*args, "--url", server.url("good.zip"), "--no-verify", "--json", "--record", str(record_file)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert good.returncode == 0, good.stderr
    printed = json.loads(good.stdout)
    assert printed["path"] == str(out) and json.loads(record_file.read_text())["files"] == printed["files"]


def test_the_download_rule_fails_in_one_line_and_writes_no_record(tmp_path: Path, server: Server) -> None:
    """Through Snakemake: a truncated download fails the rule, names the URL, leaves no record or data
    (the rule's success path runs in the SLURM test's chain)."""
    snakemake = Path(sys.executable).with_name("snakemake")
    repo = Path(__file__).resolve().parents[2]
    config = {"dataset": {"source": "url", "url": server.url("truncated.zip"), "sha256": sha(server.payload)}}
    (tmp_path / "c.yaml").write_text(json.dumps(config), encoding="utf-8")
    args = [str(snakemake), "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path)]
    args += ["--configfile", str(tmp_path / "c.yaml"), "--cores", "1", "resources/download/dataset.json"]
    bad = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "truncated" in errors[0] and server.url("truncated.zip") in errors[0], (
        bad.stderr
    )
    assert not (tmp_path / "resources/download/dataset.json").exists()
    assert [p for p in (tmp_path / "resources").rglob("*") if not p.is_dir()] == []  # nothing at all
