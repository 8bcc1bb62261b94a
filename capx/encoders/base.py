"""What every image encoder offers: preprocessing of one decoded image, and batched features."""

from __future__ import annotations

from typing import Any

import numpy as np


class ImageEncoder:
    """Turns RGB pictures into one float32 feature row each.

    ``preprocess(image)`` takes a PIL image (or anything :func:`PIL.Image.open` returns) and
    gives the network's input (H, W, 3) float32; ``encode(batch)`` maps (N, H, W, 3) to
    (N, feature_dim). ``name`` is set by the registry.
    """

    name = ""
    feature_dim: int = 0

    def preprocess(self, image: Any) -> np.ndarray:
        raise NotImplementedError

    def encode(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError
