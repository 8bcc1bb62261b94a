"""Dataset plugins: each returns a :class:`CaptionData` (train/val features and caption text)."""

from capx.datasets.base import CaptionData, CaptionSplit
from capx.datasets import blind, coco, shapes  # noqa: F401  (register the built-in datasets)

__all__ = ["CaptionData", "CaptionSplit"]
