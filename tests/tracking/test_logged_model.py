"""A run's captioner as an MLflow 3 logged model of its run: found by search_logged_models, it
loads by ``runs:/`` and ``models:/`` URIs, takes the features a user has (any float dtype, lists
of rows, a DataFrame), predicts what the model samples, registers, and serves over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capx.inference import Captioner
from tests.support import free_port, read_runs, run_in_process


def _trained(folder: Path) -> tuple[str, str]:
    assert run_in_process(folder, "model.hidden_dim=12") == "FINISHED"
    _, runs = read_runs(folder)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return runs[0].info.run_id, uri


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir) -> tuple[Path, str, str]:
    """One run trained for the module's tests: (its folder, run id, tracking URI)."""
    folder = tmp_path_factory.mktemp("logged-model")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAPX_CACHE_DIR", str(cache_dir))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.chdir(folder)
        run_id, uri = _trained(folder)
    return folder, run_id, uri


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


def _best(folder: Path) -> Path:
    return next(folder.glob("outputs/job/checkpoints/best.npz"))


def test_the_model_is_a_logged_model_of_its_run(trained, set_tracking_uri):
    """MLflow 3's own view: search_logged_models finds it with the run's id, the run lists it
    among its outputs, and ``models:/<model id>`` loads the same model as ``runs:/<id>/model``."""
    import mlflow

    folder, run_id, uri = trained
    set_tracking_uri(uri)
    run = mlflow.get_run(run_id)
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string="name = 'model'", output_format="list")
    assert [m.source_run_id for m in models] == [run_id]
    assert str(models[0].status) in ("READY", "LoggedModelStatus.READY")
    assert [o.model_id for o in run.outputs.model_outputs] == [models[0].model_id]
    assert run.info.status == "FINISHED"  # logging the model left the run to its recorder

    by_id = mlflow.pyfunc.load_model(f"models:/{models[0].model_id}")
    by_run = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    features = _features(by_run)
    assert list(by_id.predict(features)) == list(by_run.predict(features))


def test_predict_takes_each_kind_of_features_a_user_has(trained, set_tracking_uri):
    """float16/32/64 arrays, a list of rows, a DataFrame of feature columns and one row all
    caption as the model's own dtype would: no MLflow schema refuses them, none warns."""
    import mlflow

    folder, run_id, uri = trained
    set_tracking_uri(uri)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. MLflow's "add type hints to predict"
        loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    captioner = Captioner.from_checkpoint(_best(folder))
    features = _features(loaded).astype(np.float16)  # exact in every kind below
    expected = captioner.caption(features.astype(captioner.model.dtype))
    kinds = {"float16": features, "float32": features.astype(np.float32),
             "float64": features.astype(np.float64), "list of rows": features.tolist(),
             "DataFrame": pd.DataFrame(features.astype(np.float32),
                                       columns=[f"f{i}" for i in range(features.shape[1])])}
    for kind, value in kinds.items():
        assert list(loaded.predict(value)) == expected, kind
    assert list(loaded.predict(features[0])) == expected[:1]
    assert loaded.metadata.signature.inputs is None  # no dtype-only schema
    assert {p.name for p in loaded.metadata.signature.params} == {"decoder", "beam_width"}


@pytest.mark.parametrize("bad, message", [
    ("narrow", "must be N x"), ("text", "must be numbers"), ("ragged", "different lengths"),
    ("nan", "NaN or inf")])
def test_features_a_model_cannot_take_are_a_clear_error(trained, set_tracking_uri, bad, message):
    import mlflow

    folder, run_id, uri = trained
    set_tracking_uri(uri)
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    rows = _features(loaded, n=1)
    value = {"narrow": rows[:, :-1], "text": [["a"] * rows.shape[1]] * 2,
             "ragged": [list(rows[0]), list(rows[0][:-1])],
             "nan": np.where(np.arange(rows.shape[1]) == 3, np.nan, rows)}[bad]
    with pytest.raises(Exception, match=message):
        loaded.predict(value)


def test_the_logged_model_captions_what_the_model_samples(trained, set_tracking_uri):
    import mlflow

    workdir, run_id, uri = trained
    set_tracking_uri(uri)
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    features = _features(loaded)
    predicted = list(loaded.predict(features))

    captioner = Captioner.from_checkpoint(_best(workdir))
    sampled = captioner.model.sample(features.astype(np.float32),
                                     max_length=captioner.tokenizer.max_length + 1)
    assert predicted == captioner.tokenizer.decode(sampled)
    assert len(predicted) == len(features) and all(isinstance(c, str) for c in predicted)

    beam = list(loaded.predict(features, params={"decoder": "beam", "beam_width": 2}))
    assert beam == captioner.caption(features, "beam", beam_width=2)


def test_a_runs_model_registers_and_loads_from_the_registry(trained, set_tracking_uri):
    """``mlflow.register_model`` on the run's ``model``; ``models:/<name>/1`` captions the same."""
    import mlflow

    _, run_id, uri = trained
    set_tracking_uri(uri)
    version = mlflow.register_model(f"runs:/{run_id}/model", "capx-captioner")
    assert int(version.version) == 1 and version.run_id == run_id
    registered = mlflow.pyfunc.load_model("models:/capx-captioner/1")
    from_run = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    features = _features(from_run)
    assert list(registered.predict(features)) == list(from_run.predict(features))


def test_features_of_the_wrong_size_are_a_clear_error(trained):
    captioner = Captioner.from_checkpoint(_best(trained[0]))
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
