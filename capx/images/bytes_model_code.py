"""The code MLflow runs to load an image-bytes model (``python_model`` given as a file, so the
model is built from code instead of unpickled): see :mod:`capx.images.bytes_model`."""

import mlflow.models

from capx.images.bytes_model import ImageCaptionModel

mlflow.models.set_model(ImageCaptionModel())
