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
import os
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np

IMAGE_COLUMN = "image"
PARAMS = {"decoder": "", "beam_width": 0}  # "" / 0: the run's own decoding settings


class ImageCaptionModel(mlflow.pyfunc.PythonModel):
    """Captions encoded images with the checkpoint and encoder weights logged beside it."""

    def load_context(self, context: Any) -> None:
        import json

        from capx.images.features_file import feature_settings
        from capx.inference import Captioner
        from capx.tracking.logged_model import ENABLE_FOR_MODEL, plugins_to_enable

        artifacts = context.artifacts
        self.captioner = Captioner.from_checkpoint(artifacts["checkpoint"],
                                                   plugins_to_enable(context), ENABLE_FOR_MODEL)
        spec = json.loads(Path(artifacts["encoder"]).read_text())
        centre = np.load(artifacts["centre"]) if "centre" in artifacts else None
        self.settings = feature_settings(spec["encoder"], artifacts["weights"],
                                         spec["project_512"], centre=centre)

    def predict(self, context, model_input, params=None):  # no hints: MLflow reads them as a schema
        from PIL import Image

        column = model_input[IMAGE_COLUMN] if hasattr(model_input, "columns") else model_input
        encoder = self.settings.encoder
        pixels = []
        for i, data in enumerate(list(column)):
            try:
                with Image.open(io.BytesIO(bytes(data))) as image:
                    pixels.append(encoder.preprocess(image.convert("RGB")))
            except Exception as exc:  # noqa: BLE001 - say which row could not be decoded
                raise ValueError(f"row {i} of {IMAGE_COLUMN!r} is not a decodable image: "
                                 f"{exc}") from exc
        features = encoder.encode(np.stack(pixels))
        if self.settings.transform is not None:
            features = self.settings.transform(features)
        params = params or {}
        decoder = params.get("decoder") or None
        options = {"beam_width": int(params["beam_width"])} if params.get("beam_width") else {}
        if decoder is None and options:
            decoder = self.captioner.decoder
        return self.captioner.caption(features, decoder, **options)


def save_image_model(checkpoint_path: str | os.PathLike, settings: Any,
                     path: str | os.PathLike) -> None:
    """Write a pyfunc folder at ``path`` from a checkpoint and the
    :class:`~capx.images.features_file.FeatureSettings` that made its training features."""
    import json

    import pandas as pd
    from mlflow.models import infer_signature

    from capx.encoders.weights import converted_weights
    from capx.tracking.logged_model import MODEL_CONFIG

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
        example = pd.DataFrame({IMAGE_COLUMN: [b"\x89PNG example bytes"]})
        mlflow.pyfunc.save_model(
            path, python_model=ImageCaptionModel(), artifacts=artifacts,
            signature=infer_signature(example, ["a caption"], params=PARAMS),
            pip_requirements=["capx[images]", "numpy", "pyyaml", "Pillow"],
            model_config=dict(MODEL_CONFIG))
