"""A run's captioner as an MLflow 3 logged model: ``mlflow.pyfunc.load_model("runs:/<id>/model")``.

The model is a :class:`CaptionModel` (an ``mlflow.pyfunc.PythonModel``) around the run's best
checkpoint, logged by :func:`log_model` as a logged model of its run (MLflow's "Logged models",
``mlflow.search_logged_models``), so it loads by ``runs:/<run id>/model`` or ``models:/<model
id>``, registers in the model registry and serves (``mlflow models serve -m runs:/<id>/model
--env-manager local``) like any pyfunc model. ``predict`` takes image features as a NumPy array
of any float dtype, a list of rows or a DataFrame of feature columns, one row per image, and
returns one caption per row; the decoder can be chosen per call with ``params={"decoder":
"beam", "beam_width": 3}``.

The signature names the output and the params but no input schema: MLflow's schema enforcement
would refuse every dtype but one and every list, so :func:`feature_rows` checks the input
instead (numbers, the model's width) and casts it to the model's dtype. The model is saved from
code (:mod:`capx.tracking.caption_model_code`), not pickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from capx.inference import Captioner
from capx.tracking.names import MODEL

CHECKPOINT = "checkpoint"
#: how to enable the plugins a model's checkpoint needs (a model never imports them itself)
ENABLE_FOR_MODEL = ("enable them: mlflow.pyfunc.load_model(uri, model_config={{'plugins': "
                    "[{quoted}]}}) (or import them first)")
#: declared when saved, so ``load_model(..., model_config={"plugins": [...]})`` reaches the model;
#: empty: the model enables nothing by itself
MODEL_CONFIG = {"plugins": []}
MODEL_CODE = Path(__file__).with_name("caption_model_code.py")
#: "" / 0: the run's own decoding settings
PARAMS = ParamSchema([ParamSpec("decoder", "string", ""), ParamSpec("beam_width", "long", 0)])
SIGNATURE = ModelSignature(inputs=None, outputs=Schema([ColSpec("string")]), params=PARAMS)


def feature_rows(model_input: Any, width: int, dtype: Any) -> np.ndarray:
    """``model_input`` (an array, a list of rows, a DataFrame of feature columns, or one row) as
    an N x ``width`` array of ``dtype``; a clear error for anything else."""
    values = model_input.to_numpy() if isinstance(model_input, (pd.DataFrame, pd.Series)) \
        else model_input
    try:
        rows = np.asarray(values)
    except ValueError as exc:  # ragged lists
        raise ValueError(f"image features must be rows of {width} numbers each; the rows "
                         f"given have different lengths ({exc})") from exc
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.dtype == object or not (np.issubdtype(rows.dtype, np.number)
                                    or rows.dtype == np.bool_):
        raise ValueError(f"image features must be numbers (a float array, rows of floats or a "
                         f"DataFrame of {width} numeric columns); got values of dtype {rows.dtype}")
    if rows.ndim != 2 or rows.shape[1] != width:
        raise ValueError(f"image features must be N x {width} (this model's feature size, one "
                         f"row per image); got shape {rows.shape}: compute them with the "
                         f"encoder the run was trained on")
    rows = rows.astype(dtype, copy=False)
    if not np.isfinite(rows).all():
        bad = sorted({int(i) for i in np.nonzero(~np.isfinite(rows))[0]})
        raise ValueError(f"image features hold NaN or inf (rows {bad[:10]}) after conversion to "
                         f"{np.dtype(dtype).name}")
    return rows


def plugins_to_enable(context: Any) -> list[str]:
    """The plugin modules the user enabled for loading this model (``model_config={'plugins':
    [...]}`` of ``mlflow.pyfunc.load_model``)."""
    config = getattr(context, "model_config", None) or {}
    plugins = config.get("plugins") or []
    return [plugins] if isinstance(plugins, str) else list(plugins)


def decoder_choice(captioner: Captioner, params: dict[str, Any] | None) -> tuple[Any, dict]:
    """The decoder and options a ``predict`` call's ``params`` ask for (None: the run's own)."""
    params = params or {}
    decoder = params.get("decoder") or None
    options = {"beam_width": int(params["beam_width"])} if params.get("beam_width") else {}
    if decoder is None and options:
        decoder = captioner.decoder
    return decoder, options


class CaptionModel(mlflow.pyfunc.PythonModel):
    """Captions rows of image features with the checkpoint logged beside it."""

    def load_context(self, context: Any) -> None:
        self.captioner = Captioner.from_checkpoint(context.artifacts[CHECKPOINT],
                                                   plugins_to_enable(context), ENABLE_FOR_MODEL)

    # MLflow takes one input type hint (np.ndarray: no schema inferred from it); lists of rows
    # and DataFrames of feature columns are accepted as well (see feature_rows)
    def predict(self, context: Any, model_input: np.ndarray,
                params: dict[str, Any] | None = None) -> list[str]:
        features = feature_rows(model_input, self.captioner.feature_dim,
                                self.captioner.model.dtype)
        decoder, options = decoder_choice(self.captioner, params)
        return self.captioner.caption(features, decoder, **options)


def _model_files(checkpoint: str | os.PathLike, example_features: np.ndarray) -> dict[str, Any]:
    """What :func:`mlflow.pyfunc.save_model` and ``log_model`` are given."""
    return dict(python_model=str(MODEL_CODE), artifacts={CHECKPOINT: str(checkpoint)},
                signature=SIGNATURE, input_example=np.asarray(example_features[:2]),
                pip_requirements=["capx", "numpy", "pandas", "pyyaml"],
                model_config=dict(MODEL_CONFIG))


def save_model(checkpoint: str | os.PathLike, example_features: np.ndarray,
               path: str | os.PathLike) -> None:
    """Write ``checkpoint`` as a pyfunc model folder at ``path``."""
    mlflow.pyfunc.save_model(path, **_model_files(checkpoint, example_features))


def log_model(run_id: str, uri: str, checkpoint: str | os.PathLike,
              example_features: np.ndarray, step: int = 0) -> str:
    """Log ``checkpoint`` as the logged model ``model`` of MLflow run ``run_id`` in the store at
    ``uri`` (the run stays as it is: open, with its status); the run's metrics at ``step`` are
    linked to it. Returns the model id (``models:/<id>``)."""
    previous = mlflow.get_tracking_uri() if mlflow.tracking.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.start_run(run_id=run_id, log_system_metrics=False)
        try:
            info = mlflow.pyfunc.log_model(name=MODEL, step=step,
                                           **_model_files(checkpoint, example_features))
        finally:
            # leave MLflow's fluent run without closing the run: its recorder closes it
            mlflow.end_run(status="RUNNING")
    finally:
        mlflow.set_tracking_uri(previous)
    return info.model_id
