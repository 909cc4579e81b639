"""An ensemble of trained runs that predicts like one model (`card`, `predict_arrays`), from its spec.

Methods (`infer.spec.METHODS`):
- `mean`: the average of the members' probabilities (the paper's DenseNet201 + EfficientNetB2 ensemble).
- `weighted`: a convex combination with the spec's weights (fitted on validation data by
  `experiments.ensemble.build_ensemble`).
- `mc-dropout`: each image weighted per member by that member's Monte-Carlo confidence on it
  (`infer.mc_dropout`); a member without dropout gets a `Dropout(mc_p)` inserted before its output layer
  (recorded in the spec's notes).

Members keep their own preprocessing, normalisation and temperature. When every member shares the
deterministic preprocessing (crop, size, CLAHE), `predict_arrays` takes one preprocessed batch like any
model; otherwise use `predict_images` (raw RGB) or `predict_table`, which preprocess per member.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from leukoscope.errors import ConfigError, ModelError
from leukoscope.infer.batches import predict_batched, table_images
from leukoscope.infer.keras_backend import KerasPredictor
from leukoscope.infer.loading import ModelPredictor, load_model_predictor
from leukoscope.infer.mc_dropout import mc_dropout_model, member_confidence
from leukoscope.infer.spec import EnsembleSpec, is_ensemble_spec, read_spec
from leukoscope.models.card import ModelCard

BATCH_SIZE = 64  # images per call of a member (each backend batches again inside)


class Member:
    """One trained model behind a predictor, its outputs reordered to the ensemble's class order."""

    def __init__(
        self,
        path: str | Path,
        class_names: Sequence[str],
        precision: str = "auto",
        compile: bool = False,
        backend: str = "auto",
        cache_export: bool = False,
    ) -> None:
        if is_ensemble_spec(path):
            raise ModelError("an ensemble member cannot itself be an ensemble", path=path)
        self.predictor: ModelPredictor = load_model_predictor(
            Path(path), backend=backend, precision=precision, compile=compile, cache_export=cache_export
        )
        card = self.predictor.card
        if sorted(card.class_names) != sorted(class_names):
            raise ModelError(
                f"member classes {card.class_names} differ from the ensemble's {list(class_names)}", path=path
            )
        self.path = str(path)
        self.card = card
        self.order = [card.class_names.index(c) for c in class_names]
        self.mc_note = ""
        self._mc_layers: list[Any] = []

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predictor.predict_arrays(images)[:, self.order]

    def enable_mc_dropout(self, p: float, seed: int = 0) -> str:
        """Predict through a copy of the Keras model whose dropout layers stay on (`mc_dropout_model`)."""
        if not isinstance(self.predictor, KerasPredictor):
            raise ConfigError(
                f"mc-dropout needs the Keras model, not the {self.predictor.backend} backend",
                path=self.path,
                hint="use --backend keras (or auto) with model folders that have model.keras",
            )
        base = self.predictor
        mc, self._mc_layers, inserted = mc_dropout_model(base.model, p, seed)
        # fp32: a bf16 copy would rebuild the dropout layers and lose their seeded generators
        self.predictor = KerasPredictor(mc, base.card, model_id=base.model_id, precision="fp32")
        if inserted:
            self.mc_note = (
                f"{Path(self.path).name}: no dropout in the model, inserted Dropout(p={p}) before the output"
            )
        return self.mc_note

    def reset_mc_seed(self, seed: int) -> None:
        """The same Monte-Carlo masks again: each pass of `Ensemble` starts from the spec's seed."""
        for layer in self._mc_layers:
            layer.reset(seed)


def combine(member_probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(M, N, C) -> (N, C). `weights` (M,) is one weight per member, (M, N) one per member and image."""
    if weights is None:
        return member_probs.mean(axis=0)
    w = np.asarray(weights, dtype=np.float64)
    w = w[:, None] if w.ndim == 1 else w
    w = w / w.sum(axis=0, keepdims=True)
    return np.einsum("mn,mnc->nc", w, member_probs)


ImagesFor = Callable[[Member], np.ndarray]


class Ensemble:
    """Predicts like one model (`card`, `predict_arrays`) from several runs."""

    def __init__(self, spec: EnsembleSpec, members: list[Member]) -> None:
        self.spec = spec
        self.members = members
        if spec.method == "mc-dropout":
            notes = [m.enable_mc_dropout(spec.mc_p, spec.seed) for m in members]
            spec.notes = sorted(set(spec.notes) | {n for n in notes if n})
        self.shared_preprocess = _shared_preprocess(members)
        self.card = self._card()
        self.model_id = self.card.model_id
        self.precision = members[0].predictor.precision
        self.backend = "+".join(sorted({m.predictor.backend for m in members}))

    def _card(self) -> ModelCard:
        first = self.members[0].card
        digest = hashlib.sha1(json.dumps([self.spec.members, self.spec.method]).encode()).hexdigest()[:10]
        return ModelCard(
            backbone="ensemble(" + "+".join(m.card.backbone for m in self.members) + ")",
            class_names=list(self.spec.class_names),
            preprocess=replace(first.preprocess),
            weights_source="ensemble",
            positive_class=self.spec.positive_class,
            threshold=float(self.spec.threshold),
            temperature=1.0,  # each member applies its own
            data_summary={"members": list(self.spec.members), "method": self.spec.method},
            metrics=dict(self.spec.metrics),
            model_id=f"ensemble-{digest}",
        )

    @property
    def run_dirs(self) -> list[Path]:
        return [Path(m.path) for m in self.members]

    def _member_output(
        self, member: Member, images: np.ndarray, tta: str
    ) -> tuple[np.ndarray, np.ndarray | None]:
        width = len(self.spec.class_names)

        def run() -> np.ndarray:
            probs = predict_batched(member.predict, images, BATCH_SIZE, tta=tta, width=width)
            return probs.astype(np.float64)

        if self.spec.method != "mc-dropout":
            return run(), None
        member.reset_mc_seed(self.spec.seed)
        samples = np.stack([run() for _ in range(self.spec.mc_samples)])
        return samples.mean(axis=0), member_confidence(samples, self.spec.confidence)

    def predict_members(
        self, images_for: ImagesFor, tta: str = "none"
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(M, N, C) member probabilities and, for mc-dropout, (M, N) confidences."""
        outputs = [self._member_output(m, images_for(m), tta) for m in self.members]
        probs = np.stack([o[0] for o in outputs])
        conf = np.stack([o[1] for o in outputs]) if self.spec.method == "mc-dropout" else None
        return probs, conf

    def combine(self, member_probs: np.ndarray, confidences: np.ndarray | None = None) -> np.ndarray:
        if self.spec.method == "weighted":
            return combine(member_probs, np.asarray(self.spec.weights))
        if self.spec.method == "mc-dropout":
            return combine(member_probs, confidences)
        return combine(member_probs)

    def predict_with(self, images_for: ImagesFor, tta: str = "none") -> np.ndarray:
        return self.combine(*self.predict_members(images_for, tta)).astype(np.float32)

    def predict_arrays(self, images: np.ndarray, tta: str = "none") -> np.ndarray:
        """Probabilities for images preprocessed with `card.preprocess` (members must share it)."""
        if not self.shared_preprocess:
            raise ConfigError(
                "the ensemble's members preprocess images differently, so one preprocessed batch cannot "
                "feed them all",
                hint="predict from raw images (Ensemble.predict_images / predict_table)",
            )
        images = np.asarray(images)
        return self.predict_with(lambda _m: images[None] if images.ndim == 3 else images, tta)

    def predict_images(self, rgbs: Sequence[np.ndarray], tta: str = "none") -> np.ndarray:
        """Probabilities for raw RGB uint8 images of any size: each member preprocesses them its own way."""
        from leukoscope.preprocess.pipeline import preprocess_image

        def images_for(member: Member) -> np.ndarray:
            return np.stack([preprocess_image(rgb, member.card.preprocess) for rgb in rgbs])

        return self.predict_with(images_for, tta)

    def table_members(
        self, table: Any, tta: str = "none", cache_dir: str | Path | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Member outputs for a sample table through the preprocessing cache; plus the readable mask."""
        ok_all = np.ones(len(table), dtype=bool)

        def images_for(member: Member) -> np.ndarray:
            cached = table_images(table, member.card.preprocess, cache_dir)
            ok_all[:] &= np.asarray(cached.ok, dtype=bool)
            return cached.array

        probs, conf = self.predict_members(images_for, tta)
        return probs, conf, ok_all

    def predict_table(self, table: Any, tta: str = "none", cache_dir: str | Path | None = None) -> np.ndarray:
        probs, conf, _ = self.table_members(table, tta, cache_dir)
        return self.combine(probs, conf).astype(np.float32)


def _shared_preprocess(members: list[Member]) -> bool:
    from leukoscope.preprocess.pipeline import deterministic_fields

    first = deterministic_fields(members[0].card.preprocess)
    return all(deterministic_fields(m.card.preprocess) == first for m in members[1:])


def ensemble_of(
    spec: EnsembleSpec,
    precision: str = "auto",
    *,
    compile: bool = False,
    backend: str = "auto",
    cache_export: bool = False,
) -> Ensemble:
    """The `Ensemble` of a spec; members run on `backend` (auto: each member's fastest; mc-dropout needs
    Keras, so auto means keras there). `cache_export`: as in `load_predictor`, per member."""
    if spec.method == "mc-dropout" and backend == "auto":
        backend = "keras"
    members = [Member(m, spec.class_names, precision, compile, backend, cache_export) for m in spec.members]
    return Ensemble(spec, members)


def load_ensemble(
    path: str | Path,
    precision: str = "auto",
    *,
    compile: bool = False,
    backend: str = "auto",
    cache_export: bool = False,
) -> Ensemble:
    """The `Ensemble` of an `ensemble.json` (or the folder holding it); see `ensemble_of`."""
    spec, _ = read_spec(path)
    return ensemble_of(spec, precision, compile=compile, backend=backend, cache_export=cache_export)
