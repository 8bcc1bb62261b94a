"""A run's captioner as an MLflow model: ``mlflow.pyfunc.load_model("runs:/<id>/model")``.

The model is a :class:`CaptionModel` (an ``mlflow.pyfunc.PythonModel``) around the run's best
checkpoint, saved by :func:`save_model` and logged as the run's ``model`` artifacts, with a signature and an input example, so it loads, predicts and serves
(``mlflow models serve -m runs:/<id>/model --env-manager local``) like any pyfunc model, and can
be registered in the model registry. ``predict`` takes image features (a NumPy array, or a
DataFrame with one column per feature dimension) and returns one caption per row; the decoder
can be chosen per call with ``params={"decoder": "beam", "beam_width": 3}``.
"""

from __future__ import annotations

import os
from typing import Any

import mlflow.pyfunc
import numpy as np

CHECKPOINT = "checkpoint"
#: how to enable the plugins a model's checkpoint needs (a model never imports them itself)
ENABLE_FOR_MODEL = ("enable them: mlflow.pyfunc.load_model(uri, model_config={{'plugins': "
                    "[{quoted}]}}) (or import them first)")


#: declared when saved, so ``load_model(..., model_config={"plugins": [...]})`` reaches the model;
#: empty: the model enables nothing by itself
MODEL_CONFIG = {"plugins": []}


def plugins_to_enable(context: Any) -> list[str]:
    """The plugin modules the user enabled for loading this model (``model_config={'plugins':
    [...]}`` of ``mlflow.pyfunc.load_model``)."""
    config = getattr(context, "model_config", None) or {}
    plugins = config.get("plugins") or []
    return [plugins] if isinstance(plugins, str) else list(plugins)
PARAMS = {"decoder": "", "beam_width": 0}  # "" / 0: the run's own decoding settings


class CaptionModel(mlflow.pyfunc.PythonModel):
    """Captions rows of image features with the checkpoint logged beside it."""

    def load_context(self, context: Any) -> None:
        from capx.inference import Captioner

        self.captioner = Captioner.from_checkpoint(context.artifacts[CHECKPOINT],
                                                   plugins_to_enable(context), ENABLE_FOR_MODEL)

    def predict(self, context, model_input, params=None):  # no hints: MLflow reads them as a schema
        features = np.asarray(getattr(model_input, "values", model_input), dtype=np.float64)
        params = params or {}
        decoder = params.get("decoder") or None
        options = {"beam_width": int(params["beam_width"])} if params.get("beam_width") else {}
        if decoder is None and options:
            decoder = self.captioner.decoder
        return self.captioner.caption(features, decoder, **options)


def save_model(checkpoint: str | os.PathLike, example_features: np.ndarray,
               path: str | os.PathLike) -> None:
    """Write ``checkpoint`` as a pyfunc model folder at ``path`` (signature from two examples)."""
    from mlflow.models import infer_signature

    from capx.inference import Captioner

    example = np.asarray(example_features[:2], dtype=np.float64)
    captions = Captioner.from_checkpoint(checkpoint).caption(example)
    mlflow.pyfunc.save_model(
        path, python_model=CaptionModel(), artifacts={CHECKPOINT: str(checkpoint)},
        signature=infer_signature(example, captions, params=PARAMS), input_example=example,
        pip_requirements=["capx", "numpy", "pyyaml"], model_config=dict(MODEL_CONFIG))
