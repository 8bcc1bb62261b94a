"""Pixels to network input, as coco-mini's features were made: Pillow decodes, RGB, the shorter
side resized to 256 (bicubic), a centred 224 crop, then ``(x - 127) / 128`` per channel."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np


class ImageReadError(ValueError):
    """An image file that Pillow cannot decode."""


def open_image(path: str | os.PathLike) -> Any:
    """The decoded RGB image at ``path``; an unreadable file, or one too large to decode safely
    (more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS``, a possible decompression bomb),
    raises :class:`ImageReadError`, so the caller lists it and goes on with the others."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError) as exc:
        raise ImageReadError(f"image {path} is too large to decode safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot decode image {path}: {exc}") from exc


def resize_shorter_side(image: Any, size: int) -> Any:
    """Scale so the shorter side is ``size``, bicubic. The longer side is rounded, not
    truncated: on coco-mini's own JPEGs truncating moves the features 8-14% (relative L2) away
    from its ``features_effl0.h5``, rounding matches it to float16 precision."""
    from PIL import Image

    width, height = image.size
    scale = size / min(width, height)
    new = (size, max(1, round(height * scale))) if width <= height else \
        (max(1, round(width * scale)), size)
    return image.resize(new, Image.BICUBIC)


def centre_crop(image: Any, size: int) -> Any:
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def preprocess_image(image: Any, resize_to: int = 256, crop: int = 224) -> np.ndarray:
    """(crop, crop, 3) float32 network input from a PIL image or a uint8 (H, W, 3) array."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    image = centre_crop(resize_shorter_side(image.convert("RGB"), resize_to), crop)
    return (np.asarray(image, dtype=np.float32) - 127.0) / 128.0
