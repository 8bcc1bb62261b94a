"""MLflow bookkeeping against a real local SQLite store in a temporary folder (no mocks).

Covers :mod:`capx.tracking` (where runs go, experiments, retries, searches, the one way a
sweep's parent run is made) and the Hydra side of sweeps (:mod:`capx.hydra_callbacks`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from capx import names, tracking


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, object]:
    """One SQLite store for the module (each test uses its own experiment or sweep folder)."""
    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return uri, tracking.make_client(uri)


# -- where runs go ------------------------------------------------------------------------------


def test_tracking_uri_prefers_the_config_then_the_environment_then_sqlite_in_the_folder(
        tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri("sqlite:///elsewhere.db", tmp_path) == "sqlite:///elsewhere.db"
    assert tracking.tracking_uri(None, tmp_path) == "http://127.0.0.1:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    uri = tracking.tracking_uri(None, tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert tracking.local_artifact_root(uri) == str(tmp_path.resolve() / "mlartifacts")
    assert tracking.local_artifact_root("http://127.0.0.1:5000") is None
    assert "mlflow ui --backend-store-uri sqlite:///mlflow.db" in tracking.ui_command(uri)


def test_experiment_is_created_once_and_reused_even_after_deletion(store):
    uri, client = store
    first = tracking.experiment_id(client, "reuse me", uri)
    assert tracking.experiment_id(client, "reuse me", uri) == first
    found = client.get_experiment(first)
    assert found.artifact_location.endswith("mlartifacts/reuse_me")
    client.delete_experiment(first)
    assert tracking.experiment_id(client, "reuse me", uri) == first
    assert client.get_experiment(first).lifecycle_stage == "active"


# -- retries ------------------------------------------------------------------------------------


def test_retry_waits_out_a_locked_database_and_raises_anything_else_at_once():
    calls = []

    def locked_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "written"

    assert tracking.retry(locked_once, "writing") == "written" and len(calls) == 2

    def broken() -> None:
        calls.append(1)
        raise ValueError("no such column")

    calls.clear()
    with pytest.raises(ValueError, match="no such column"):
        tracking.retry(broken, "writing")
    assert len(calls) == 1  # not transient: no second try

    def always_locked() -> None:
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError, match="locked"):
        tracking.retry(always_locked, "writing", seconds=0.0)  # gives up at the deadline


# -- flatten ------------------------------------------------------------------------------------


def test_flatten_joins_nested_keys_and_keeps_lists_and_empty_sections_as_text():
    tree = {"solver": {"learning_rate": 0.005, "options": {}}, "plugins": [],
            "model": {"sizes": {"hidden_dim": 128}, "dtype": "float32"}, "resume": None}
    assert tracking.flatten(tree) == {
        "solver.learning_rate": 0.005, "solver.options": "{}", "plugins": "[]",
        "model.sizes.hidden_dim": 128, "model.dtype": "float32", "resume": None}


# -- a sweep's parent run -----------------------------------------------------------------------


def _hydra_config(launch: Path, sweep_dir: str, overrides: list[str]):
    """What a Hydra callback gets in the launching process (the parts capx reads)."""
    return OmegaConf.create({
        "tracking": {"enabled": True, "uri": None, "experiment_name": "sweeps"},
        "hydra": {"sweep": {"dir": sweep_dir}, "runtime": {"cwd": str(launch)},
                  "overrides": {"task": overrides}}})


def _launch(folder: Path, overrides: list[str]) -> None:
    """What Hydra's sweeper writes into the sweep folder before the first job starts."""
    folder.mkdir(parents=True)
    (folder / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {
        "task": overrides}}}))


@pytest.mark.parametrize("first", ["callback", "job"])
def test_one_parent_run_per_sweep_with_one_name_whoever_makes_it(store, tmp_path, first):
    from capx.hydra_callbacks import sweep_of

    uri, client = store
    exp_id = tracking.experiment_id(client, "sweeps", uri)
    overrides = ["tokenizer=char,word", "seed=0", "experiment=quick"]
    config = _hydra_config(tmp_path, "multirun/x", overrides)
    folder = tmp_path / "multirun" / "x"
    _launch(folder, overrides)
    from_callback, from_job = sweep_of(config), tracking.Sweep.in_folder(folder)
    assert from_callback == from_job
    callers = [from_callback, from_job] if first == "callback" else [from_job, from_callback]
    ids = [tracking.sweep_parent_run(client, exp_id, sweep) for sweep in callers]
    assert ids[0] == ids[1] == (folder / tracking.PARENT_ID_FILE).read_text().strip()
    parent = client.get_run(ids[0])
    assert parent.info.run_name == "sweep tokenizer=char,word (x)"
    assert parent.data.tags[names.SWEEP_ID] == str(folder.resolve())
    assert parent.data.tags[names.SWEEP_OVERRIDES] == " ".join(overrides)
    # without its id file the parent is found by its tag, not made again
    (folder / tracking.PARENT_ID_FILE).unlink()
    assert tracking.sweep_parent_run(client, exp_id, from_job) == ids[0]


def test_jobs_starting_together_agree_on_one_parent(store, tmp_path):
    uri, client = store
    exp_id = tracking.experiment_id(client, "together", uri)
    folder = tmp_path / "sweep"
    _launch(folder, ["cell=rnn,lstm"])
    found: list[str] = []

    def job() -> None:
        own = tracking.make_client(uri)
        found.append(tracking.sweep_parent_run(own, exp_id, tracking.Sweep.in_folder(folder)))

    threads = [threading.Thread(target=job) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 4 and len(set(found)) == 1
    parents = tracking.search_runs(client, [exp_id], "testing",
                                   tags={names.SWEEP_ID: str(folder.resolve())})
    assert [p.info.run_id for p in parents] == found[:1]


def test_a_sweep_without_multirun_yaml_is_named_after_its_folder(tmp_path):
    sweep = tracking.Sweep.in_folder(tmp_path / "2024-01-01" / "12-00-00")
    assert sweep.overrides == () and sweep.run_name == "sweep (12-00-00)"
    assert sweep.folder.is_absolute()
