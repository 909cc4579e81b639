"""The model behind the web app: decode -> preprocess -> predict (-> Grad-CAM), plus a bounded queue.

Everything here is synchronous and runs in worker threads; `InferenceGate` keeps the event loop free
and caps how many requests may wait, so overload turns into quick 503s instead of growing latency.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from leukoscope.data.images import decode_image
from leukoscope.errors import LeukoScopeError
from leukoscope.infer.predictor import (
    Predictor,
    load_predictor,
    predict_with_tta,
    predicted_labels,
    preprocess_rgb,
)
from leukoscope.serve.uploads import ApiError, sniff_image_type

T = TypeVar("T")
MB = 1024 * 1024


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"  # loopback unless the operator opts in to exposing the server
    port: int = 8000
    token: str | None = None  # when set, /api/* needs `Authorization: Bearer <token>`
    max_upload_mb: float = 20.0  # per request body
    max_pixels: int = 40_000_000  # decompression-bomb guard, checked from the header before decoding
    max_concurrency: int = 1  # inferences at once (each already uses all intra-op threads)
    max_queue: int = 32  # requests allowed to wait beyond those running; more get 503
    max_batch_files: int = 32
    backend: str = "auto"
    precision: str = "auto"
    tta: str = "none"
    compile: bool = False  # XLA-compile the Keras model (the CLI compiles it before serving)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)


class ServerBusy(Exception):
    """The queue is full; the client should retry later (HTTP 503)."""


class InferenceGate:
    """At most `concurrency` jobs in worker threads and `queue` more waiting; beyond that, ServerBusy."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._limit = max(1, concurrency) + max(0, queue)
        self.pending = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        from anyio import to_thread

        if self.pending >= self._limit:
            raise ServerBusy
        self.pending += 1
        try:
            async with self._slots:
                return await to_thread.run_sync(fn, *args)
        finally:
            self.pending -= 1


class ModelService:
    """One loaded model; thread-safe predict and explain on uploaded bytes."""

    def __init__(
        self, predictor: Predictor, settings: ServeSettings, source: str | Path | None = None
    ) -> None:
        """`source`: where the predictor came from; a model folder's model.keras then serves heatmaps
        even while predictions run on a faster export."""
        self.predictor = predictor
        self.settings = settings
        self.source = Path(source) if source is not None else None
        self._explainer: Any = None
        self._explainer_lock = threading.Lock()

    @classmethod
    def load(cls, model_path: str | Path, settings: ServeSettings) -> ModelService:
        predictor = load_predictor(
            model_path, backend=settings.backend, precision=settings.precision, compile=settings.compile
        )
        return cls(predictor, settings, model_path)

    @property
    def card(self) -> Any:
        return self.predictor.card

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.predictor.model_id,
            "backend": self.predictor.backend,
            "precision": self.predictor.precision,
            "tta": self.settings.tta,
            "explain": self.can_explain,
            "card": self.card.to_dict(),
        }

    @property
    def can_explain(self) -> bool:
        """Grad-CAM needs the Keras model's gradients: not an export, not an ensemble."""
        from leukoscope.infer.keras_backend import KerasPredictor

        return isinstance(self.predictor, KerasPredictor) or self._keras_file() is not None

    def _keras_file(self) -> Path | None:
        from leukoscope.infer.ensemble import Ensemble
        from leukoscope.models.card import WEIGHTS_NAME

        if self.source is None or isinstance(self.predictor, Ensemble):
            return None
        folder = self.source if self.source.is_dir() else self.source.parent
        path = folder / WEIGHTS_NAME
        return path if path.is_file() and (self.source.is_dir() or self.source == path) else None

    def decode(self, data: bytes) -> np.ndarray:
        """Bytes -> RGB, refusing empty (400), unknown types (415), bombs (413) and broken files (422)."""
        if not data:
            raise ApiError(400, "the uploaded file is empty (0 bytes)")
        if sniff_image_type(data) is None:
            raise ApiError(415, "not a supported image: send PNG, JPEG, BMP or TIFF")
        _check_pixels(data, self.settings.max_pixels)
        try:
            return decode_image(data, name="upload", max_pixels=self.settings.max_pixels)
        except LeukoScopeError as exc:
            raise ApiError(422, exc.what) from None

    def predict(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
        batch = np.stack([preprocess_rgb(rgb, self.card) for rgb in images])
        probs = predict_with_tta(self.predictor, batch, self.settings.tta)
        labels = predicted_labels(probs, self.card)
        return [
            {
                "class": label,
                "probabilities": {c: float(v) for c, v in zip(self.card.class_names, p, strict=True)},
                "model": self.predictor.model_id,
            }
            for label, p in zip(labels, probs, strict=True)
        ]

    def _check_explain(self, explain: bool) -> None:
        if explain and not self.can_explain:
            raise ApiError(
                400, "heatmaps need the Keras model: serve a model folder with model.keras, not an export"
            )

    def heatmap(self, rgb: np.ndarray, target: str) -> str:
        """Grad-CAM overlay of the original image for `target`, as a PNG data URL."""
        self._check_explain(True)
        return self._get_explainer().explain(rgb, target).data_url()

    def _get_explainer(self) -> Any:
        with self._explainer_lock:
            if self._explainer is None:
                from leukoscope.infer.explain import GradCamExplainer
                from leukoscope.infer.keras_backend import KerasPredictor
                from leukoscope.models.card import load_keras

                if isinstance(self.predictor, KerasPredictor):
                    model = self.predictor.model
                else:
                    model = load_keras(self._keras_file())  # type: ignore[arg-type]
                self._explainer = GradCamExplainer(model, self.card)
            return self._explainer

    def predict_one(self, data: bytes, explain: bool) -> dict[str, Any]:
        self._check_explain(explain)
        rgb = self.decode(data)
        result = self.predict([rgb])[0]
        if explain:
            result["heatmap"] = self.heatmap(rgb, result["class"])
        return result

    def predict_many(self, files: list[tuple[str | None, bytes]], explain: bool) -> list[dict[str, Any]]:
        """Per-file results in upload order; a bad file gets an `error` entry, the others still run."""
        self._check_explain(explain)
        decoded: list[tuple[int, np.ndarray]] = []
        results: list[dict[str, Any]] = [{"filename": name} for name, _ in files]
        for i, (_, data) in enumerate(files):
            try:
                decoded.append((i, self.decode(data)))
            except ApiError as exc:
                results[i].update(error=exc.message, status=exc.status)
        if decoded:
            for (i, rgb), result in zip(decoded, self.predict([rgb for _, rgb in decoded]), strict=True):
                results[i].update(result)
                if explain:
                    results[i]["heatmap"] = self.heatmap(rgb, result["class"])
        return results


def _check_pixels(data: bytes, max_pixels: int) -> None:
    """Read only the header: a 100000 x 100000 PNG of a few hundred bytes must never be decoded."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        raise ApiError(413, "image dimensions are too large to decode safely") from None
    except Exception:
        return  # PIL cannot read the header; the decoder decides (422)
    if width * height > max_pixels:
        raise ApiError(413, f"image is {width}x{height} pixels, over the limit of {max_pixels:,}")
