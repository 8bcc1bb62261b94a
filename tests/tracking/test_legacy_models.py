"""Models saved before capx moved into rooms still load: MLflow pickled their classes by module
path (``capx.mlflow_model.CaptionModel``, ``capx.image_model.ImageCaptionModel``), and those
paths re-export the moved classes. The fixtures in ``legacy_models/`` were written by the capx of
49bed4d (``legacy_models/make_legacy_models.py`` says how)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import mlflow.pyfunc
import numpy as np

from capx.images.bytes_model import ImageCaptionModel
from capx.tracking.logged_model import CaptionModel

LEGACY = Path(__file__).with_name("legacy_models")


def test_a_caption_model_saved_at_the_old_path_loads_and_captions_as_it_did():
    pickled = (LEGACY / "caption_model" / "python_model.pkl").read_bytes()
    assert b"capx.mlflow_model" in pickled and b"capx.tracking" not in pickled

    loaded = mlflow.pyfunc.load_model(str(LEGACY / "caption_model"))
    expected = json.loads((LEGACY / "expected.json").read_text())
    features = np.asarray(expected["features"], dtype=np.float64)
    assert isinstance(loaded.unwrap_python_model(), CaptionModel)
    assert list(loaded.predict(features)) == expected["greedy"]
    assert list(loaded.predict(features, params={"decoder": "beam", "beam_width": 2})) == \
        expected["beam_width_2"]


def test_an_image_model_pickled_at_the_old_path_unpickles_to_the_moved_class():
    pickled = (LEGACY / "image_model_python_model.pkl").read_bytes()
    assert b"capx.image_model" in pickled
    assert type(pickle.loads(pickled)) is ImageCaptionModel
