"""The code MLflow runs to load a run's logged model (``python_model`` given as a file, so the
model is built from code instead of unpickled): see :mod:`capx.tracking.logged_model`."""

import mlflow.models

from capx.tracking.logged_model import CaptionModel

mlflow.models.set_model(CaptionModel())
