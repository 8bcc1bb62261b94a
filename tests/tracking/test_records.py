"""A run follows MLflow's conventions, so MLflow's own views show it: the data splits as run
inputs, sample and test captions as tables, system metrics, the code's commit, and the Hydra
files under config/hydra/."""

from __future__ import annotations

import pytest

from capx.tracking import records
from tests.support import artifact_paths, read_runs, run_in_process


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory, cache_dir):
    """Two runs (word with system metrics, char without), made once: the tests only read them."""
    folder = tmp_path_factory.mktemp("records")
    with pytest.MonkeyPatch.context() as patch:  # what the workdir fixture does, for the module
        patch.setenv("CAPX_CACHE_DIR", str(cache_dir))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.chdir(folder)
        patch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
        assert run_in_process(folder, "solver.num_epochs=2", "split.scheme=holdout",
                              "tracking.system_metrics=true", "tracking.log_model=false",
                              name="a") == "FINISHED"
        assert run_in_process(folder, "tokenizer=char", "solver.num_epochs=1",
                              "split.scheme=holdout", "tracking.system_metrics=false",
                              "tracking.log_model=false", name="b") == "FINISHED"
    return folder


@pytest.fixture
def recorded(runs_folder, monkeypatch):
    """(client, runs by tokenizer), read from the runs' folder (artifacts sit relative to it)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(runs_folder)
    client, runs = read_runs(runs_folder)
    return client, {r.data.tags["tokenizer"]: r for r in runs}


def test_the_splits_are_run_inputs_with_a_content_digest(recorded):
    _, runs = recorded
    inputs = {t: {d.tags[0].value: d.dataset for d in r.inputs.dataset_inputs}
              for t, r in runs.items()}
    assert set(inputs["word"]) == {"train", "dev", "test"}
    assert inputs["word"]["train"].name == "shapes/train"
    assert '"captions":' in inputs["word"]["test"].profile
    for split in ("train", "dev", "test"):  # the same text, whichever tokenizer reads it
        assert inputs["word"][split].digest == inputs["char"][split].digest
    assert len({d.digest for d in inputs["word"].values()}) == 3


def test_samples_and_test_captions_are_tables(recorded):
    client, runs = recorded
    run = runs["word"]
    paths = set(artifact_paths(client, run.info.run_id))
    assert {"samples/epochs_001-002.json", "samples/epoch_001.txt", "samples/epoch_002.txt",
            "evaluation/captions.json"} <= paths
    exp, ids = run.info.experiment_id, [run.info.run_id]  # MLflow's own reader finds them
    samples = client.load_table(exp, "samples/epochs_001-002.json", run_ids=ids)
    test = client.load_table(exp, "evaluation/captions.json", run_ids=ids)
    assert list(samples.columns[:5]) == ["epoch", "image", "image_id", "sampled", "reference"]
    assert samples["epoch"].tolist() == [1, 1, 2, 2]  # two samples in each epoch
    assert samples["reference"].str.len().min() > 0
    assert len(test) == int(run.data.metrics["test/images"])
    assert {"caption", "references", "image_id"} <= set(test.columns)
    assert (test["references"].str.count(r" \| ") + 1 == test["num_references"]).all()
    assert "bleu4" in test.columns


def test_system_metrics_code_commit_and_hydra_files(recorded):
    client, runs = recorded
    word, char = runs["word"], runs["char"]
    assert any(k.startswith("system/cpu_utilization") for k in word.data.metrics)
    assert not any(k.startswith("system/") for k in char.data.metrics)  # switched off
    tags = word.data.tags
    assert tags["capx.launch.folder"]
    own = records.source_tags(records.Path.cwd())
    assert tags.get("mlflow.source.git.commit") == own.get("mlflow.source.git.commit")
    assert not any(".hydra" in p for p in artifact_paths(client, word.info.run_id, "config"))
