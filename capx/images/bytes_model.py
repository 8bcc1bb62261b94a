"""A captioner of image bytes as an MLflow pyfunc model: pictures in, one caption each out.

Where a run's logged ``model/`` (:mod:`capx.tracking.logged_model`) takes feature rows, this one takes
the encoded images themselves (JPEG, PNG, ... bytes in a column ``image``) and computes the
features the run was trained on. The folder is self-contained: the checkpoint, the encoder's
converted ``.npz`` weights and, for a 512-d model, the projection's centre, so serving needs
neither the weights package nor coco-mini::

    capx caption --run <run id> --save-model image_model/
    model = mlflow.pyfunc.load_model("image_model")
    model.predict(pandas.DataFrame({"image": [open("photo.jpg", "rb").read()]}))
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from capx.encoders.weights import converted_weights
from capx.images.features_file import feature_settings
from capx.inference import Captioner
from capx.tracking.logged_model import (ENABLE_FOR_MODEL, MODEL_CONFIG, PARAMS, decoder_choice,
                                        plugins_to_enable)

IMAGE_COLUMN = "image"
MODEL_CODE = Path(__file__).with_name("bytes_model_code.py")
SIGNATURE = ModelSignature(inputs=Schema([ColSpec("binary", IMAGE_COLUMN)]),
                           outputs=Schema([ColSpec("string")]), params=PARAMS)


def image_bytes_column(model_input: Any) -> list[bytes]:
    """The encoded images in ``model_input`` (a DataFrame or dict with a column ``image``, a
    list of bytes, or one bytes object); a clear error for anything else."""
    if isinstance(model_input, (bytes, bytearray)):
        return [bytes(model_input)]
    if isinstance(model_input, (pd.DataFrame, dict)):
        if IMAGE_COLUMN not in model_input:
            raise ValueError(f"the image model takes a column {IMAGE_COLUMN!r} of encoded image "
                             f"bytes; got columns {list(model_input.keys())}")
        model_input = model_input[IMAGE_COLUMN]
    column = list(model_input)
    for i, data in enumerate(column):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"row {i} of {IMAGE_COLUMN!r} is a {type(data).__name__}, not the "
                             f"bytes of an image file: pass open(path, 'rb').read()")
    return [bytes(data) for data in column]


class ImageCaptionModel(mlflow.pyfunc.PythonModel):
    """Captions encoded images with the checkpoint and encoder weights logged beside it."""

    def load_context(self, context: Any) -> None:
        artifacts = context.artifacts
        self.captioner = Captioner.from_checkpoint(artifacts["checkpoint"],
                                                   plugins_to_enable(context), ENABLE_FOR_MODEL)
        spec = json.loads(Path(artifacts["encoder"]).read_text())
        centre = np.load(artifacts["centre"]) if "centre" in artifacts else None
        self.settings = feature_settings(spec["encoder"], artifacts["weights"],
                                         spec["project_512"], centre=centre)

    # MLflow takes one input type hint (a DataFrame: no schema inferred from it; the signature
    # names the column); a list of bytes is accepted as well (see image_bytes_column)
    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> list[str]:
        from PIL import Image  # the images extra: imported where a picture is decoded

        encoder = self.settings.encoder
        pixels = []
        for i, data in enumerate(image_bytes_column(model_input)):
            try:
                with Image.open(io.BytesIO(bytes(data))) as image:
                    pixels.append(encoder.preprocess(image.convert("RGB")))
            except Exception as exc:  # noqa: BLE001 - say which row could not be decoded
                raise ValueError(f"row {i} of {IMAGE_COLUMN!r} is not a decodable image: "
                                 f"{exc}") from exc
        if not pixels:
            return []
        features = encoder.encode(np.stack(pixels))
        if self.settings.transform is not None:
            features = self.settings.transform(features)
        decoder, options = decoder_choice(self.captioner, params)
        return self.captioner.caption(features, decoder, **options)


def save_image_model(checkpoint_path: str | os.PathLike, settings: Any,
                     path: str | os.PathLike) -> None:
    """Write a pyfunc folder at ``path`` from a checkpoint and the
    :class:`~capx.images.features_file.FeatureSettings` that made its training features."""
    encoder_name = settings.attributes["encoder"]
    weights = converted_weights(settings.encoder.weights_source, encoder_name)
    with tempfile.TemporaryDirectory(prefix="capx-image-model-") as tmp:
        artifacts = {"checkpoint": str(checkpoint_path),
                     "weights": str(weights),
                     "encoder": str(Path(tmp) / "encoder.json")}
        Path(artifacts["encoder"]).write_text(json.dumps(
            {"encoder": encoder_name, "project_512": settings.centre is not None}))
        if settings.centre is not None:
            artifacts["centre"] = str(Path(tmp) / "centre.npy")
            np.save(artifacts["centre"], settings.centre)
        example = pd.DataFrame({IMAGE_COLUMN: [_example_png()]})
        mlflow.pyfunc.save_model(
            path, python_model=str(MODEL_CODE), artifacts=artifacts,
            signature=SIGNATURE, input_example=example,
            pip_requirements=["capx[images]", "numpy", "pyyaml", "Pillow"],
            model_config=dict(MODEL_CONFIG))


def _example_png() -> bytes:
    """A small grey PNG: the model's input example (MLflow checks it predicts when saving)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()
