"""The first runs in a fresh folder: the SQLite store is created by one process at a time, and
a store left half made by an interrupted set-up is named, with the fix, instead of a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capx.tracking import locks, store_setup
from capx.tracking.locations import tracking_uri
from capx.tracking.store_setup import PREPARED
from capx.tracking.preflight import TrackingError, open_store
from tests.support import REPO, SMOKE, read_runs

SETTINGS = {"enabled": True, "uri": None, "experiment_name": "capx"}


@pytest.fixture(autouse=True)
def _default_store(monkeypatch):
    """The store is ./mlflow.db of the folder given (another test may have set the variable)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _made_store(folder: Path) -> Path:
    assert open_store(SETTINGS, folder) is not None
    return folder / "mlflow.db"


def _open_in_a_new_process(folder: Path) -> subprocess.CompletedProcess:
    """``open_store`` as the next run would call it (MLflow caches a store per process)."""
    code = ("import sys; from capx.tracking.preflight import TrackingError, open_store\n"
            "try:\n"
            f"    open_store({SETTINGS!r}, {str(folder)!r})\n"
            "except TrackingError as exc:\n"
            "    sys.exit(f'TrackingError: {exc}')\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=folder)


def test_a_leftover_alembic_table_is_a_half_made_store(tmp_path, monkeypatch):
    monkeypatch.setattr(store_setup, "HALF_MADE_WAIT", 0.5)
    db = _made_store(tmp_path)
    with sqlite3.connect(db) as con:
        con.execute("create table _alembic_tmp_tags (key text)")
    size = db.stat().st_size
    PREPARED.clear()  # check the file again, as a new process would
    with pytest.raises(TrackingError, match=r"half made.*leftover table _alembic_tmp_tags"):
        open_store(SETTINGS, tmp_path)
    assert db.stat().st_size == size  # the user's file is left as it was


def test_a_migration_in_progress_elsewhere_is_waited_for(tmp_path, monkeypatch):
    """Alembic's temporary table of a client outside capx's lock (``mlflow ui`` migrating at
    this moment) goes within seconds: capx waits for it instead of calling the store broken."""
    import threading

    monkeypatch.setattr(store_setup, "HALF_MADE_WAIT", 10.0)
    db = _made_store(tmp_path)
    with sqlite3.connect(db) as con:
        con.execute("create table _alembic_tmp_tags (key text)")

    def finish_migration():
        time.sleep(1.0)
        with sqlite3.connect(db) as con:
            con.execute("drop table _alembic_tmp_tags")

    threading.Thread(target=finish_migration).start()
    PREPARED.clear()
    assert open_store(SETTINGS, tmp_path) is not None


@pytest.mark.slow  # a migration replayed in a child; the leftover-table case runs by default
def test_a_migration_that_stopped_halfway_is_a_half_made_store(tmp_path):
    """What a Ctrl-C in the middle of MLflow's set-up leaves: the tables of a migration exist
    while alembic's version is still the one before it. MLflow then fails on "table secrets
    already exists"; capx says what happened and how to recover."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    db = _made_store(tmp_path)
    script = ScriptDirectory.from_config(_get_alembic_config(db_url=""))
    secrets = next((r for r in script.walk_revisions() if "secrets" in (r.doc or "").lower()),
                   None)
    if secrets is None:
        pytest.skip("this MLflow has no migration that adds the secrets tables to replay")
    with sqlite3.connect(db) as con:
        con.execute("update alembic_version set version_num = ?", (secrets.down_revision,))
        con.execute("drop table tags")  # so MLflow sees an unfinished set-up and resumes it
    result = _open_in_a_new_process(tmp_path)
    assert result.returncode == 1
    assert "TrackingError: " in result.stderr and "half made" in result.stderr
    assert "already exists" in result.stderr and f"mv {db} {db}.broken" in result.stderr
    assert "Traceback" not in result.stderr
    assert db.is_file()


def test_the_store_lock_is_beside_the_database_and_signals_wait(tmp_path, monkeypatch):
    """Creation runs under the lock file and with SIGINT/SIGTERM held back."""
    entered = []
    real = locks.signals_held_back

    def recording():
        entered.append((tmp_path / "mlflow.db.lock").exists())
        return real()

    monkeypatch.setattr(store_setup, "signals_held_back", recording)
    PREPARED.discard(tracking_uri(None, tmp_path))
    open_store(SETTINGS, tmp_path)
    assert entered == [True]


@pytest.mark.slow
def test_four_first_runs_at_once_in_a_fresh_folder_all_finish(tmp_path, cache_dir):
    env = {**os.environ, "CAPX_CACHE_DIR": str(cache_dir), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    jobs = [subprocess.Popen([sys.executable, str(REPO / "run.py"), *SMOKE, f"seed={seed}",
                              f"hydra.run.dir=out/{seed}"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for seed in range(4)]
    outputs = [job.communicate(timeout=600)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0, 0, 0], "\n".join(outputs)
    _, runs = read_runs(tmp_path)
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
