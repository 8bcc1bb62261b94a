"""``image_from_url``, as the CS231n assignment's ``cs231n.image_utils`` has it, so the
notebook's sample cells run with capx's imports: the picture behind a COCO URL, as an array.

Like the original it prints the error and returns None when the image cannot be had (a dead
link among thousands of COCO URLs should not stop a notebook cell). Pillow (a matplotlib
dependency) decodes.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.request

import numpy as np


def image_from_url(url: str, timeout: float = 10.0) -> np.ndarray | None:
    """The image at ``url`` as a ``(H, W, 3)`` uint8 RGB array; None (with the reason
    printed) when it cannot be fetched or decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except urllib.error.HTTPError as exc:
        print("HTTP Error: ", exc.code, url)
        return None
    except (urllib.error.URLError, OSError) as exc:
        print("URL Error: ", getattr(exc, "reason", exc), url)
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        print("Image Error: ", exc, url)
        return None
