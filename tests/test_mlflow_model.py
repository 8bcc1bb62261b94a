"""A run's captioner as an MLflow pyfunc model: it loads, predicts what the model samples, and
is scored from Python."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from capx.inference import Captioner
from tests.test_experiment import _run_in_process, _runs, cache_dir, workdir  # noqa: F401


def _trained(folder: Path) -> tuple[str, str]:
    assert _run_in_process(folder, "model.hidden_dim=12") == "FINISHED"
    _, runs = _runs(folder)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return runs[0].info.run_id, uri


def _features(model, n: int = 5) -> np.ndarray:
    example = np.asarray(model.input_example, dtype=np.float64)
    noise = np.random.default_rng(0).normal(size=(n, example.shape[1]))
    return np.concatenate([example, noise])


def test_the_logged_model_captions_what_the_model_samples(workdir):
    import mlflow

    run_id, uri = _trained(workdir)
    mlflow.set_tracking_uri(uri)
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    features = _features(loaded)
    predicted = list(loaded.predict(features))

    best = next(workdir.glob("outputs/job/checkpoints/best.npz"))
    captioner = Captioner.from_checkpoint(best)
    sampled = captioner.model.sample(features.astype(np.float32),
                                     max_length=captioner.tokenizer.max_length + 1)
    assert predicted == captioner.tokenizer.decode(sampled)
    assert len(predicted) == len(features) and all(isinstance(c, str) for c in predicted)

    beam = list(loaded.predict(features, params={"decoder": "beam", "beam_width": 2}))
    assert beam == captioner.caption(features, "beam", beam_width=2)
    assert loaded.metadata.signature.inputs.to_dict()[0]["type"] == "tensor"


def test_features_of_the_wrong_size_are_a_clear_error(workdir):
    _trained(workdir)
    captioner = Captioner.from_checkpoint(next(workdir.glob("outputs/job/checkpoints/best.npz")))
    with pytest.raises(ValueError, match=f"N x {captioner.feature_dim}"):
        captioner.caption(np.zeros((2, captioner.feature_dim + 1)))
