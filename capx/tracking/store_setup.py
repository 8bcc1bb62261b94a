"""Opening an MLflow store: the client of a URI (a SQLite database is first created, or checked,
one process at a time) and the id of an experiment, created if missing."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

from capx.tracking.locations import local_artifact_root
from capx.tracking.locks import file_lock, signals_held_back
from capx.tracking.quiet import quiet_mlflow
from capx.tracking.retries import retry


class StoreError(RuntimeError):
    """The store cannot be set up (a half-made database); the message says what to do."""


PREPARED: set[str] = set()  # SQLite stores this process has created or checked
#: what MLflow's set-up says when it meets tables an interrupted set-up left behind
_HALF_MADE = ("already exists", "duplicate column", "_alembic_tmp_")
HALF_MADE_WAIT = 15.0  # seconds leftover migration tables may take to go before they count


def make_client(uri: str):
    """An MLflow client of ``uri``; a SQLite store is first created (or checked) under a file
    lock beside the database, with SIGINT/SIGTERM held back, so that jobs starting together
    do not race through MLflow's schema migration and a Ctrl-C cannot leave it half made."""
    # deferred on purpose: MLflow takes seconds to import; a job without tracking never needs it
    from mlflow.tracking import MlflowClient

    quiet_mlflow()
    if uri.startswith("sqlite:///") and uri not in PREPARED:
        prepare_sqlite_store(uri)
        PREPARED.add(uri)
    return retry(lambda: MlflowClient(tracking_uri=uri), "connecting to the tracking store")


def prepare_sqlite_store(uri: str) -> None:
    """Create the database of ``uri`` if needed, one process at a time; a half-made one (an
    earlier set-up was killed) is a :class:`StoreError` that names the file and the fix."""
    from mlflow.tracking import MlflowClient  # deferred: see make_client

    db = Path(uri[len("sqlite:///"):])
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(db.with_name(db.name + ".lock")))
        except OSError:  # a read-only folder: only reading is possible, and needs no lock
            pass
        stack.enter_context(signals_held_back())
        _refuse_half_made(db, _leftover_tables(db, wait=HALF_MADE_WAIT))
        try:
            client = MlflowClient(tracking_uri=uri)
            retry(lambda: client.search_experiments(max_results=1), "creating the tracking store")
        except Exception as exc:  # noqa: BLE001 - a half-made store is named, the rest raised
            if any(marker in str(exc) for marker in _HALF_MADE):
                _refuse_half_made(db, [str(exc).strip().splitlines()[0][:200]])
            raise


def _leftover_tables(db: Path, wait: float = 0.0) -> list[str]:
    """Alembic's temporary tables in ``db``, still there after ``wait`` seconds: left by a
    migration that did not finish (a client outside capx's lock, ``mlflow ui`` say, may be
    migrating right now; its tables go within seconds)."""
    deadline = time.monotonic() + wait
    while True:
        found = _alembic_tmp_tables(db)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.5)


def _alembic_tmp_tables(db: Path) -> list[str]:
    if not db.is_file() or db.stat().st_size == 0:
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            rows = con.execute("select name from sqlite_master where type = 'table' and "
                               "name like '\\_alembic\\_tmp\\_%' escape '\\'").fetchall()
    except sqlite3.Error:
        return []  # not readable as SQLite: MLflow's own error says so
    return [f"leftover table {name}" for (name,) in rows]


def _refuse_half_made(db: Path, evidence: list[str]) -> None:
    if evidence:
        raise StoreError(
            f"the MLflow database {db} is half made: an earlier first run was stopped while "
            f"MLflow was creating it ({'; '.join(evidence)}), and MLflow cannot finish. Move it "
            f"aside (mv {db} {db}.broken) and run again; capx then makes a fresh one. Runs "
            f"recorded in it, if any, stay in the moved file.")


def experiment_id(client: Any, name: str, uri: str) -> str:
    """The id of experiment ``name``, created if missing (safe when jobs race to create it)."""

    def get_or_create() -> str:
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            return found.experiment_id
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(uri, name))
        except Exception:  # noqa: BLE001 - another job created it first
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    return retry(get_or_create, f"finding experiment {name!r}")


def _artifact_location(uri: str, name: str) -> str | None:
    root = local_artifact_root(uri)
    if root is None:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return Path(root, safe).as_uri()
