"""Bad input is a clear error before any work, and leaves no MLflow run behind.

Each case goes through ``capx.run.main.main`` as ``run.py`` does: exit code 2 (invalid), a
message that names the setting, no traceback, and no run in the store.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import capx.run.main
from tests.support import REPO, SMOKE, free_port


def _main(*overrides: str) -> int:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*SMOKE, *overrides])
    return capx.run.main.main(cfg)


def _run_count(folder: Path) -> int:
    from mlflow.tracking import MlflowClient

    if not (folder / "mlflow.db").exists():
        return 0
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("capx")
    return 0 if experiment is None else len(client.search_runs([experiment.experiment_id]))


BAD_INPUT = [
    (["dataset.num_train=-5"], "dataset 'shapes' rejected its options"),
    (["dataset.num_val=0"], "dev (val) split is empty"),
    (["solver.batch_size=100000"], "solver.batch_size=100000 is larger than the 200 training"),
    (["+solver.options.beta1=2"], "solver.options.beta1: must be a number in [0, 1), got 2"),
    (["+solver.options.betas=0.9"], "adam takes no option 'betas' (did you mean"),
    (["solver.update_rule=sgd", "+solver.options.momentum=0.9"], "sgd takes no option"),
    (["tokenizer.max_length=0"], "tokenizer.max_length: must be an integer >= 1"),
    (["tracking.uri=bogus://x"], "MLflow has no tracking store for scheme 'bogus'"),
]


@pytest.mark.parametrize("overrides,message", BAD_INPUT, ids=[" ".join(o) for o, _ in BAD_INPUT])
def test_bad_input_is_a_clear_error_before_any_run(workdir, capsys, overrides, message):
    assert _main(*overrides) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert _run_count(workdir) == 0
    assert not (workdir / "outputs").exists() or not any((workdir / "outputs").rglob("*.npz"))


def test_a_tracking_server_that_does_not_answer_fails_fast_and_clearly(workdir, capsys):
    """No server on the port: a TrackingError within seconds (MLflow alone retried for 254 s)."""
    started = time.monotonic()
    assert _main(f"tracking.uri=http://127.0.0.1:{free_port()}") == 2
    err = capsys.readouterr().err
    assert "no MLflow server answers there" in err and "tracking.enabled=false" in err
    assert time.monotonic() - started < 60  # a bound on hanging, not a speed measurement


@pytest.mark.slow  # 4-10 s of end-to-end runs: the default suite's budget is ~3 min
def test_a_read_only_store_is_reported_before_any_work(workdir, monkeypatch, capsys):
    """The permission check itself (as root every file is writable, so os.access is faked for
    the database: the one thing this test controls)."""
    import capx.tracking.preflight

    assert _main() == 0  # the store now exists
    db = workdir / "mlflow.db"
    real_access = os.access
    monkeypatch.setattr(capx.tracking.preflight.os, "access",
                        lambda path, mode: False if Path(path) == db else real_access(path, mode))
    assert _main() == 2
    err = capsys.readouterr().err
    assert f"the database {db} is read-only" in err
    assert _run_count(workdir) == 1


def test_report_and_export_without_a_store_say_so_and_create_nothing(tmp_path, monkeypatch,
                                                                      capsys):
    from capx.cli import main as capx_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert capx_main(["report"]) == 1
    assert "no MLflow store at" in capsys.readouterr().err
    assert capx_main(["export", "--experiment", "x", "--out", "runs.jsonl"]) == 1
    assert "no MLflow store at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_run_py_in_a_read_only_folder_says_where_to_write(tmp_path, monkeypatch):
    from capx.tracking.preflight import check_start_folder

    monkeypatch.setattr("capx.tracking.preflight.os.access", lambda path, mode: False)
    message = check_start_folder(tmp_path, ["model=char"])
    assert message and "read-only" in message and "hydra.run.dir=" in message
    assert check_start_folder(tmp_path, ["hydra.run.dir=/tmp/x"]) is None
    assert check_start_folder(tmp_path, ["--help"]) is None


class FullStore:
    """An MLflow client whose writes fail as SQLite's do on a full disk (reads still work)."""

    WRITES = ("log_batch", "log_artifact", "log_text", "log_figure")

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        if name in self.WRITES:
            def fail(*args, **kwargs):
                raise sqlite3.OperationalError("database or disk is full")
            return fail
        return getattr(self.client, name)


def test_a_failing_store_mid_run_degrades_tracking_and_training_finishes(workdir, monkeypatch,
                                                                         caplog):
    """Every write fails once the run exists: training goes on to the end, the checkpoint is
    written locally, the warning names the cause, the summary points to the local checkpoint,
    and the run is still closed (not left RUNNING)."""
    import logging

    from capx.run.recorder import RunRecorder

    opened = RunRecorder.__init__

    def breaking(self, tracker, log_model=True):
        opened(self, tracker, log_model)
        tracker.client = FullStore(tracker.client)

    monkeypatch.setattr(RunRecorder, "__init__", breaking)
    with caplog.at_level(logging.INFO):
        assert _main("solver.num_epochs=2") == 0
    assert "could not record params" in caplog.text
    assert "the disk or the database is full" in caplog.text and "training goes on" in caplog.text
    (last,) = workdir.rglob("checkpoints/last.npz")
    assert "MLflow recording failed during the run" in caplog.text
    assert f"resume={last}" in caplog.text
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    (recorded,) = client.search_runs([client.get_experiment_by_name("capx").experiment_id])
    assert recorded.info.status == "FINISHED" and not recorded.data.metrics


@pytest.mark.slow
def test_deleting_the_database_mid_run_does_not_stop_training(tmp_path, cache_dir):
    """A real fault: mlflow.db is deleted after the first epoch; the job still trains to the
    end, writes its checkpoint and exits 0, and says that recording failed."""
    script = tmp_path / "delete_db.py"
    script.write_text(
        "import runpy, sys\n"
        "from pathlib import Path\n"
        "import capx.run.callbacks as cb\n"
        "original = cb.Checkpointer.on_epoch_end\n"
        "def on_epoch_end(self, solver):\n"
        "    original(self, solver)\n"
        "    if solver.epoch == 1:\n"
        "        Path('mlflow.db').unlink()\n"
        "cb.Checkpointer.on_epoch_end = on_epoch_end\n"
        f"sys.argv = ['run.py', *sys.argv[1:]]\n"
        f"runpy.run_path({str(REPO / 'run.py')!r}, run_name='__main__')\n")
    env = {**os.environ, "CAPX_CACHE_DIR": str(cache_dir), "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run([sys.executable, str(script), *SMOKE, "solver.num_epochs=3"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "FINISHED after" in out and "MLflow recording failed during the run" in out
    assert list(tmp_path.rglob("checkpoints/last.npz"))
