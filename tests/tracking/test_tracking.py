"""MLflow bookkeeping against a real local SQLite store in a temporary folder (no mocks).

Covers the store's modules in :mod:`capx.tracking` (where runs go, experiments, retries,
searches, the one way a sweep's parent run is made, the run writer), :mod:`capx.run.recorder` (what a job writes, and the null recorder)
and the Hydra side of sweeps (:mod:`capx.run.sweep_callbacks`).
"""

from __future__ import annotations

import inspect
import json
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from capx.tracking import names

from capx.tracking.locations import local_artifact_root, tracking_uri, ui_command
from capx.tracking.preflight import Store
from capx.tracking.retries import retry
from capx.tracking.searches import child_runs, search_runs
from capx.tracking.store_setup import experiment_id, make_client
from capx.tracking.sweep_parent import PARENT_ID_FILE, Sweep, sweep_parent_run
from capx.tracking.tracker import flatten
from capx.run.callbacks import RunState, SampleCaption
from capx.run.config import as_dict
from capx.run.schemas import TopLevelConfig
from capx.run.main import JobContext
from capx.run.recorder import NullRecorder, Recorder, RunRecorder, open_recorder

from tests.support import artifact_paths, smoke_config


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, object]:
    """One SQLite store for the module (each test uses its own experiment or sweep folder)."""
    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return uri, make_client(uri)


# -- where runs go ------------------------------------------------------------------------------


def test_tracking_uri_prefers_the_config_then_the_environment_then_sqlite_in_the_folder(
        tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri("sqlite:///elsewhere.db", tmp_path) == "sqlite:///elsewhere.db"
    assert tracking_uri(None, tmp_path) == "http://127.0.0.1:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    uri = tracking_uri(None, tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert local_artifact_root(uri) == str(tmp_path.resolve() / "mlartifacts")
    assert local_artifact_root("http://127.0.0.1:5000") is None
    assert ui_command(uri).endswith("&& mlflow ui")  # MLflow's default store
    other = tracking_uri("sqlite:////tmp/runs/other.db", "/elsewhere")
    assert ui_command(other) == "cd /tmp/runs && mlflow ui --backend-store-uri sqlite:///other.db"


def test_experiment_is_created_once_and_reused_even_after_deletion(store):
    uri, client = store
    first = experiment_id(client, "reuse me", uri)
    assert experiment_id(client, "reuse me", uri) == first
    found = client.get_experiment(first)
    assert found.artifact_location.endswith("mlartifacts/reuse_me")
    client.delete_experiment(first)
    assert experiment_id(client, "reuse me", uri) == first
    assert client.get_experiment(first).lifecycle_stage == "active"


# -- retries ------------------------------------------------------------------------------------


def test_retry_waits_out_a_locked_database_and_raises_anything_else_at_once():
    calls = []

    def locked_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "written"

    assert retry(locked_once, "writing") == "written" and len(calls) == 2

    def broken() -> None:
        calls.append(1)
        raise ValueError("no such column")

    calls.clear()
    with pytest.raises(ValueError, match="no such column"):
        retry(broken, "writing")
    assert len(calls) == 1  # not transient: no second try

    def always_locked() -> None:
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError, match="locked"):
        retry(always_locked, "writing", seconds=0.0)  # gives up at the deadline


# -- flatten ------------------------------------------------------------------------------------


def test_flatten_joins_nested_keys_and_keeps_lists_and_empty_sections_as_text():
    tree = {"solver": {"learning_rate": 0.005, "options": {}}, "plugins": [],
            "model": {"sizes": {"hidden_dim": 128}, "dtype": "float32"}, "resume": None}
    assert flatten(tree) == {
        "solver.learning_rate": 0.005, "solver.options": "{}", "plugins": "[]",
        "model.sizes.hidden_dim": 128, "model.dtype": "float32", "resume": None}


# -- the recorder -------------------------------------------------------------------------------


def _config(uri: str, experiment: str, enabled: bool = True) -> TopLevelConfig:
    """A typed job config (the smoke preset's) recording into ``uri``."""
    return smoke_config("seed=3", "cell=rnn", "model.hidden_dim=5", "model.wordvec_dim=3",
                        "split.scheme=kfold", "split.folds=3", "split.fold=1",
                        "solver.batch_size=2", f"tracking.enabled={str(enabled).lower()}",
                        f"tracking.uri={uri}", f"tracking.experiment_name={experiment}",
                        "tracking.log_every=1")


def _parts(tmp_path: Path):
    """Real (tiny) parts: data, a fitted tokenizer, a model and a solver that trained 1 epoch."""
    from capx.captioner import CaptioningRNN
    from capx.datasets.base import CaptionData, CaptionSplit
    from capx.solver import CaptioningSolver
    from capx.tokenizers import make_tokenizer

    rng = np.random.default_rng(0)
    captions = ["a red circle", "a blue square", "two red squares", "a green circle"]
    split = CaptionSplit(rng.normal(size=(4, 4)).astype(np.float32), captions, np.arange(4),
                         image_ids=np.arange(4))
    data = CaptionData("tiny", split, split)
    tokenizer = make_tokenizer("word", max_length=8).fit(captions)
    solver_data = data.to_solver_data(tokenizer)
    model = CaptioningRNN(tokenizer.word_to_idx, input_dim=4, wordvec_dim=3, hidden_dim=5,
                          cell_type="rnn", seed=0)
    solver = CaptioningSolver(model, solver_data, batch_size=2, num_epochs=1, verbose=False,
                              seed=0)
    checkpoint = tmp_path / "last.npz"
    checkpoint.write_bytes(b"not really a checkpoint")
    return SimpleNamespace(data=data, tokenizer=tokenizer, solver_data=solver_data, model=model,
                           solver=solver, truncated=0.0, images_for=None), checkpoint


def test_run_recorder_writes_params_metrics_tags_and_texts_and_ends_with_a_status(
        store, tmp_path):
    uri, client = store
    config = _config(uri, "recorder")
    context = JobContext(original_cwd=tmp_path, output_dir=tmp_path / "out",
                         overrides=["cell=rnn", "seed=3"], choices={"experiment": "quick"})
    recorder = open_recorder(config, context, None, "word-rnn-s3")
    assert isinstance(recorder, RunRecorder) and recorder.status_before_reopen is None
    assert recorder.start_lines() == [f"MLflow run {recorder.run_id} in {uri}"]
    parts, checkpoint = _parts(tmp_path)
    recorder.log_start(config, context, parts, resumed=False)
    state = RunState(samples=[SampleCaption(0, "a red circle", "a red circle")])
    parts.solver.callbacks = [recorder.epoch_callback(state, config, parts.solver_data)]
    state.val_metrics = {"bits_per_char": 2.5}
    parts.solver.train()  # one epoch of two iterations: the epoch recorder logs as it goes
    result = SimpleNamespace(captions=["a red circle"] * 4, notes=["a note"],
                             per_image={"nll_open": [1.0, float("nan"), 2.0, 3.0]})
    recorder.log_evaluation({names.TEST_BITS_PER_CHAR: 2.75}, 1, result, parts.data.val, "val",
                            parts.data.train.captions)
    state.last_checkpoint = checkpoint
    recorder.log_outputs(state, parts)
    recorder.stopped("signal SIGTERM")
    recorder.end("KILLED")

    run = client.get_run(recorder.run_id)
    assert run.info.status == "KILLED" and run.info.run_name == "word-rnn-s3"
    assert run.data.params["model.hidden_dim"] == "5" and run.data.params["resume"] == "null"
    tags = run.data.tags
    assert tags["tokenizer"] == "word" and tags["split"] == "kfold3" and tags["fold"] == "1"
    assert tags["experiment"] == "quick" and "preset" not in tags  # empty tags are left out
    assert tags[names.TEST_SPLIT] == "val" and tags[names.STOPPED_BY] == "signal SIGTERM"
    assert len(tags[names.FINGERPRINT]) == 16 and names.PARENT_RUN not in tags
    metrics = run.data.metrics
    assert metrics["params/total"] == parts.model.param_counts()["total"]
    assert metrics["data/vocab_size"] == parts.tokenizer.vocab_size
    assert metrics[names.VAL_BITS_PER_CHAR] == 2.5 and metrics[names.TEST_BITS_PER_CHAR] == 2.75
    assert [m.step for m in client.get_metric_history(run.info.run_id, names.TRAIN_LOSS)] == [1, 2]
    artifacts = artifact_paths(client, run.info.run_id)
    assert {names.CONFIG_YAML, names.OVERRIDES_TXT, names.PER_IMAGE, names.EVALUATION_CAPTIONS,
            names.epoch_samples(1), names.LOSS_CURVE, "checkpoints/last.npz"} <= artifacts
    folder = tmp_path / "download"
    config_file = client.download_artifacts(run.info.run_id, names.CONFIG_YAML, str(folder))
    assert yaml.safe_load(Path(config_file).read_text()) == as_dict(config)
    per_image = client.download_artifacts(run.info.run_id, names.PER_IMAGE, str(folder))
    assert json.loads(Path(per_image).read_text()) == {"nll_open": [1.0, None, 2.0, 3.0],
                                                       "image_id": [0, 1, 2, 3]}


def test_a_failed_run_records_its_error_and_a_resume_reopens_the_same_run(store, tmp_path):
    uri, client = store
    config = _config(uri, "reopen")
    context = JobContext(original_cwd=tmp_path, output_dir=tmp_path / "out")
    first = open_recorder(config, context, None, "first")
    try:
        raise ValueError("the learning rate is far too high")
    except ValueError as exc:
        first.log_error(exc)
    first.end("FAILED")
    run = client.get_run(first.run_id)
    assert run.info.status == "FAILED" and run.data.tags[names.ERROR_TYPE] == "ValueError"
    assert "far too high" in run.data.tags[names.ERROR]
    assert names.ERROR_TXT in artifact_paths(client, first.run_id)

    again = open_recorder(config, context, first.run_id, "ignored: the run keeps its name")
    assert again.run_id == first.run_id and again.status_before_reopen == "FAILED"
    assert client.get_run(first.run_id).info.status == "FAILED"  # reopened only by begin()
    again.begin()
    reopened = client.get_run(first.run_id)
    assert reopened.info.status == "RUNNING" and reopened.data.tags[names.RESUMED] == "true"
    again.resume_failed(RuntimeError("another vocabulary"))
    again.end(again.status_before_reopen)  # the resume did not start: the old status stays
    back = client.get_run(first.run_id)
    assert back.info.status == "FAILED" and back.info.run_name == "first"
    assert "another vocabulary" in back.data.tags[names.RESUME_ERROR]
    # a run id this store does not know starts a new run
    other = open_recorder(config, context, "0" * 32, "new")
    assert other.run_id != first.run_id and other.status_before_reopen is None


def test_a_resume_while_the_store_is_busy_reopens_its_run_not_a_new_one(store, tmp_path,
                                                                         monkeypatch):
    uri, client = store
    config = _config(uri, "busy")
    context = JobContext(original_cwd=tmp_path, output_dir=tmp_path / "out")
    first = open_recorder(config, context, None, "first")
    first.end("FAILED")
    store_client = make_client(uri)
    real_get_run, calls = store_client.get_run, []

    def busy_once(run_id):  # SQLite's answer while another job writes
        calls.append(run_id)
        if len(calls) == 1:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return real_get_run(run_id)

    monkeypatch.setattr(store_client, "get_run", busy_once)
    busy = Store(store_client, experiment_id(store_client, "busy", uri), uri)
    again = open_recorder(config, context, first.run_id, "second", busy)
    assert again.run_id == first.run_id and again.status_before_reopen == "FAILED"
    assert len(calls) == 2  # the busy answer was retried, not taken for "not in this store"


def test_the_sample_grid_comes_from_the_dataset_plugins_pictures(store, tmp_path):
    from capx.datasets.base import pictures_of
    from capx.registry import DATASETS

    uri, client = store
    images_for = pictures_of(DATASETS.get("shapes"), {"num_train": 4, "num_val": 4, "seed": 0})
    assert images_for([4, 6]).shape == (2, 48, 48, 3)  # val ids follow the 4 train ids
    assert pictures_of(DATASETS.get("coco"), {}) is None
    config = _config(uri, "grid")
    recorder = open_recorder(config, JobContext(tmp_path, tmp_path / "out"), None, "grid")
    state = RunState(samples=[SampleCaption(0, "a circle", "a red circle"),
                              SampleCaption(2, "a square", "a blue square")])
    dev = SimpleNamespace(image_ids=np.array([5, 7, 4]))  # dev rows 0 and 2: images 5 and 4
    recorder.log_outputs(state, SimpleNamespace(solver=None, images_for=images_for,
                                                data=SimpleNamespace(val=dev)))
    recorder.log_outputs(state, None)  # nothing built: nothing to draw, nothing raised
    assert artifact_paths(client, recorder.run_id) == {names.SAMPLE_GRID}


def test_the_null_recorder_has_the_same_methods_does_nothing_and_raises_nothing(tmp_path):
    config = _config(f"sqlite:///{tmp_path / 'never.db'}", "off", enabled=False)
    context = JobContext(original_cwd=tmp_path, output_dir=tmp_path / "out")
    recorder = open_recorder(config, context, "0" * 32, "off")
    assert isinstance(recorder, NullRecorder)
    for name in (n for n in vars(Recorder) if not n.startswith("_")):
        if callable(getattr(Recorder, name)):  # the run recorder overrides every method alike
            assert name in vars(RunRecorder), name
            assert (list(inspect.signature(getattr(Recorder, name)).parameters)
                    == list(inspect.signature(getattr(RunRecorder, name)).parameters)), name
    assert recorder.run_id is None and recorder.status_before_reopen is None
    assert recorder.start_lines() == [] and recorder.end_lines() == []
    callback = recorder.epoch_callback(RunState(), config, {})
    solver = SimpleNamespace()
    for hook in (callback.on_train_begin, callback.on_epoch_end, callback.on_train_end):
        hook(solver)
    callback.on_iteration_end(solver, 1.0)
    recorder.log_start(config, context, None, resumed=False)
    recorder.log_evaluation({}, 0, None, None, "test", [])
    recorder.log_outputs(RunState(), None)
    recorder.stopped("signal SIGINT")
    recorder.log_error(ValueError("boom"))
    recorder.resume_failed(ValueError("boom"))
    recorder.end("FINISHED")
    assert list(tmp_path.iterdir()) == []  # no store, no folder, no file


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
    from capx.run.sweep_callbacks import sweep_of

    uri, client = store
    exp_id = experiment_id(client, "sweeps", uri)
    overrides = ["tokenizer=char,word", "seed=0", "experiment=quick"]
    config = _hydra_config(tmp_path, "multirun/x", overrides)
    folder = tmp_path / "multirun" / "x"
    _launch(folder, overrides)
    from_callback, from_job = sweep_of(config), Sweep.in_folder(folder)
    assert from_callback == from_job
    callers = [from_callback, from_job] if first == "callback" else [from_job, from_callback]
    ids = [sweep_parent_run(client, exp_id, sweep) for sweep in callers]
    assert ids[0] == ids[1] == (folder / PARENT_ID_FILE).read_text().strip()
    parent = client.get_run(ids[0])
    assert parent.info.run_name == "sweep tokenizer=char,word (x)"
    assert parent.data.tags[names.SWEEP_ID] == str(folder.resolve())
    assert parent.data.tags[names.SWEEP_OVERRIDES] == " ".join(overrides)
    # without its id file the parent is found by its tag, not made again
    (folder / PARENT_ID_FILE).unlink()
    assert sweep_parent_run(client, exp_id, from_job) == ids[0]


def test_jobs_starting_together_agree_on_one_parent(store, tmp_path):
    uri, client = store
    exp_id = experiment_id(client, "together", uri)
    folder = tmp_path / "sweep"
    _launch(folder, ["cell=rnn,lstm"])
    found: list[str] = []

    def job() -> None:
        own = make_client(uri)
        found.append(sweep_parent_run(own, exp_id, Sweep.in_folder(folder)))

    threads = [threading.Thread(target=job) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 4 and len(set(found)) == 1
    parents = search_runs(client, [exp_id], "testing",
                                   tags={names.SWEEP_ID: str(folder.resolve())})
    assert [p.info.run_id for p in parents] == found[:1]


def test_a_sweep_without_multirun_yaml_is_named_after_its_folder(tmp_path):
    sweep = Sweep.in_folder(tmp_path / "2024-01-01" / "12-00-00")
    assert sweep.overrides == () and sweep.run_name == "sweep (12-00-00)"
    assert sweep.folder.is_absolute()


def test_jobs_nest_under_the_parent_and_the_sweep_callback_closes_it(store, tmp_path):
    from capx.run.sweep_callbacks import SweepCallback

    uri, client = store
    overrides = ["seed=0,1"]
    config = _hydra_config(tmp_path, str(tmp_path / "sweep"), overrides)
    config.tracking.uri = uri
    config.tracking.experiment_name = "nested"
    SweepCallback().on_multirun_start(config)
    folder = tmp_path / "sweep"
    parent = (folder / PARENT_ID_FILE).read_text().strip()
    jobs = []
    for seed in (0, 1):
        job_config = _config(uri, "nested")
        job_config.seed = seed
        context = JobContext(tmp_path, folder / str(seed), multirun=True, sweep_dir=folder,
                             overrides=[f"seed={seed}"])
        jobs.append(open_recorder(job_config, context, None, f"job-{seed}"))
    for recorder in jobs:
        recorder.end("FINISHED")
    exp_id = client.get_run(parent).info.experiment_id
    children = child_runs(client, exp_id, parent)
    assert {c.info.run_id for c in children} == {r.run_id for r in jobs}
    assert {c.data.tags[names.SWEEP_CHILD] for c in children} == {str(folder.resolve())}
    SweepCallback().on_multirun_end(config)  # every job finished: no SystemExit
    closed = client.get_run(parent)
    assert closed.info.status == "FINISHED" and closed.info.run_name == "sweep seed=0,1 (sweep)"
