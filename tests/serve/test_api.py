"""Every route with good and malformed input; errors are always one JSON object {"error": ...}."""

from __future__ import annotations

import base64
import logging
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from infer.helpers import cell_image, encode
from leukoscope.serve.app import create_app
from leukoscope.serve.service import ServeSettings

from .conftest import png_header_claiming

PNG = encode(cell_image(1))


def _error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and body["error"]
    return body["error"]


def test_health_and_model_card(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "test-simplecnn"
    info = client.get("/api/v1/model").json()
    assert info["card"]["class_names"] == ["all", "hem"] and info["backend"] == "keras"
    assert info["card"]["preprocess"]["mean"] == [0.5, 0.5, 0.5]


def test_page_and_static_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="file-input"' in page.text and '<script src="/static/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "/api/v1" in js.text
    assert "cdn" not in (page.text + js.text).lower()


def test_predict_one_image(client: TestClient) -> None:
    r = client.post("/api/v1/predict", files={"file": ("cell.png", PNG, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"class", "probabilities", "model"}
    assert body["class"] in ("all", "hem") and body["model"] == "test-simplecnn"
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["class"] == ("all" if body["probabilities"]["all"] >= 0.5 else "hem")


def test_predict_ignores_the_file_name_and_type(client: TestClient) -> None:
    """A PNG uploaded as 'x.txt' with a text content type is still a PNG: content decides."""
    a = client.post("/api/v1/predict", files={"file": ("x.txt", PNG, "text/plain")}).json()
    b = client.post("/api/v1/predict", files={"file": ("../../etc/passwd", PNG, "image/png")}).json()
    assert a["probabilities"] == pytest.approx(b["probabilities"])


@pytest.mark.parametrize("how", ["query", "form"])
def test_predict_with_heatmap(client: TestClient, how: str) -> None:
    rgb = cell_image(4, height=70, width=110)
    params = {"explain": "true"} if how == "query" else {}
    data = {"explain": "true"} if how == "form" else {}
    r = client.post(
        "/api/v1/predict", params=params, data=data, files={"file": ("c.jpg", encode(rgb, ".jpg"))}
    )
    assert r.status_code == 200, r.text
    url = r.json()["heatmap"]
    assert url.startswith("data:image/png;base64,")
    png = base64.b64decode(url.split(",", 1)[1])
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape == (70, 110, 3)


BAD_UPLOADS = {
    "truncated jpeg": (encode(cell_image(2), ".jpg")[:400], 422, "truncated"),
    "text named .png": (b"hello, I am not an image\n", 415, "not a supported image"),
    "zero bytes": (b"", 400, "empty"),
    "bomb header": (png_header_claiming(100_000, 100_000), 413, "too large"),
    "over max pixels": (png_header_claiming(10_000, 5_000), 413, "over the limit"),
    "corrupt png body": (PNG[:60] + b"\x00" * 200 + PNG[-12:], 422, "not a readable image"),
}


@pytest.mark.parametrize("name", list(BAD_UPLOADS))
def test_predict_rejects_bad_images(client: TestClient, name: str) -> None:
    data, status, message = BAD_UPLOADS[name]
    r = client.post("/api/v1/predict", files={"file": ("image.png", data, "image/png")})
    assert message in _error(r, status)


def test_predict_malformed_requests(client: TestClient) -> None:
    assert "'file'" in _error(client.post("/api/v1/predict", files={"image": ("a.png", PNG)}), 422)
    assert "'file'" in _error(client.post("/api/v1/predict", files={"explain": (None, "true")}), 422)
    assert "multipart" in _error(client.post("/api/v1/predict", data={"explain": "true"}), 415)
    assert "multipart" in _error(client.post("/api/v1/predict", json={"file": "abc"}), 415)
    assert "multipart" in _error(client.post("/api/v1/predict", content=PNG), 415)
    two = [("file", ("a.png", PNG)), ("file", ("b.png", PNG))]
    assert "exactly one" in _error(client.post("/api/v1/predict", files=two), 422)
    bad_flag = client.post("/api/v1/predict", params={"explain": "maybe"}, files={"file": ("a.png", PNG)})
    assert "explain" in _error(bad_flag, 422)
    assert "explain" in _error(
        client.post("/api/v1/predict", data={"explain": "maybe"}, files={"file": ("a.png", PNG)}), 422
    )
    broken = client.post(
        "/api/v1/predict",
        content=b"--xyz\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--xyz--\r\n",
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert _error(broken, 400)
    _error(client.get("/api/v1/nothing"), 404)
    _error(client.get("/api/v1/predict"), 405)


def test_batch_mixed_files(client: TestClient) -> None:
    files = [
        ("files", ("good.png", PNG, "image/png")),
        ("files", ("empty.png", b"", "image/png")),
        ("files", ("notes.png", b"plain text", "image/png")),
        ("files", ("good2.bmp", encode(cell_image(5), ".bmp"), "image/bmp")),
    ]
    r = client.post("/api/v1/predict/batch", files=files)
    assert r.status_code == 200, r.text
    rows = r.json()
    assert [row["filename"] for row in rows] == ["good.png", "empty.png", "notes.png", "good2.bmp"]
    assert rows[1]["status"] == 400 and rows[2]["status"] == 415 and "error" not in rows[0]
    for row in (rows[0], rows[3]):
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    single = client.post("/api/v1/predict", files={"file": ("good.png", PNG)}).json()
    assert rows[0]["probabilities"] == pytest.approx(single["probabilities"], abs=1e-5)


def test_batch_malformed(client: TestClient) -> None:
    assert "'files'" in _error(client.post("/api/v1/predict/batch", files={"file": ("a.png", PNG)}), 422)
    assert _error(client.post("/api/v1/predict/batch", files={"x": (None, "1")}), 422)
    many = [("files", (f"{i}.png", b"x")) for i in range(33)]
    assert "limit is 32" in _error(client.post("/api/v1/predict/batch", files=many), 413)


def test_upload_limit_while_streaming(serve_model_dir: Path) -> None:
    settings = ServeSettings(max_upload_mb=0.01)  # ~10 kB
    big = encode(np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8))
    assert len(big) > 10_500
    with TestClient(create_app(serve_model_dir, settings)) as c:
        assert "limit" in _error(c.post("/api/v1/predict", files={"file": ("big.png", big)}), 413)

        def chunks():  # no Content-Length: the limit must hold while reading
            body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n' + big
            for i in range(0, len(body), 1024):
                yield body[i : i + 1024]

        r = c.post(
            "/api/v1/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert "limit" in _error(r, 413)
        assert c.post("/api/v1/predict", files={"file": ("ok.png", PNG)}).status_code == 200


def test_uploads_never_touch_the_disk(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above 1 MB Starlette would spool to a temporary file; our parser must not."""

    def forbidden(*args, **kwargs):
        raise AssertionError("an upload was written to disk")

    for name in ("SpooledTemporaryFile", "NamedTemporaryFile", "TemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, forbidden)
    noise = np.random.default_rng(1).integers(0, 255, (800, 800, 3), dtype=np.uint8)
    big = encode(noise)
    assert len(big) > 1024 * 1024
    r = client.post("/api/v1/predict", files={"file": ("big.png", big)})
    assert r.status_code == 200, r.text


def test_token(serve_model_dir: Path) -> None:
    with TestClient(create_app(serve_model_dir, ServeSettings(token="s3cret"))) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/").status_code == 200
        assert "token" in _error(c.get("/api/v1/model"), 401)
        assert _error(c.post("/api/v1/predict", files={"file": ("a.png", PNG)}), 401)
        wrong = {"Authorization": "Bearer nope"}
        assert _error(c.post("/api/v1/predict", files={"file": ("a.png", PNG)}, headers=wrong), 401)
        good = {"Authorization": "Bearer s3cret"}
        assert c.get("/api/v1/model", headers=good).status_code == 200
        assert c.post("/api/v1/predict", files={"file": ("a.png", PNG)}, headers=good).status_code == 200
        assert (
            c.post("/api/v1/predict/batch", files={"files": ("a.png", PNG)}, headers=good).status_code == 200
        )


def test_openapi_lists_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/health", "/api/v1/model", "/api/v1/predict", "/api/v1/predict/batch"} <= set(paths)
    body = paths["/api/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"] and body["properties"]["file"]["format"] == "binary"
    batch = paths["/api/v1/predict/batch"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert batch["properties"]["files"]["type"] == "array"
    assert {"413", "415", "422", "503"} <= set(paths["/api/v1/predict"]["post"]["responses"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_busy_server_answers_503(serve_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from leukoscope.serve.service import ModelService

    release = threading.Event()
    started = threading.Event()
    original = ModelService.predict_one

    def slow(self, data: bytes, explain: bool):
        started.set()
        release.wait(30)
        return original(self, data, explain)

    monkeypatch.setattr(ModelService, "predict_one", slow)
    with TestClient(create_app(serve_model_dir, ServeSettings(max_concurrency=1, max_queue=0))) as c:
        results = {}

        def first() -> None:
            results["first"] = c.post("/api/v1/predict", files={"file": ("a.png", PNG)})

        worker = threading.Thread(target=first)
        worker.start()
        assert started.wait(30)
        busy = c.post("/api/v1/predict", files={"file": ("b.png", PNG)})
        assert "busy" in _error(busy, 503) and busy.headers["retry-after"] == "1"
        assert c.get("/health").json()["queue"] == 1
        release.set()
        worker.join(30)
        assert results["first"].status_code == 200
        assert c.post("/api/v1/predict", files={"file": ("c.png", PNG)}).status_code == 200


def test_requests_are_logged_without_content(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="leukoscope.serve"):
        client.post("/api/v1/predict", files={"file": ("secret-name.png", PNG)})
        client.post("/api/v1/predict", files={"file": ("x.png", b"")})
    lines = [r.getMessage() for r in caplog.records if r.name == "leukoscope.serve"]
    assert any(line.startswith("POST /api/v1/predict 200 ") and line.endswith("ms") for line in lines)
    assert any(line.startswith("POST /api/v1/predict 400 ") for line in lines)
    assert not any("secret-name" in line for line in lines)


def test_model_is_loaded_once_at_startup(serve_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import leukoscope.serve.service as service

    calls = []
    real = service.load_predictor
    monkeypatch.setattr(service, "load_predictor", lambda *a, **k: calls.append(1) or real(*a, **k))
    app = create_app(serve_model_dir)
    assert calls == []  # nothing at import / app creation
    with TestClient(app) as c:
        for _ in range(3):
            c.post("/api/v1/predict", files={"file": ("a.png", PNG)})
    assert calls == [1]


def test_bad_model_fails_at_startup(tmp_path: Path) -> None:
    from leukoscope.errors import ModelError

    with pytest.raises(ModelError), TestClient(create_app(tmp_path / "missing")):
        pass


def test_default_bind_is_loopback() -> None:
    assert ServeSettings().host == "127.0.0.1"


def test_serving_an_onnx_export(serve_model_dir: Path, tmp_path: Path) -> None:
    from leukoscope.infer.export import export_model_dir

    onnx_path = export_model_dir(serve_model_dir, "onnx", tmp_path / "m.onnx").path
    fp32_app = create_app(serve_model_dir, ServeSettings(precision="fp32"))
    with TestClient(create_app(onnx_path)) as c, TestClient(fp32_app) as ref:
        info = c.get("/api/v1/model").json()
        assert info["backend"] == "onnx" and info["explain"] is False
        got = c.post("/api/v1/predict", files={"file": ("a.png", PNG)}).json()["probabilities"]
        expected = ref.post("/api/v1/predict", files={"file": ("a.png", PNG)}).json()["probabilities"]
        assert got == pytest.approx(expected, abs=1e-4)
        asked = c.post("/api/v1/predict", params={"explain": "true"}, files={"file": ("a.png", PNG)})
        assert "Keras model" in _error(asked, 400)


def test_a_folder_with_an_export_predicts_on_it_and_still_explains(
    serve_model_dir: Path, tmp_path: Path
) -> None:
    """auto serves model.tflite (faster on CPU); heatmaps come from the folder's model.keras."""
    import shutil

    from leukoscope.infer.export import export_model_dir

    folder = Path(shutil.copytree(serve_model_dir, tmp_path / "m"))
    export_model_dir(folder, "tflite")
    keras_fp32 = create_app(serve_model_dir, ServeSettings(backend="keras", precision="fp32"))
    with TestClient(create_app(folder)) as c, TestClient(keras_fp32) as ref:
        info = c.get("/api/v1/model").json()
        assert info["backend"] == "tflite" and info["explain"] is True
        r = c.post("/api/v1/predict", params={"explain": "true"}, files={"file": ("a.png", PNG)})
        assert r.status_code == 200, r.text
        expected = ref.post("/api/v1/predict", files={"file": ("a.png", PNG)}).json()["probabilities"]
        assert r.json()["probabilities"] == pytest.approx(expected, abs=1e-4)
        assert r.json()["heatmap"].startswith("data:image/png;base64,")


@pytest.mark.slow
def test_compiled_model_serves_the_same_class(serve_model_dir: Path) -> None:
    answers = []
    for compile in (False, True):
        settings = ServeSettings(compile=compile, precision="fp32")  # XLA on the Keras model, to 1e-4
        with TestClient(create_app(serve_model_dir, settings)) as c:
            answers.append(c.post("/api/v1/predict", files={"file": ("a.png", PNG)}).json())
    plain, compiled = answers
    assert compiled["class"] == plain["class"]
    for name, p in plain["probabilities"].items():
        assert compiled["probabilities"][name] == pytest.approx(p, abs=1e-4)
