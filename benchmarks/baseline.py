"""The baseline a user writes from the PyTorch tutorials, to measure leukoscope against.

torchvision `ImageFolder` (one per C-NMC fold, concatenated), PIL decode + crop to the cell + pad/resize
+ flips + rotation + CLAHE + ToTensor + Normalize on every step, DataLoader with 2 workers, fp32, NCHW, a
plain loop with Adam and BCE-with-logits. The model is the very same `create_classifier` network, so
the two sides differ only in the data path, precision and memory layout.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps


class CropToCell:
    """Tight box of the non-black pixels (the cell on C-NMC's black background), as PIL offers it."""

    def __init__(self, threshold: int = 15) -> None:
        self.threshold = threshold

    def __call__(self, img: Image.Image) -> Image.Image:
        mask = img.convert("L").point(lambda p: 255 if p > self.threshold else 0)
        box = mask.getbbox()
        return img.crop(box) if box else img


class PadResize:
    """Keep the aspect ratio: fit into size x size and pad with black (`ImageOps.pad`)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        return ImageOps.pad(img, (self.size, self.size), color=(0, 0, 0))


class RandomClahe:
    """The paper's CLAHE augmentation, with OpenCV on the L channel, probability p."""

    def __init__(self, p: float = 0.3) -> None:
        self.p = p

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return img
        import cv2

        lab = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2LAB)
        clahe = cv2.createCLAHE(clipLimit=random.uniform(1.0, 4.0), tileGridSize=(8, 8))
        lab[:, :, 0] = clahe.apply(lab[:, :, 0])
        return Image.fromarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))


def train_transform(size: int, mean: Any, std: Any) -> Any:
    from torchvision import transforms

    return transforms.Compose(
        [
            CropToCell(),
            PadResize(size),
            transforms.RandomHorizontalFlip(),
            transforms.RandomVerticalFlip(),
            transforms.RandomRotation(90),
            RandomClahe(0.3),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


def image_folder(root: Path, transform: Any) -> torch.utils.data.Dataset:
    """ImageFolder on each `training_data/fold_*` (classes all / hem), or on `root` itself."""
    from torch.utils.data import ConcatDataset
    from torchvision.datasets import ImageFolder

    folds = sorted(root.glob("**/training_data/fold_*")) or sorted(root.glob("fold_*"))
    if folds:
        return ConcatDataset([ImageFolder(str(f), transform=transform) for f in folds])
    return ImageFolder(str(root), transform=transform)


def train_steps(
    root: Path,
    backbone: str,
    size: int,
    batch_size: int,
    steps: int,
    warmup: int,
    workers: int = 2,
    mean: Any = (0.5, 0.5, 0.5),
    std: Any = (0.25, 0.25, 0.25),
    lr: float = 1e-5,
    profile_steps: int = 0,
) -> dict[str, Any]:
    """Run `warmup + steps` training steps; time the last `steps` (data wait and compute separately).

    `profile_steps` more steps then run under torch.profiler (not timed) for the breakdown.
    """
    from torch.utils.data import DataLoader

    from leukoscope.models.factory import create_classifier

    torch.manual_seed(0)
    random.seed(0)
    dataset = image_folder(root, train_transform(size, mean, std))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True)
    model = create_classifier(backbone, 2, weights="none")
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.7, 0.999))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    waits: list[float] = []
    computes: list[float] = []
    done = 0
    prof: Any = None
    while done < warmup + steps + profile_steps:
        end = time.perf_counter()
        for x, y in loader:
            got = time.perf_counter()
            optimizer.zero_grad()
            loss = loss_fn(model(x), y.float())
            loss.backward()
            optimizer.step()
            now = time.perf_counter()
            if warmup <= done < warmup + steps:
                waits.append(got - end)
                computes.append(now - got)
            done += 1
            if done == warmup + steps and profile_steps:
                from torch.profiler import ProfilerActivity, profile

                prof = profile(activities=[ProfilerActivity.CPU])
                prof.__enter__()
            end = time.perf_counter()
            if done >= warmup + steps + profile_steps:
                break
    breakdown = None
    if prof is not None:
        from benchmarks.profiling import breakdown as _breakdown

        prof.__exit__(None, None, None)
        breakdown = _breakdown(prof.key_averages())
    total = sum(waits) + sum(computes)
    return {
        "profile": breakdown,
        "images_per_s": batch_size * len(waits) / total,
        "data_wait_fraction": sum(waits) / total,
        "steps": len(waits),
        "step_s": total / len(waits),
        "workers": workers,
        "images": len(dataset),
    }
