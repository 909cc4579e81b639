"""`RandomCLAHE`: CLAHE as a torchvision transforms v2 augmentation (the paper augments with CLAHE)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2._utils import is_pure_tensor

from leukoscope.preprocess.clahe import apply_clahe


class RandomCLAHE(Transform):
    """With probability `p`, apply CLAHE with a clip limit drawn uniformly from `clip_limit`.

    Works on uint8 or float (in [0, 1]) tensors `(..., 3, H, W)`, `tv_tensors.Image` and PIL images; boxes,
    masks and labels pass through untouched. One draw per call, so every image of a batch tensor
    gets the same decision and clip limit (as torchvision's own random transforms do).
    """

    _transformed_types = (is_pure_tensor, tv_tensors.Image, PIL.Image.Image)

    def __init__(
        self, p: float = 0.5, clip_limit: float | Sequence[float] = (1.0, 4.0), grid: int = 8
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        low, high = (clip_limit, clip_limit) if isinstance(clip_limit, int | float) else clip_limit
        if not 0 < low <= high:
            raise ValueError(f"clip_limit must be positive with low <= high, got {clip_limit}")
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        self.p = float(p)
        self.clip_limit = (float(low), float(high))
        self.grid = int(grid)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        apply = bool(torch.rand(1).item() < self.p)
        low, high = self.clip_limit
        clip = low + (high - low) * torch.rand(1).item()
        return {"apply": apply, "clip": clip}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not params["apply"]:
            return inpt
        if isinstance(inpt, PIL.Image.Image):
            rgb = np.asarray(inpt.convert("RGB"))
            return PIL.Image.fromarray(apply_clahe(rgb, params["clip"], self.grid))
        out = _clahe_tensor(inpt.as_subclass(torch.Tensor), params["clip"], self.grid)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


def _clahe_tensor(x: torch.Tensor, clip: float, grid: int) -> torch.Tensor:
    """OpenCV works on HWC uint8, so convert (and convert back to the input's dtype and layout)."""
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"RandomCLAHE needs (..., 3, H, W) RGB tensors, got shape {tuple(x.shape)}")
    is_float = x.is_floating_point()
    if not is_float and x.dtype != torch.uint8:
        raise ValueError(f"RandomCLAHE needs uint8 or float tensors, got {x.dtype}")
    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8) if is_float else x
    flat = u8.reshape(-1, *u8.shape[-3:]).permute(0, 2, 3, 1).cpu().numpy()
    done = np.stack([apply_clahe(np.ascontiguousarray(img), clip, grid) for img in flat])
    out = torch.from_numpy(done).permute(0, 3, 1, 2).reshape(x.shape).to(x.device)
    return (out.to(x.dtype) / 255) if is_float else out
