"""Two plugins added through ``plugins=[...]`` with no edit to capx, trained through run.py: a
cell with a parameter of its own (plugins/gain_rnn.py) and a tokenizer with learned state
(plugins/pair_tokenizer.py) whose state survives save, resume and reload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from capx.checkpoint import load_checkpoint
from capx.registry import load_plugins
from capx.tokenizers import Tokenizer

from tests.support import REPO, run_py_ok

BOTH = ["plugins=[plugins.gain_rnn,plugins.pair_tokenizer]", "cell=gain_rnn", "tokenizer=pairs",
        "tokenizer.max_length=80", "tokenizer.num_pairs=30", "experiment=smoke",
        "progress=false", "tracking.enabled=false"]


def test_pair_tokenizer_round_trips_and_keeps_its_pairs():
    load_plugins(["plugins.pair_tokenizer"])
    from plugins.pair_tokenizer import PairTokenizer

    texts = ["a red circle beside a red square", "the red <UNK> is here"]
    tokenizer = PairTokenizer(num_pairs=5).fit(texts)
    assert tokenizer.name == "pairs" and len(tokenizer.pairs) == 5
    assert "re" in tokenizer.pairs  # "re" occurs 4 times, more than any other pair
    ids = tokenizer.encode(texts)
    assert tokenizer.decode(ids) == [tokenizer.normalize(t) for t in texts]
    restored = Tokenizer.from_dict(json.loads(json.dumps(tokenizer.to_dict())))
    assert restored.pairs == tokenizer.pairs and np.array_equal(restored.encode(texts), ids)


def test_both_plugins_train_resume_and_reload_through_run_py(tmp_path):
    run_py_ok(tmp_path / "first", None, *BOTH)
    last = next((tmp_path / "first").rglob("last.npz"))
    saved = load_checkpoint(last)
    assert saved.tokenizer["name"] == "pairs" and len(saved.tokenizer["state"]["pairs"]) == 30
    assert saved.state["params"]["g"].shape == (16,)
    assert not np.array_equal(saved.state["params"]["g"], np.ones(16))  # the gain was trained

    # The resume restores the fitted tokenizer from the checkpoint (its pairs, its vocabulary)
    # and continues the same run; the settings given again with it are the run's own.
    run_py_ok(tmp_path / "resumed", None, *BOTH, "solver.num_epochs=2", f"resume={last}")
    resumed = load_checkpoint(next((tmp_path / "resumed").rglob("last.npz")))
    assert resumed.state["iteration"] == 2 * saved.state["iteration"]
    assert resumed.state["loss_history"][:saved.state["iteration"]] == saved.state["loss_history"]
    assert not np.array_equal(resumed.state["params"]["g"], saved.state["params"]["g"])
    assert resumed.tokenizer == saved.tokenizer

    reloaded = Tokenizer.from_dict(resumed.tokenizer)
    assert reloaded.pairs == saved.tokenizer["state"]["pairs"]
    text = ["a small red circle"]
    assert reloaded.decode(reloaded.encode(text)) == text


@pytest.mark.parametrize("bad", [-1, True])
def test_pair_tokenizer_rejects_bad_options(bad):
    load_plugins(["plugins.pair_tokenizer"])
    from plugins.pair_tokenizer import PairTokenizer

    with pytest.raises(ValueError, match="num_pairs"):
        PairTokenizer(num_pairs=bad)


# -- the gain_rnn cell alone, and recorded in MLflow (slow: the run above covers training and
# resuming a plugin cell through run.py) -----------------------------------------------------

GAIN_RNN = ["plugins=[plugins.gain_rnn]", "cell=gain_rnn", "experiment=smoke", "progress=false"]


def only(paths):
    paths = list(paths)
    assert len(paths) == 1, paths
    return paths[0]


@pytest.mark.slow
def test_gain_rnn_trains_and_resumes_through_run_py(tmp_path, cache_dir):
    first, resumed = tmp_path / "first", tmp_path / "resumed"
    for folder in (first, resumed):
        folder.mkdir()
    run_py_ok(first, cache_dir, *GAIN_RNN, "tracking.enabled=false")
    last = only(first.rglob("last.npz"))
    saved = load_checkpoint(last).state
    assert saved["iteration"] == 10 and saved["params"]["g"].shape == (16,)
    assert not np.array_equal(saved["params"]["g"], np.ones(16))  # the gain was trained

    run_py_ok(resumed, cache_dir, *GAIN_RNN, "tracking.enabled=false", "solver.num_epochs=2",
              f"resume={last}")
    state = load_checkpoint(only(resumed.rglob("last.npz"))).state
    assert state["iteration"] == 20
    assert state["loss_history"][:10] == saved["loss_history"]
    assert not np.array_equal(state["params"]["g"], saved["params"]["g"])


@pytest.mark.slow
def test_gain_rnn_run_is_recorded_in_mlflow(tmp_path, cache_dir):
    from mlflow.tracking import MlflowClient

    run_py_ok(tmp_path, cache_dir, *GAIN_RNN)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("capx")
    r = only(client.search_runs([experiment.experiment_id]))
    assert r.info.status == "FINISHED"
    assert r.data.tags["cell"] == "gain_rnn"
    metrics = r.data.metrics
    assert metrics["params/g"] == 16  # smoke: hidden_dim 16
    assert metrics["params/group/recurrent"] == sum(
        metrics[f"params/{name}"] for name in ("Wx", "Wh", "b", "g"))
    assert np.isfinite(metrics["val/loss"])
