"""Writing one MLflow run: :class:`Tracker`, whose writes retry transient store errors and never
stop training, and the values it writes (flattened params, metrics)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from capx.tracking.retries import describe_failure, retry

log = logging.getLogger(__name__)


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
        from mlflow.entities import Param  # deferred: seconds to import, unused without tracking

        items = [Param(k, param_value(v)) for k, v in params.items()]
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
        from mlflow.entities import RunTag  # deferred: seconds to import, unused without tracking

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
    from mlflow.entities import Metric  # deferred: seconds to import, unused without tracking

    return Metric(key, float(value), timestamp_ms or int(time.time() * 1000), int(step))


def param_value(value: Any) -> str:
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
