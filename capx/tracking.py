"""MLflow bookkeeping: where runs go, one run per job, a parent run per multirun sweep.

All writes go through :class:`Tracker`, which retries the transient "database is locked" errors
SQLite gives when several jobs write at once. A sweep's parent run is created once per sweep
folder (by :class:`SweepCallback` in the launching process, or by the first job under a file lock)
and found by its ``capx.sweep_id`` tag, so jobs in other processes nest under the same parent.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from omegaconf import DictConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_DB = "mlflow.db"
SWEEP_TAG = "capx.sweep_id"
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


# -- client, experiment, runs -----------------------------------------------------------------


def make_client(uri: str):
    from mlflow.tracking import MlflowClient

    return retry(lambda: MlflowClient(tracking_uri=uri), "connecting to the tracking store")


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


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sweep_parent_run(client: Any, exp_id: str, sweep_dir: str | os.PathLike, run_name: str,
                     tags: dict[str, str] | None = None) -> str:
    """The parent run of the sweep in ``sweep_dir``: read from its id file, found by tag, or made.

    A file lock in the sweep folder makes jobs that start together agree on one parent.
    """
    sweep_dir = Path(sweep_dir).resolve()
    sweep_id = str(sweep_dir)
    id_file = sweep_dir / PARENT_ID_FILE
    with _file_lock(sweep_dir / ".mlflow_parent.lock"):
        if id_file.is_file() and id_file.read_text().strip():
            return id_file.read_text().strip()
        found = retry(lambda: client.search_runs(
            [exp_id], filter_string=f"tags.`{SWEEP_TAG}` = '{sweep_id}'", max_results=1),
            "searching for the sweep's parent run")
        if found:
            run_id = found[0].info.run_id
        else:
            all_tags = {SWEEP_TAG: sweep_id, "capx.sweep_dir": sweep_id, **(tags or {})}
            run = retry(lambda: client.create_run(exp_id, tags=all_tags, run_name=run_name),
                        "creating the sweep's parent run")
            run_id = run.info.run_id
        id_file.write_text(run_id + "\n")
        return run_id


class Tracker:
    """One MLflow run; every write retries transient store errors. ``None`` client: no-op."""

    def __init__(self, client: Any, run_id: str, uri: str):
        self.client, self.run_id, self.uri = client, run_id, uri
        self.status_before_reopen: str | None = None  # set when a resumed run is reopened

    def _do(self, what: str, call: Callable[[], T]) -> T:
        return retry(call, what)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):
            chunk = items[start:start + 100]
            self._do("logging params", lambda: self.client.log_batch(self.run_id, params=chunk))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        self.log_metric_batch(items)

    def log_metric_batch(self, items: list[Any]) -> None:
        for start in range(0, len(items), 1000):
            chunk = items[start:start + 1000]
            self._do("logging metrics", lambda: self.client.log_batch(self.run_id, metrics=chunk))

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:5000]) for k, v in tags.items() if v is not None]
        self._do("setting tags", lambda: self.client.log_batch(self.run_id, tags=items))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._do(f"logging {artifact_file}",
                 lambda: self.client.log_text(self.run_id, text, artifact_file))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self._do(f"logging {path}",
                 lambda: self.client.log_artifact(self.run_id, str(path), artifact_path))

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self._do(f"logging {artifact_file}",
                 lambda: self.client.log_figure(self.run_id, figure, artifact_file))

    def end(self, status: str) -> None:
        self._do("ending the run", lambda: self.client.set_terminated(self.run_id, status=status))

    def reopen(self, previous_status: str) -> None:
        """Mark an earlier run RUNNING again, remembering its status in case the resume fails."""
        self.status_before_reopen = previous_status
        self._do("reopening the run",
                 lambda: self.client.update_run(self.run_id, status="RUNNING"))


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


# -- the sweep's parent run, from the launching process ---------------------------------------


from hydra.experimental.callback import Callback as HydraCallback  # noqa: E402


class SweepCallback(HydraCallback):
    """Hydra callback: opens the sweep's parent run before jobs start and closes it after.

    The parent's status is FINISHED when every child finished, else FAILED (KILLED if one was).
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            settings = _sweep_settings(config)
            if settings is None:
                return
            client, exp_id, sweep_dir, name, tags = settings
            sweep_parent_run(client, exp_id, sweep_dir, name, tags)
        except Exception as exc:  # noqa: BLE001 - jobs create the parent themselves then
            log.warning("could not open the sweep's MLflow parent run: %s", exc)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Close the parent run; exit non-zero when any job did not finish (after all ran)."""
        status = "FINISHED"
        try:
            settings = _sweep_settings(config)
            if settings is None:
                return
            client, exp_id, sweep_dir, name, tags = settings
            parent = sweep_parent_run(client, exp_id, sweep_dir, name, tags)
            children = retry(lambda: client.search_runs(
                [exp_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'"),
                "reading the sweep's runs")
            statuses = {run.info.status for run in children}
            status = ("KILLED" if "KILLED" in statuses else
                      "FAILED" if statuses - {"FINISHED"} else "FINISHED")
            if not children:
                log.info("no job of this sweep made a run: every job was skipped as already "
                         "FINISHED (tracking.skip_finished), or none started")
            retry(lambda: client.set_terminated(parent, status=status), "closing the sweep run")
            log.info("MLflow sweep run %s: %d job(s), %s", parent, len(children), status)
        except Exception as exc:  # noqa: BLE001 - never fail a finished sweep over bookkeeping
            log.warning("could not close the sweep's MLflow parent run: %s", exc)
        if status != "FINISHED":
            log.error("sweep %s: not every job finished; see the MLflow runs marked %s",
                      Path(str(config.hydra.sweep.dir)).name, status)
            raise SystemExit(130 if status == "KILLED" else 1)


def resolve_sweep_dir(config: DictConfig) -> Path:
    """The sweep folder of a Hydra config, absolute (relative ones are under the launch folder)."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    if not sweep_dir.is_absolute():
        sweep_dir = Path(str(config.hydra.runtime.cwd)) / sweep_dir
    return sweep_dir


def sweep_run_name(config: DictConfig) -> str:
    overrides = [o for o in config.hydra.overrides.task if "," in o or "(" in o]
    varies = " ".join(overrides) or "sweep"
    return f"sweep {varies} ({Path(str(config.hydra.sweep.dir)).name})"


def _sweep_settings(config: DictConfig):
    if not config.get("tracking", {}).get("enabled", True):
        return None
    uri = tracking_uri(config.tracking.get("uri"), config.hydra.runtime.cwd)
    client = make_client(uri)
    exp_id = experiment_id(client, config.tracking.experiment_name, uri)
    sweep_dir = resolve_sweep_dir(config)
    tags = {"capx.sweep_overrides": " ".join(config.hydra.overrides.task)}
    return client, exp_id, sweep_dir, sweep_run_name(config), tags
