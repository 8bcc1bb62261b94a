"""The old import path of :mod:`capx.images.bytes_model`, kept for models saved before the move.

MLflow pickles a pyfunc model's class by its module path, so an image-bytes model saved by an
older ``capx caption --save-model`` unpickles ``capx.image_model.ImageCaptionModel``.
"""

from capx.images.bytes_model import *  # noqa: F401,F403
from capx.images.bytes_model import ImageCaptionModel  # noqa: F401
