"""MLflow's store, for every part of capx that writes or reads runs: where runs go, retries,
experiments, searches, the parent run of a multirun sweep, and :class:`Tracker`, a run's writer.

Every store call goes through :func:`retry`, which waits out the transient "database is locked"
errors SQLite gives when several jobs write at once. :func:`sweep_parent_run` is the one way a
sweep's parent run is made (by the launching process's Hydra callback, or by the first job when
that did not), under a file lock in the sweep folder. What a job records is
:mod:`capx.run.recorder`'s business; the names are :mod:`capx.tracking.names`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import yaml

from capx.tracking import names

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_DB = "mlflow.db"
PARENT_ID_FILE = "mlflow_parent_run_id.txt"
RETRY_SECONDS = 120.0
# SQLite's answers to concurrent writers. Network errors are not retried here: MLflow's HTTP
# client already retries them, and a wrong tracking.uri should fail fast, not after minutes.
_TRANSIENT = ("database is locked", "database table is locked", "busy", "unable to open database")


# -- where runs go --------------------------------------------------------------------------


def tracking_uri(configured: str | None, base_dir: str | os.PathLike) -> str:
    """``tracking.uri`` if set, else ``$MLFLOW_TRACKING_URI``, else SQLite in ``base_dir``."""
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(base_dir).resolve() / DEFAULT_DB}"


def local_artifact_root(uri: str) -> str | None:
    """For a SQLite store, an ``mlartifacts`` folder beside the database file (else None)."""
    if uri.startswith("sqlite:///"):
        return str(Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts")
    return None


def ui_command(uri: str) -> str:
    """The shell command that shows ``uri`` in the MLflow web UI."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if db.name == DEFAULT_DB:  # MLflow's own default store: plain `mlflow ui` reads it
            return f"cd {db.parent} && mlflow ui"
        return f"cd {db.parent} && mlflow ui --backend-store-uri sqlite:///{db.name}"
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


def git_commit(cwd: str | os.PathLike) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# -- retries ----------------------------------------------------------------------------------


def _is_transient(exc: Exception) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(marker in text for marker in _TRANSIENT)


#: what a failure to record means, by the words in its message (checked in this order)
FAILURE_CAUSES = (
    (("database or disk is full", "no space left", "disk quota"), "the disk or the database is full"),
    (("readonly", "read-only", "permission denied"), "read-only"),
    (("no such table", "no such column", "file is not a database"),
     "the database was deleted, replaced or damaged"),
    (("connection refused", "max retries exceeded", "failed to establish", "timed out",
      "name or service not known", "connectionerror"), "the server is unreachable"),
)


def describe_failure(exc: BaseException) -> str:
    """``"read-only: [Errno 13] Permission denied: ..."``: the cause in words, then the error."""
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {exc}".lower()
    cause = next((words for markers, words in FAILURE_CAUSES
                  if any(m in text for m in markers)), type(exc).__name__)
    return f"{cause}: {first}" if first else cause


def retry(call: Callable[[], T], what: str, seconds: float = RETRY_SECONDS) -> T:
    """Run ``call``, retrying transient store errors with jittered backoff for ``seconds``."""
    deadline = time.monotonic() + seconds
    delay = 0.05
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - filtered by _is_transient
            if not _is_transient(exc) or time.monotonic() > deadline:
                raise
            log.debug("MLflow store busy during %s (%s); retrying", what, exc)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)


# -- client, experiment, searches -------------------------------------------------------------


class StoreError(RuntimeError):
    """The store cannot be set up (a half-made database); the message says what to do."""


_READY: set[str] = set()  # SQLite stores this process has created or checked
#: what MLflow's set-up says when it meets tables an interrupted set-up left behind
_HALF_MADE = ("already exists", "duplicate column", "_alembic_tmp_")
HALF_MADE_WAIT = 15.0  # seconds leftover migration tables may take to go before they count


def make_client(uri: str):
    """An MLflow client of ``uri``; a SQLite store is first created (or checked) under a file
    lock beside the database, with SIGINT/SIGTERM held back, so that jobs starting together
    do not race through MLflow's schema migration and a Ctrl-C cannot leave it half made."""
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite:///") and uri not in _READY:
        prepare_sqlite_store(uri)
        _READY.add(uri)
    return retry(lambda: MlflowClient(tracking_uri=uri), "connecting to the tracking store")


def prepare_sqlite_store(uri: str) -> None:
    """Create the database of ``uri`` if needed, one process at a time; a half-made one (an
    earlier set-up was killed) is a :class:`StoreError` that names the file and the fix."""
    from mlflow.tracking import MlflowClient

    from capx.run import interrupts

    db = Path(uri[len("sqlite:///"):])
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_file_lock(db.with_name(db.name + ".lock")))
        except OSError:  # a read-only folder: only reading is possible, and needs no lock
            pass
        stack.enter_context(interrupts.deferred())
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
    import sqlite3

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


def search_runs(client: Any, experiment_ids: Iterable[str], what: str, *,
                tags: dict[str, str] | None = None, status: str | None = None,
                **options: Any) -> list[Any]:
    """Runs whose ``tags`` have these values (and whose status is ``status``), with retries;
    ``options`` go to MLflow's ``search_runs`` (``max_results``, ``order_by``)."""
    clauses = [f"tags.`{key}` = '{value}'" for key, value in (tags or {}).items()]
    if status:
        clauses.append(f"attributes.status = '{status}'")
    return retry(lambda: client.search_runs(list(experiment_ids), filter_string=" and ".join(
        clauses), **options), what)


def child_runs(client: Any, experiment_id: str, parent: str, status: str | None = None,
               **options: Any) -> list[Any]:
    """The runs nested under run ``parent`` (a sweep's jobs)."""
    return search_runs(client, [experiment_id], "reading the sweep's runs",
                       tags={names.PARENT_RUN: parent}, status=status, **options)


# -- a sweep's parent run ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """A multirun sweep: its folder (absolute) and the overrides it was launched with; make
    one with :meth:`in_folder`."""

    folder: Path
    overrides: tuple[str, ...] = ()

    @classmethod
    def in_folder(cls, folder: str | os.PathLike,
                  overrides: Sequence[str] | None = None) -> "Sweep":
        """The sweep of ``folder``; without ``overrides``, those of the ``multirun.yaml`` that
        Hydra writes there before any job starts (so a job sees what the launcher was given)."""
        folder = Path(folder).resolve()
        if overrides is None:
            try:
                saved = yaml.safe_load((folder / "multirun.yaml").read_text()) or {}
                overrides = saved["hydra"]["overrides"]["task"] or []
            except (OSError, KeyError, TypeError, yaml.YAMLError):
                overrides = []
        return cls(folder, tuple(str(o) for o in overrides))

    @property
    def run_name(self) -> str:
        """``sweep tokenizer=char,word (<folder name>)``: the overrides that vary and the folder."""
        varies = [o for o in self.overrides if "," in o or "(" in o]
        return " ".join(["sweep", *varies, f"({self.folder.name})"])

    @property
    def tags(self) -> dict[str, str]:
        return {names.SWEEP_ID: str(self.folder), names.SWEEP_DIR: str(self.folder),
                names.SWEEP_OVERRIDES: " ".join(self.overrides)}


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sweep_parent_run(client: Any, exp_id: str, sweep: Sweep,
                     owner_tags: dict[str, str] | None = None) -> str:
    """The parent run of ``sweep``: read from its id file, found by tag, or made (named
    :attr:`Sweep.run_name`, tagged :attr:`Sweep.tags`, plus ``owner_tags`` when the launching
    process makes it: :mod:`capx.tracking.liveness` then closes it if that process dies). The one way a
    parent run is made.

    A file lock in the sweep folder makes jobs that start together agree on one parent.
    """
    id_file = sweep.folder / PARENT_ID_FILE
    with _file_lock(sweep.folder / ".mlflow_parent.lock"):
        if id_file.is_file() and id_file.read_text().strip():
            return id_file.read_text().strip()
        found = search_runs(client, [exp_id], "searching for the sweep's parent run",
                            tags={names.SWEEP_ID: str(sweep.folder)}, max_results=1)
        if found:
            run_id = found[0].info.run_id
        else:
            tags = {**sweep.tags, **(owner_tags or {})}
            run = retry(lambda: client.create_run(exp_id, tags=tags, run_name=sweep.run_name),
                        "creating the sweep's parent run")
            run_id = run.info.run_id
        id_file.write_text(run_id + "\n")
        return run_id


# -- one run's writer -------------------------------------------------------------------------


class Tracker:
    """Writes to one MLflow run; every write retries transient store errors.

    A write that still fails (a full disk, a read-only folder, a deleted database, a server
    gone) does not stop training: it is reported once, with its cause, and the run goes on with
    tracking *degraded*: writes are skipped for :attr:`PAUSE_SECONDS`, then tried again (an
    outage may pass). :attr:`degraded` keeps the first cause, for the job's closing summary.
    """

    PAUSE_SECONDS = 60.0

    def __init__(self, client: Any, run_id: str, uri: str):
        self.client, self.run_id, self.uri = client, run_id, uri
        self.status_before_reopen: str | None = None  # set when a resumed run is reopened
        self.degraded: str | None = None  # the first failure to record, in words
        self.skipped = 0                  # writes dropped while degraded
        self._paused_until = 0.0

    def _write(self, call: Callable[[], Any], what: str) -> None:
        """Run one write (with :func:`retry`); a failure degrades tracking instead of raising."""
        if time.monotonic() < self._paused_until:
            self.skipped += 1
            return
        try:
            retry(call, what)
        except Exception as exc:  # noqa: BLE001 - recording must never stop training
            cause = describe_failure(exc)
            if self.degraded is None:
                self.degraded = f"{what}: {cause}"
                log.warning("MLflow could not record %s to run %s (%s); training goes on, "
                            "its checkpoints are still written locally; recording is retried "
                            "in %.0f s", what, self.run_id, cause, self.PAUSE_SECONDS)
            else:
                log.debug("MLflow still cannot record (%s): %s", what, cause)
            self.skipped += 1
            self._paused_until = time.monotonic() + self.PAUSE_SECONDS
        else:
            if self._paused_until:
                log.warning("MLflow records to run %s again; %d write(s) were lost meanwhile",
                            self.run_id, self.skipped)
                self._paused_until = 0.0

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):
            chunk = items[start:start + 100]
            self._write(lambda: self.client.log_batch(self.run_id, params=chunk), "params")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.log_metric_batch([metric(k, v, int(step), now) for k, v in metrics.items()])

    def log_metric_batch(self, items: Sequence[Any]) -> None:
        for start in range(0, len(items), 1000):
            chunk = list(items[start:start + 1000])
            self._write(lambda: self.client.log_batch(self.run_id, metrics=chunk), "metrics")

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:5000]) for k, v in tags.items() if v is not None]
        self._write(lambda: self.client.log_batch(self.run_id, tags=items), "tags")

    def log_text(self, text: str, artifact_file: str) -> None:
        self._write(lambda: self.client.log_text(self.run_id, text, artifact_file),
                    f"artifact {artifact_file}")

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self._write(lambda: self.client.log_artifact(self.run_id, str(path), artifact_path),
                    f"artifact {Path(path).name}")

    def log_artifacts(self, folder: str | os.PathLike, artifact_path: str) -> None:
        """The files of ``folder`` under ``artifact_path`` (not in a subfolder of its name)."""
        self._write(lambda: self.client.log_artifacts(self.run_id, str(folder), artifact_path),
                    f"artifacts {artifact_path}")

    def log_table(self, table: dict[str, list[Any]], artifact_file: str) -> None:
        """A table (MLflow's ``log_table``: the UI's table and evaluation views show it)."""
        self._write(lambda: self.client.log_table(self.run_id, table, artifact_file),
                    f"table {artifact_file}")

    def log_inputs(self, datasets: Sequence[Any]) -> None:
        """Datasets as run inputs (the UI's Dataset column)."""
        self._write(lambda: self.client.log_inputs(self.run_id, datasets=list(datasets)),
                    "dataset inputs")

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self._write(lambda: self.client.log_figure(self.run_id, figure, artifact_file),
                    f"artifact {artifact_file}")

    def end(self, status: str) -> None:
        """Close the run; tried even while degraded (a run must not stay RUNNING)."""
        self._paused_until = 0.0
        self._write(lambda: self.client.set_terminated(self.run_id, status=status),
                    f"the end of the run ({status})")

    def reopen(self, previous_status: str) -> None:
        """Mark an earlier run RUNNING again, remembering its status in case the resume fails."""
        self.status_before_reopen = previous_status
        retry(lambda: self.client.update_run(self.run_id, status="RUNNING"), "reopening the run")


def metric(key: str, value: float, step: int, timestamp_ms: int | None = None) -> Any:
    """One MLflow metric value (for :meth:`Tracker.log_metric_batch`)."""
    from mlflow.entities import Metric

    return Metric(key, float(value), timestamp_ms or int(time.time() * 1000), int(step))


def _param_value(value: Any) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts/lists -> ``{"solver.learning_rate": 0.005, "plugins": "[]", ...}``."""
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree if not isinstance(tree, (dict, list)) else str(tree)}
