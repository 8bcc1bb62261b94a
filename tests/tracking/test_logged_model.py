"""A run's captioner as an MLflow pyfunc model: it loads, predicts what the model samples, and
is scored from Python, and serves over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from capx.inference import Captioner
from tests.support import free_port, read_runs, run_in_process


def _trained(folder: Path) -> tuple[str, str]:
    assert run_in_process(folder, "model.hidden_dim=12") == "FINISHED"
    _, runs = read_runs(folder)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return runs[0].info.run_id, uri


def _features(model, n: int = 5) -> np.ndarray:
    example = np.asarray(model.input_example, dtype=np.float64)
    noise = np.random.default_rng(0).normal(size=(n, example.shape[1]))
    return np.concatenate([example, noise])


@pytest.fixture
def set_tracking_uri():
    """``mlflow.set_tracking_uri`` for one test, undone after it: MLflow keeps the URI in a
    global and in ``$MLFLOW_TRACKING_URI``, and would send later tests' runs to this store."""
    import mlflow

    yield mlflow.set_tracking_uri
    mlflow.set_tracking_uri(None)


def test_the_logged_model_captions_what_the_model_samples(workdir, set_tracking_uri):
    import mlflow

    run_id, uri = _trained(workdir)
    set_tracking_uri(uri)
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


def test_a_runs_model_registers_and_loads_from_the_registry(workdir, set_tracking_uri):
    """``mlflow.register_model`` on the run's ``model/``; ``models:/<name>/1`` captions the same."""
    import mlflow

    run_id, uri = _trained(workdir)
    set_tracking_uri(uri)
    version = mlflow.register_model(f"runs:/{run_id}/model", "capx-captioner")
    assert int(version.version) == 1 and version.run_id == run_id
    registered = mlflow.pyfunc.load_model("models:/capx-captioner/1")
    from_run = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    features = _features(from_run)
    assert list(registered.predict(features)) == list(from_run.predict(features))


def test_features_of_the_wrong_size_are_a_clear_error(workdir):
    _trained(workdir)
    captioner = Captioner.from_checkpoint(next(workdir.glob("outputs/job/checkpoints/best.npz")))
    with pytest.raises(ValueError, match=f"N x {captioner.feature_dim}"):
        captioner.caption(np.zeros((2, captioner.feature_dim + 1)))


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations(workdir, set_tracking_uri):
    """``mlflow models serve --env-manager local`` runs uvicorn from the venv: its bin on PATH."""
    import mlflow

    run_id, uri = _trained(workdir)
    set_tracking_uri(uri)
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    features = _features(loaded, n=1)
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{run_id}/model",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = json.dumps({"inputs": features.tolist()}).encode()
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and answer is None and server.poll() is None:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body,
                                                 {"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    answer = json.loads(response.read())
            except OSError:
                time.sleep(1)
        assert answer is not None, f"the model server never answered (exit {server.poll()})"
        assert answer["predictions"] == list(loaded.predict(features))
    finally:
        server.terminate()
        server.wait(timeout=30)
