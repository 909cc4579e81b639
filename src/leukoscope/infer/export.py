"""Export a trained model to ONNX so a lab can run it without PyTorch.

The graph takes a normalised float32 NCHW batch (`input`, dynamic batch, `image_size` square) and returns
`probabilities` (N, num_classes) in the card's class order, temperature included, so onnxruntime gives the
same numbers as `InferenceEngine` in fp32. The model card (preprocessing, mean/std, classes, threshold)
travels inside the file as `metadata_props`, so the `.onnx` file alone is enough to predict.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leukoscope.errors import ConfigError, ModelError
from leukoscope.models.card import ModelCard

DEFAULT_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
INPUT_DOC = "float32 NCHW RGB, (pixel / 255 - mean) / std with the card's preprocess.mean/std"
OUTPUT_DOC = "float32 (N, num_classes) probabilities in class_names order (sigmoid/softmax of logits / T)"


@dataclass
class ExportResult:
    path: Path
    exporter: str  # "torchscript" (torch.onnx.export dynamo=False) or "dynamo"
    opset: int
    input_shape: tuple[str | int, ...]


def probability_module(model: Any, card: ModelCard) -> Any:
    """Wrap the classifier so its output is probabilities in class order (what the engine returns)."""
    import torch

    class ProbabilityModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.temperature = float(card.temperature)
            self.two_class = card.num_classes == 2
            self.positive = card.positive_index

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = self.model(x).float() / self.temperature
            if not self.two_class:
                return torch.softmax(logits, dim=1)
            p = torch.sigmoid(logits.reshape(-1))
            cols = [1.0 - p, p] if self.positive == 1 else [p, 1.0 - p]
            return torch.stack(cols, dim=1)

    return ProbabilityModel().eval()


def export_onnx_bytes(model: Any, card: ModelCard, opset: int = DEFAULT_OPSET) -> bytes:
    return _export(model, card, opset)[0]


def export_onnx(model: Any, card: ModelCard, out: str | Path, opset: int = DEFAULT_OPSET) -> ExportResult:
    """Write the fp32 model with the card in its metadata, atomically."""
    from leukoscope._io import atomic_open

    data, exporter = _export(model, card, opset)
    out = Path(out)
    with atomic_open(out, "wb") as fh:
        fh.write(data)
    return ExportResult(
        out, exporter, opset, ("batch", 3, card.preprocess.image_size, card.preprocess.image_size)
    )


def export_model_dir(
    model_dir: str | Path, out: str | Path | None = None, opset: int = DEFAULT_OPSET
) -> ExportResult:
    """`leukoscope export`: a run directory -> `<dir>/model.onnx` (or `out`)."""
    from leukoscope.models.card import load_model

    model_dir = Path(model_dir)
    model, card = load_model(model_dir)
    folder = model_dir if model_dir.is_dir() else model_dir.parent
    card.model_id = card.model_id or folder.name
    return export_onnx(model, card, Path(out) if out else folder / "model.onnx", opset)


def _export(model: Any, card: ModelCard, opset: int) -> tuple[bytes, str]:
    import torch

    if card.preprocess.mean is None or card.preprocess.std is None:
        raise ModelError("model card has no normalisation mean/std", hint="re-save the model from a run")
    if not 13 <= opset <= 23:
        raise ConfigError(f"ONNX opset {opset} is not supported", hint="use 13..23 (default 17)")
    fp32 = copy.deepcopy(model).float().to("cpu", memory_format=torch.contiguous_format).eval()
    wrapped = probability_module(fp32, card)
    size = card.preprocess.image_size
    example = torch.zeros(2, 3, size, size)
    try:
        data, exporter = _export_torchscript(wrapped, example, opset), "torchscript"
    except Exception:  # the legacy exporter is deprecated; the dynamo one is slower but maintained
        data, exporter = _export_dynamo(wrapped, example, opset), "dynamo"
    return _with_metadata(data, card, exporter), exporter


def _export_torchscript(wrapped: Any, example: Any, opset: int) -> bytes:
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (example,),
            buf,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return buf.getvalue()


def _export_dynamo(wrapped: Any, example: Any, opset: int) -> bytes:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapped,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            opset_version=max(opset, 18),
            dynamo=True,
            verbose=False,
        )
    return program.model_proto.SerializeToString()


def _with_metadata(data: bytes, card: ModelCard, exporter: str) -> bytes:
    import onnx

    from leukoscope.infer.predictor import ONNX_CARD_KEY

    proto = onnx.load_from_string(data)
    props = {
        ONNX_CARD_KEY: json.dumps(card.to_dict()),
        "leukoscope.input": INPUT_DOC,
        "leukoscope.output": OUTPUT_DOC,
        "leukoscope.exporter": exporter,
    }
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"LeukoScope {card.backbone} classifier ({', '.join(card.class_names)}). {OUTPUT_DOC}"
    return proto.SerializeToString()
