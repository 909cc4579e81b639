"""The FastAPI app: a JSON API, a no-build web page, and the safety rails around uploads.

Every error leaves as one JSON object `{"error": "..."}` with a fitting 4xx/5xx code, so scripts and the
page handle failures one way. The model is loaded once (lifespan) and inference runs in worker threads.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leukoscope import __version__
from leukoscope.infer.predictor import Predictor
from leukoscope.serve.service import InferenceGate, ModelService, ServerBusy, ServeSettings
from leukoscope.serve.uploads import ApiError, Part, check_content_length, read_multipart

log = logging.getLogger("leukoscope.serve")
STATIC_DIR = Path(str(resources.files("leukoscope.serve") / "static"))
API = "/api/v1"
_bearer = HTTPBearer(auto_error=False, description="needed when the server was started with --token")

ERROR_SCHEMA = {
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
        }
    }
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text, **ERROR_SCHEMA}
    for code, text in {
        400: "malformed request or empty file",
        401: "missing or wrong API token",
        413: "upload or image dimensions over the limit",
        415: "not multipart/form-data, or not a supported image type",
        422: "missing form field or an image that cannot be decoded",
        503: "server busy: the inference queue is full, retry later",
    }.items()
}


def _upload_body(field: str, many: bool) -> dict[str, Any]:
    """OpenAPI description of the multipart body (parsed by hand so it never spools to disk)."""
    file_schema: dict[str, Any] = {"type": "string", "format": "binary"}
    prop = {"type": "array", "items": file_schema} if many else file_schema
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {field: prop, "explain": {"type": "boolean", "default": False}},
                        "required": [field],
                    }
                }
            },
        }
    }


class RequestLog:
    """Pure ASGI middleware: method, path, status, milliseconds; never headers or bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-content-type-options", b"nosniff")]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            ms = (time.perf_counter() - start) * 1000
            log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, ms)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(
    model: str | Path | Predictor, settings: ServeSettings | None = None, source: str | Path | None = None
) -> FastAPI:
    """The app for one model: a path is loaded once when the app starts (lifespan), not at import;
    a `Predictor` that is already loaded (the CLI checks the model before binding the port) is used as is,
    `source` saying where it came from (so a folder's model.keras can serve heatmaps)."""
    settings = settings or ServeSettings()

    def load() -> ModelService:
        if isinstance(model, str | Path):
            return ModelService.load(model, settings)
        return ModelService(model, settings, source)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from anyio import to_thread

        app.state.service = await to_thread.run_sync(load)
        app.state.gate = InferenceGate(settings.max_concurrency, settings.max_queue)
        log.info(
            "model %s loaded (%s)", app.state.service.predictor.model_id, app.state.service.predictor.backend
        )
        yield

    app = FastAPI(
        title="LeukoScope",
        version=__version__,
        description="Classify single-cell microscope images as leukemic blast (ALL) or normal (HEM).",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI would load from a CDN; /openapi.json is the spec
        redoc_url=None,
    )
    app.state.settings = settings
    _add_error_handlers(app)
    _add_routes(app, settings)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(RequestLog)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def upload_error(_: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(ServerBusy)
    async def busy(_: Request, __: ServerBusy) -> JSONResponse:
        return error(503, "server busy: too many requests waiting, retry shortly", {"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        return error(422, f"invalid {where or 'request'}: {first.get('msg', 'malformed')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error(500, f"internal error ({type(exc).__name__})")


def _add_routes(app: FastAPI, settings: ServeSettings) -> None:
    def require_token(creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        if settings.token is None:
            return
        given = creds.credentials if creds is not None else ""
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            raise ApiError(401, "missing or wrong API token (send 'Authorization: Bearer <token>')")

    auth = [Depends(require_token)]

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    @app.get("/health", tags=["service"])
    async def health(request: Request) -> dict[str, Any]:
        """Liveness: open without a token so load balancers can probe it."""
        service: ModelService = request.app.state.service
        return {"status": "ok", "model": service.predictor.model_id, "queue": request.app.state.gate.pending}

    @app.get(f"{API}/model", tags=["model"], dependencies=auth, responses=ERROR_RESPONSES)
    async def model_info(request: Request) -> dict[str, Any]:
        """The model card (classes, preprocessing, threshold, metrics) and how it is served."""
        return request.app.state.service.describe()

    def predict_route(path: str, field: str, many: bool) -> Any:
        """POST `path`: token-checked, its multipart body (form field `field`) described for OpenAPI."""
        return app.post(
            path,
            tags=["predict"],
            dependencies=auth,
            responses=ERROR_RESPONSES,
            openapi_extra=_upload_body(field, many=many),
        )

    @predict_route(f"{API}/predict", "file", many=False)
    async def predict(
        request: Request, explain: bool = Query(False, description="add a Grad-CAM heatmap")
    ) -> Any:
        """One image (form field `file`) -> {class, probabilities, model[, heatmap]}."""
        files, explain = await _images(request, settings, "file", explain, many=False)
        service: ModelService = request.app.state.service
        return await request.app.state.gate.run(service.predict_one, bytes(files[0].data), explain)

    @predict_route(f"{API}/predict/batch", "files", many=True)
    async def predict_batch(
        request: Request, explain: bool = Query(False, description="add Grad-CAM heatmaps")
    ) -> Any:
        """Several images (form field `files`) -> a list; a bad image gets {filename, error, status}."""
        files, explain = await _images(request, settings, "files", explain, many=True)
        service: ModelService = request.app.state.service
        payload = [(f.filename, bytes(f.data)) for f in files]
        return await request.app.state.gate.run(service.predict_many, payload, explain)


_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
}


async def _read_parts(request: Request, settings: ServeSettings) -> list[Part]:
    limit = settings.max_upload_bytes
    check_content_length(request.headers.get("content-length"), limit)
    return await read_multipart(request.headers.get("content-type"), request.stream(), limit)


async def _images(
    request: Request, settings: ServeSettings, field: str, explain: bool, *, many: bool
) -> tuple[list[Part], bool]:
    """The image parts of form field `field` (exactly one, or `many`: 1 to max_batch_files) and whether to
    explain them (the query parameter or an `explain` form field)."""
    parts = await _read_parts(request, settings)
    files = _files(parts, field)
    if not many and len(files) != 1:
        raise ApiError(422, f"send exactly one image in the form field {field!r}")
    if many and not files:
        raise ApiError(422, f"send one or more images in the form field {field!r}")
    if many and len(files) > settings.max_batch_files:
        raise ApiError(413, f"{len(files)} files in one request; the limit is {settings.max_batch_files}")
    return files, explain or _form_flag(parts, "explain")


def _files(parts: list[Part], field: str) -> list[Part]:
    """File parts of `field`; any other file field is a client mistake worth naming."""
    files = [p for p in parts if p.name == field and p.is_file]
    others = sorted({p.name for p in parts if p.is_file and p.name != field})
    if others and not files:
        raise ApiError(422, f"unexpected form field {others[0]!r}: send the image as {field!r}")
    return files


def _form_flag(parts: list[Part], name: str) -> bool:
    values = [bytes(p.data).decode("utf-8", "replace").strip().lower() for p in parts if p.name == name]
    if not values:
        return False
    if values[-1] not in ("true", "false", "1", "0", "yes", "no", "on", "off", ""):
        raise ApiError(422, f"form field {name!r} must be true or false")
    return values[-1] in ("true", "1", "yes", "on")
