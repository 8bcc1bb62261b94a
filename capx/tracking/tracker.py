"""Writing one MLflow run: :class:`Tracker`, whose writes retry transient store errors and never
stop training (:class:`~capx.tracking.pending_writes.PendingWrites` keeps those that fail), and
the values it writes (flattened params, metrics)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

from capx.tracking import names
from capx.tracking.pending_writes import PendingWrites, summarise
from capx.tracking.retries import describe_failure, retry

log = logging.getLogger(__name__)


class Tracker:
    """Writes to one MLflow run; every write retries transient store errors.

    A write that still fails (a full disk, a read-only folder, a deleted database, a server
    gone) does not stop training: it is reported once, with its cause, and kept to be sent
    again (:attr:`writes`, which also pauses a failing store for a while). :meth:`end` sends
    what is still kept before the run closes; whatever still fails is named in the run's
    ``capx.record.incomplete`` tag and on the console, so the run is not taken for a complete
    one. :attr:`degraded` keeps the first cause, for the job's closing summary.
    """

    def __init__(self, client: Any, run_id: str, uri: str):
        self.client, self.run_id, self.uri = client, run_id, uri
        self.status_before_reopen: str | None = None  # set when a resumed run is reopened
        self.writes = PendingWrites(run_id)

    @property
    def degraded(self) -> str | None:
        """The first failure to record, in words (None while every write has worked)."""
        return self.writes.degraded

    @property
    def missing(self) -> list[str]:
        """What the run's record lacks: the writes kept unsent and those lost."""
        return self.writes.missing

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param  # deferred: seconds to import, unused without tracking

        items = [Param(k, param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):
            chunk = items[start:start + 100]
            self.writes.write(lambda chunk=chunk: self.client.log_batch(self.run_id, params=chunk),
                              "params")  # bound now: a kept write is sent later

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.log_metric_batch([metric(k, v, int(step), now) for k, v in metrics.items()])

    def log_metric_batch(self, items: Sequence[Any]) -> None:
        for start in range(0, len(items), 1000):
            chunk = list(items[start:start + 1000])
            steps = sorted({m.step for m in chunk})
            self.writes.write(
                lambda chunk=chunk: self.client.log_batch(self.run_id, metrics=chunk),
                f"metrics at step {steps[0]}" + (f"-{steps[-1]}" if len(steps) > 1 else ""))

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag  # deferred: seconds to import, unused without tracking

        items = [RunTag(k, str(v)[:5000]) for k, v in tags.items() if v is not None]
        self.writes.write(lambda: self.client.log_batch(self.run_id, tags=items),
                          "tags " + ", ".join(t.key for t in items))

    def log_text(self, text: str, artifact_file: str) -> None:
        self.writes.upload(lambda: self.client.log_text(self.run_id, text, artifact_file),
                           artifact_file)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        destination = f"{artifact_path}/{Path(path).name}" if artifact_path else Path(path).name
        self.writes.upload_file(Path(path), destination, lambda source: self.client.log_artifact(
            self.run_id, str(source), artifact_path))

    def log_artifacts(self, folder: str | os.PathLike, artifact_path: str) -> None:
        """The files of ``folder`` under ``artifact_path`` (not in a subfolder of its name)."""
        self.writes.upload_file(Path(folder), f"{artifact_path}/", lambda source: (
            self.client.log_artifacts(self.run_id, str(source), artifact_path)))

    def log_table(self, table: dict[str, list[Any]], artifact_file: str) -> None:
        """A table (MLflow's ``log_table``: the UI's table and evaluation views show it)."""
        self.writes.upload(lambda: self.client.log_table(self.run_id, table, artifact_file),
                           artifact_file)

    def log_inputs(self, datasets: Sequence[Any]) -> None:
        """Datasets as run inputs (the UI's Dataset column)."""
        self.writes.write(lambda: self.client.log_inputs(self.run_id, datasets=list(datasets)),
                          "dataset inputs")

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.writes.upload(lambda: self.client.log_figure(self.run_id, figure, artifact_file),
                           artifact_file)

    def end(self, status: str) -> None:
        """Send what is kept, name what still failed (tag and console), close the run; tried
        even while degraded (a run must not stay RUNNING)."""
        self.writes.send_all()
        missing = self.missing
        if missing:
            summary = summarise(missing)
            log.warning("MLflow run %s: its record is incomplete, %s could not be recorded; "
                        "tagged %s (a sweep trains it again, capx export and capx report leave "
                        "it out)", self.run_id, summary, names.RECORD_INCOMPLETE)
            try:
                if not self.writes.database_down:  # else the mark would wait out that failure
                    retry(lambda: self.client.set_tag(self.run_id, names.RECORD_INCOMPLETE,
                                                      summary[:5000]), "the incomplete mark")
            except Exception as exc:  # noqa: BLE001 - said on the console already
                log.warning("MLflow could not mark run %s incomplete either: %s", self.run_id,
                            describe_failure(exc))
        self.writes.copies.remove()
        self.writes.write(lambda: self.client.set_terminated(self.run_id, status=status),
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
