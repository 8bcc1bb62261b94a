"""End-to-end experiments on tiny shapes data, read back from the MLflow store.

Fast tests run ``capx.run.main.run`` in-process on a config composed like ``run.py`` would;
one runs ``run.py -m`` as a subprocess. Launcher, interrupt and server tests are marked slow.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from capx.checkpoint import load_checkpoint
from capx.run.config import ConfigError
from capx.run.main import JobContext, run

from tests.support import REPO, SMOKE, artifact_paths, free_port, mlflow_client, read_runs, run_in_process, run_py, subprocess_env



# -- in-process ---------------------------------------------------------------------------------


def test_single_run_records_everything(workdir):
    assert run_in_process(workdir, "model.hidden_dim=12") == "FINISHED"
    client, runs = read_runs(workdir)
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED"
    assert r.info.run_name.startswith("word-lstm-s0")
    assert r.data.params["model.hidden_dim"] == "12"
    assert r.data.params["dataset.num_train"] == "40"
    assert r.data.tags["tokenizer"] == "word" and r.data.tags["cell"] == "lstm"
    assert r.data.tags["dataset"] == "shapes"
    assert r.data.tags["hydra.output_dir"].endswith("job")
    metrics = r.data.metrics
    assert metrics["params/total"] > metrics["params/W_embed"] > 0
    assert np.isfinite(metrics["val/loss"]) and metrics["time/epoch_seconds"] > 0
    assert metrics["speed/tokens_per_second"] > 0
    history = client.get_metric_history(r.info.run_id, "train/loss")
    assert len(history) == 10  # smoke: 10 iterations, logged every iteration
    artifacts = artifact_paths(client, r.info.run_id)
    assert {"checkpoints/last.npz", "checkpoints/best.npz", "config/config.yaml",
            "samples/epoch_001.txt", "plots/loss_curve.png", "samples/grid.png"} <= artifacts
    samples = client.download_artifacts(r.info.run_id, "samples/epoch_001.txt", str(workdir))
    assert "reference:" in Path(samples).read_text()


def test_resume_continues_the_loss_curve_exactly(workdir):
    two = ["solver.num_epochs=2", "tracking.enabled=false"]
    assert run_in_process(workdir, *two, name="full") == "FINISHED"
    assert run_in_process(workdir, "solver.num_epochs=1", "tracking.enabled=false",
                           name="half") == "FINISHED"
    half = workdir / "outputs" / "half" / "checkpoints" / "last.npz"
    assert load_checkpoint(half).state["iteration"] == 10
    assert run_in_process(workdir, *two, f"resume={half}", name="resumed") == "FINISHED"
    full = load_checkpoint(workdir / "outputs" / "full" / "checkpoints" / "last.npz").state
    resumed = load_checkpoint(workdir / "outputs" / "resumed" / "checkpoints" / "last.npz").state
    assert resumed["iteration"] == full["iteration"] == 20
    assert resumed["loss_history"] == full["loss_history"]
    for name, value in full["params"].items():
        np.testing.assert_array_equal(resumed["params"][name], value)


@pytest.mark.slow  # test_resume's override test refuses fixed settings in the default suite
def test_resume_refuses_another_model_shape_by_name_before_any_run(workdir):
    assert run_in_process(workdir, name="a") == "FINISHED"
    last = workdir / "outputs" / "a" / "checkpoints" / "last.npz"
    with pytest.raises(ConfigError, match=r"model.hidden_dim \(trained with 16, asked for 20\)"):
        run_in_process(workdir, "model.hidden_dim=20", f"resume={last}", name="b")
    _, runs = read_runs(workdir)
    assert [r.info.status for r in runs] == ["FINISHED"]  # no second run, the first untouched
    assert not (workdir / "outputs" / "b" / "checkpoints").exists()


def test_non_finite_loss_fails_the_run_clearly(workdir):
    status = run_in_process(workdir, "solver.update_rule=sgd", "solver.learning_rate=1e300",
                             "solver.num_epochs=3")
    assert status == "FAILED"
    _, runs = read_runs(workdir)
    r = runs[0]
    assert r.info.status == "FAILED"
    assert r.data.tags["error_type"] == "TrainingDivergedError"
    assert "lower the learning rate" in r.data.tags["error"]


# -- run.py as a user runs it ---------------------------------------------------------------------


@pytest.mark.slow  # a 2-job sweep; test_hparams_search nests a sweep's job in the default suite
def test_multirun_sweep_nests_one_run_per_tokenizer(workdir, cache_dir):
    result = run_py(workdir, cache_dir, "-m", "tokenizer=char,word", *SMOKE)
    assert result.returncode == 0, result.stdout + result.stderr
    client, runs = read_runs(workdir)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    by_tokenizer = {c.data.tags["tokenizer"]: c for c in children}
    assert set(by_tokenizer) == {"char", "word"}
    assert by_tokenizer["char"].info.run_name.startswith("char-lstm-s0")
    char_len = int(by_tokenizer["char"].data.params["tokenizer.max_length"])
    word_len = int(by_tokenizer["word"].data.params["tokenizer.max_length"])
    assert char_len > 3 * word_len
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.metrics["params/total"] > 0 and "val/loss" in child.data.metrics
        assert "checkpoints/last.npz" in artifact_paths(client, child.info.run_id)
    # the char model's vocabulary (and so its embedding) is much smaller
    assert (by_tokenizer["char"].data.metrics["params/W_embed"]
            < by_tokenizer["word"].data.metrics["params/W_embed"])


# -- slow: signals, launchers, the UI -------------------------------------------------------------


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_marks_the_run_killed(workdir, cache_dir):
    process = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), *SMOKE, "solver.num_epochs=200",
         "hydra.run.dir=out"], cwd=workdir, env=subprocess_env(cache_dir),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not (workdir / "out" / "checkpoints" / "last.npz").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "Traceback" not in output
    _, runs = read_runs(workdir)
    assert runs[0].info.status == "KILLED"
    checkpoint = load_checkpoint(workdir / "out" / "checkpoints" / "last.npz")
    assert 10 <= checkpoint.state["iteration"] < 2000
    # resume by run id alone continues with the checkpoint's own config
    resumed = run_py(workdir, cache_dir, f"resume={runs[0].info.run_id}",
                      "hydra.run.dir=out2", timeout=600)
    assert "resuming at iteration" in resumed.stdout, resumed.stdout + resumed.stderr


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_parallel_launchers_lose_no_runs(workdir, cache_dir, launcher):
    extra = (["hydra.launcher.n_jobs=2"] if launcher == "joblib"
             else ["hydra.launcher.timeout_min=10"])
    result = run_py(workdir, cache_dir, "-m", f"hydra/launcher={launcher}", *extra,
                     "tokenizer=char,word", "cell=rnn,lstm", *SMOKE, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    client, runs = read_runs(workdir)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 5 and len(children) == 4
    assert len({c.data.tags["mlflow.parentRunId"] for c in children}) == 1
    for child in children:
        assert child.info.status == "FINISHED"
        assert len(client.get_metric_history(child.info.run_id, "train/loss")) == 10
        assert {"checkpoints/last.npz", "config/config.yaml"} <= artifact_paths(
            client, child.info.run_id)


@pytest.mark.slow
def test_mlflow_ui_answers_over_http(workdir):
    assert run_in_process(workdir) == "FINISHED"
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{workdir / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, body = time.monotonic() + 120, ""
        while time.monotonic() < deadline and not body:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name"
                        f"?experiment_name=capx", timeout=5) as response:
                    body = response.read().decode()
            except OSError:
                time.sleep(1)
        assert '"name": "capx"' in body or '"name":"capx"' in body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow  # tests/e2e/test_sweeps.py checks a failing job in the default suite
def test_sweep_with_a_failed_job_runs_the_others_and_exits_non_zero(workdir, cache_dir):
    """One job fails (non-finite loss), the other still finishes; the sweep reports failure."""
    result = run_py(workdir, cache_dir, "-m", *SMOKE, "solver.learning_rate=1e-2,1e12")
    assert result.returncode == 1, result.stdout + result.stderr
    client, runs = read_runs(workdir)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    statuses = sorted(r.info.status for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert statuses == ["FAILED", "FINISHED"]
    assert len(parents) == 1 and parents[0].info.status == "FAILED"


@pytest.mark.slow  # test_resume's override test refuses fixed settings in the default suite
def test_a_resume_with_another_tokenizer_is_refused_and_leaves_the_run_untouched(workdir):
    """Resuming a finished char run with tokenizer=word is refused by name before the run is
    touched: it stays FINISHED with its end time and tags, and no other run is made."""
    run_in_process(workdir, "tokenizer=char", name="first")
    client, runs = read_runs(workdir)
    (first,) = runs
    assert first.info.status == "FINISHED"
    with pytest.raises(ConfigError, match=r"tokenizer.name \(trained with 'char'"):
        run_in_process(workdir, "tokenizer=word", f"resume={first.info.run_id}", name="second")
    _, runs = read_runs(workdir)
    assert [r.info.run_id for r in runs] == [first.info.run_id]
    again = runs[0]
    assert (again.info.status, again.info.end_time) == ("FINISHED", first.info.end_time)
    assert again.data.tags == first.data.tags
