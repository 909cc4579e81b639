"""Decode any supported image file to RGB uint8, or fail with one clear `DataError`.

Every stage decodes through here, so 16-bit TIFFs, grayscale, RGBA, truncated files and decompression
bombs are handled once, the same way.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from leukoscope.errors import DataError

IMAGE_SUFFIXES = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
DEFAULT_MAX_PIXELS = 64_000_000  # far above any microscope tile we expect; stops decompression bombs


def is_image_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path, *, center_crop: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read `path` as H x W x 3 RGB uint8; `center_crop` > 0 keeps the centred square of that side."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read image ({exc.strerror or exc})", path=path) from None
    return decode_image(data, name=str(path), center_crop=center_crop, max_pixels=max_pixels)


def decode_image(
    data: bytes, *, name: str = "<bytes>", center_crop: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode image bytes; the content decides the format, never the file name."""
    if not data:
        raise DataError("empty file (0 bytes)", path=name, hint="remove it or replace it with the image")
    _check_dimensions(data, name, max_pixels)
    _check_complete(data, name)
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DataError("not a readable image (corrupt, truncated or not an image)", path=name)
    rgb = _to_rgb_uint8(arr, name)
    return _center_crop(rgb, center_crop) if center_crop else rgb


def _check_dimensions(data: bytes, name: str, max_pixels: int) -> None:
    """Read the header only (PIL is lazy) so a huge image is refused before it is decoded."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        raise DataError("image is too large to decode safely", path=name) from None
    except Exception:
        return  # not something PIL knows; OpenCV gets the final say
    if width * height > max_pixels:
        raise DataError(
            f"image is {width}x{height} pixels, over the limit of {max_pixels:,}",
            path=name,
            hint="downscale it first",
        )


def _check_complete(data: bytes, name: str) -> None:
    """OpenCV decodes truncated JPEGs into half-grey images without failing; refuse them instead."""
    if data[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in data[-1024:]:
        raise DataError(
            "truncated JPEG (no end-of-image marker)", path=name, hint="re-export or remove the file"
        )
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        raise DataError("truncated PNG (no IEND chunk)", path=name, hint="re-export or remove the file")
    if data[:2] == b"BM" and len(data) >= 6:
        declared = int.from_bytes(data[2:6], "little")
        if declared > len(data):
            raise DataError(
                f"truncated BMP ({len(data)} of {declared} bytes)", path=name, hint="copy the file again"
            )


def _to_rgb_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.uint16:
        arr = (arr / 257.0).round().astype(np.uint8)
    elif arr.dtype in (np.float32, np.float64):
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise DataError(f"unsupported pixel type {arr.dtype}", path=name)
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    channels = arr.shape[2]
    if channels == 1:
        return cv2.cvtColor(arr[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    if channels == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    raise DataError(f"unsupported channel count {channels}", path=name)


def _center_crop(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    if h <= side and w <= side:
        return img
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[top : top + side, left : left + side]
