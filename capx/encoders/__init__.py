"""Image encoder plugins: pixels to one feature row per image (NumPy only, no torch)."""

from capx.encoders.base import ImageEncoder
from capx.encoders import efficientnet_lite0  # noqa: F401  (registers the built-in encoder)

__all__ = ["ImageEncoder"]
