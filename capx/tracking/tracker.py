"""Writing one MLflow run: :class:`Tracker`, whose writes retry transient store errors and never
stop training, and the values it writes (flattened params, metrics)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from capx.tracking import names
from capx.tracking.retries import describe_failure, retry

log = logging.getLogger(__name__)

DATABASE, ARTIFACTS = "database", "artifacts"  # the two stores a run's writes go to


class Tracker:
    """Writes to one MLflow run; every write retries transient store errors.

    A write that still fails (a full disk, a read-only folder, a deleted database, a server
    gone) does not stop training: it is reported once, with its cause, and kept to be sent
    again. The database (params, metrics, tags) and the artifact store (files) fail apart: a
    failed upload pauses only uploads, so metrics keep going to the database. A paused kind of
    write is tried again after :attr:`PAUSE_SECONDS` (an outage may pass), and when it works
    the writes kept meanwhile are sent. :meth:`end` sends what is still kept before the run
    closes; whatever still fails is named in the run's ``capx.record.incomplete`` tag and on
    the console, so the run is not taken for a complete one. :attr:`degraded` keeps the first
    cause, for the job's closing summary.
    """

    PAUSE_SECONDS = 60.0
    MAX_KEPT = 10_000  # database writes kept to send again; beyond, they are counted as lost

    def __init__(self, client: Any, run_id: str, uri: str):
        self.client, self.run_id, self.uri = client, run_id, uri
        self.status_before_reopen: str | None = None  # set when a resumed run is reopened
        self.degraded: str | None = None  # the first failure to record, in words
        self.skipped = 0                  # writes not done when asked (kept or lost)
        self.lost: list[str] = []         # writes that could not even be kept
        self._paused_until = {DATABASE: 0.0, ARTIFACTS: 0.0}
        self._kept: dict[Any, tuple[Callable[[], Any], str, str]] = {}
        self._staging: Path | None = None  # copies of files whose upload failed

    def _write(self, call: Callable[[], Any], what: str, kind: str = DATABASE,
               key: Any = None) -> None:
        """Run one write (with :func:`retry`); a failure keeps it to send again instead of
        raising. ``key``: writes with the same key replace each other while kept (a file
        uploaded again to the same place)."""
        key = key if key is not None else (kind, len(self._kept), time.monotonic_ns())
        if time.monotonic() < self._paused_until[kind]:
            self.skipped += 1
            self._keep(key, call, what, kind)
            return
        try:
            retry(call, what)
        except Exception as exc:  # noqa: BLE001 - recording must never stop training
            cause = describe_failure(exc)
            if self.degraded is None:
                self.degraded = f"{what}: {cause}"
            if not self._paused_until[kind]:
                log.warning("MLflow could not record %s to run %s (%s); training goes on, "
                            "%s; it is tried again in %.0f s and before the run closes", what,
                            self.run_id, cause, "metrics still go to the database"
                            if kind == ARTIFACTS else "its checkpoints are still written "
                            "locally", self.PAUSE_SECONDS)
            else:
                log.debug("MLflow still cannot record (%s): %s", what, cause)
            self.skipped += 1
            self._keep(key, call, what, kind)
            self._paused_until[kind] = time.monotonic() + self.PAUSE_SECONDS
        else:
            self._kept.pop(key, None)  # an older failed write for the same place is superseded
            if self._paused_until[kind]:
                self._paused_until[kind] = 0.0
                sent = self._send_kept(kind)
                log.warning("MLflow records %s to run %s again; %d kept write(s) sent",
                            kind, self.run_id, sent)

    def _keep(self, key: Any, call: Callable[[], Any], what: str, kind: str) -> None:
        if kind == DATABASE and len(self._kept) >= self.MAX_KEPT:
            self.lost.append(what)
            return
        self._kept.pop(key, None)  # the newest write for a key goes last
        self._kept[key] = (call, what, kind)

    def _send_kept(self, kind: str | None = None) -> int:
        """Send the kept writes (of ``kind``, or all: the database's first) in order, until one
        fails (its store still fails: the rest stay kept). Returns how many were sent."""
        sent = 0
        for wanted in (DATABASE, ARTIFACTS):
            if kind not in (None, wanted):
                continue
            for key, (call, what, write_kind) in list(self._kept.items()):
                if write_kind != wanted:
                    continue
                try:
                    retry(call, what)
                except Exception as exc:  # noqa: BLE001 - stays kept, named at the end
                    log.debug("MLflow still cannot record %s: %s", what, describe_failure(exc))
                    break  # that store still fails: the rest of its writes stay kept
                else:
                    del self._kept[key]
                    sent += 1
        return sent

    @property
    def missing(self) -> list[str]:
        """What the run's record lacks: the writes kept unsent and those lost."""
        return [what for _, what, _ in self._kept.values()] + self.lost

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param  # deferred: seconds to import, unused without tracking

        items = [Param(k, param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):
            chunk = items[start:start + 100]
            self._write(lambda chunk=chunk: self.client.log_batch(self.run_id, params=chunk),
                        "params")  # bound now: a kept write is sent later

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.log_metric_batch([metric(k, v, int(step), now) for k, v in metrics.items()])

    def log_metric_batch(self, items: Sequence[Any]) -> None:
        for start in range(0, len(items), 1000):
            chunk = list(items[start:start + 1000])
            steps = sorted({m.step for m in chunk})
            self._write(lambda chunk=chunk: self.client.log_batch(self.run_id, metrics=chunk),
                        f"metrics at step {steps[0]}" + (f"-{steps[-1]}" if len(steps) > 1
                                                          else ""))

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag  # deferred: seconds to import, unused without tracking

        items = [RunTag(k, str(v)[:5000]) for k, v in tags.items() if v is not None]
        self._write(lambda: self.client.log_batch(self.run_id, tags=items),
                    "tags " + ", ".join(t.key for t in items))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._upload(lambda: self.client.log_text(self.run_id, text, artifact_file),
                     artifact_file)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        destination = f"{artifact_path}/{Path(path).name}" if artifact_path else Path(path).name
        self._upload_file(Path(path), destination, lambda source: self.client.log_artifact(
            self.run_id, str(source), artifact_path))

    def log_artifacts(self, folder: str | os.PathLike, artifact_path: str) -> None:
        """The files of ``folder`` under ``artifact_path`` (not in a subfolder of its name)."""
        self._upload_file(Path(folder), f"{artifact_path}/", lambda source: (
            self.client.log_artifacts(self.run_id, str(source), artifact_path)))

    def log_table(self, table: dict[str, list[Any]], artifact_file: str) -> None:
        """A table (MLflow's ``log_table``: the UI's table and evaluation views show it)."""
        self._upload(lambda: self.client.log_table(self.run_id, table, artifact_file),
                     artifact_file)

    def log_inputs(self, datasets: Sequence[Any]) -> None:
        """Datasets as run inputs (the UI's Dataset column)."""
        self._write(lambda: self.client.log_inputs(self.run_id, datasets=list(datasets)),
                    "dataset inputs")

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self._upload(lambda: self.client.log_figure(self.run_id, figure, artifact_file),
                     artifact_file)

    def _upload(self, call: Callable[[], Any], destination: str) -> None:
        self._write(call, f"artifact {destination}", ARTIFACTS, key=destination)

    def _upload_file(self, source: Path, destination: str,
                     upload: Callable[[Path], Any]) -> None:
        """Upload ``source``; if that fails, a copy is kept to upload again (the file may be a
        temporary one, or be overwritten before the next try)."""
        self._upload(lambda: upload(source), destination)
        kept = self._kept.get(destination)
        if kept is not None:
            copy = self._stage(source, destination)
            if copy is not None:
                self._kept[destination] = (lambda: upload(copy), kept[1], ARTIFACTS)

    def _stage(self, source: Path, destination: str) -> Path | None:
        """A copy of ``source`` in this run's staging folder (replacing an older copy for the
        same ``destination``), or None if it cannot be made."""
        try:
            if self._staging is None:
                self._staging = Path(tempfile.mkdtemp(prefix="capx-unsent-"))
            folder = self._staging / destination.strip("/").replace("/", "__")
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            target = folder / source.name
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
            return target
        except OSError as exc:  # the original is tried again instead
            log.debug("could not keep a copy of %s to upload later: %s", source, exc)
            return None

    def end(self, status: str) -> None:
        """Send what is kept, name what still failed (tag and console), close the run; tried
        even while degraded (a run must not stay RUNNING)."""
        self._paused_until = {DATABASE: 0.0, ARTIFACTS: 0.0}
        self._send_kept()
        missing = self.missing
        if missing:
            summary = summarise(missing)
            log.warning("MLflow run %s: its record is incomplete, %s could not be recorded; "
                        "tagged %s (a sweep trains it again, capx export and capx report leave "
                        "it out)", self.run_id, summary, names.RECORD_INCOMPLETE)
            database_down = any(kind == DATABASE for _, _, kind in self._kept.values())
            try:
                if not database_down:  # else the mark would wait out the same failure again
                    retry(lambda: self.client.set_tag(self.run_id, names.RECORD_INCOMPLETE,
                                                      summary[:5000]), "the incomplete mark")
            except Exception as exc:  # noqa: BLE001 - said on the console already
                log.warning("MLflow could not mark run %s incomplete either: %s", self.run_id,
                            describe_failure(exc))
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        self._write(lambda: self.client.set_terminated(self.run_id, status=status),
                    f"the end of the run ({status})")

    def reopen(self, previous_status: str) -> None:
        """Mark an earlier run RUNNING again, remembering its status in case the resume fails."""
        self.status_before_reopen = previous_status
        retry(lambda: self.client.update_run(self.run_id, status="RUNNING"), "reopening the run")


def summarise(missing: Sequence[str], most: int = 12) -> str:
    """``"3 writes: artifact checkpoints/last.npz, metrics at step 40-50, ..."``."""
    unique = list(dict.fromkeys(missing))
    listed = ", ".join(unique[:most]) + (f", and {len(unique) - most} more"
                                         if len(unique) > most else "")
    return f"{len(missing)} write{'s' if len(missing) != 1 else ''}: {listed}"


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
