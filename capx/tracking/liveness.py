"""Runs whose process died without closing them (SIGKILL, out of memory, a lost machine) are
found and closed, so that no run stays RUNNING forever.

Every run records which process writes it (``capx.host``, ``capx.pid`` and the process's start
time, which tells a reused pid apart) and refreshes a heartbeat while it trains. When a job
opens a store, and when ``capx report``/``capx export`` read one, :func:`reap_dead_runs` marks
KILLED every RUNNING run of this host whose process is gone, and FAILED every RUNNING run of
another host whose heartbeat is older than :data:`STALE_SECONDS`, each with a note saying why.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any, Iterable

from capx.tracking.retries import retry
from capx.tracking.searches import search_runs
from capx.tracking.store_setup import make_client

log = logging.getLogger(__name__)

HOST, PID, STARTED, HEARTBEAT, REAPED = ("capx.host", "capx.pid", "capx.pid_started",
                                         "capx.heartbeat", "capx.reaped")
#: how often a training run refreshes its heartbeat tag
HEARTBEAT_SECONDS = 30.0
#: a run of another host whose heartbeat is older than this is taken for dead
STALE_SECONDS = 24 * 3600.0


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return fields[19]  # field 22 of stat(5), counted after the command name
    except (OSError, IndexError):
        return None


def process_tags() -> dict[str, str]:
    """The tags that name this process as the writer of a run, and a first heartbeat."""
    started = process_start(os.getpid())
    tags = {HOST: socket.gethostname(), PID: str(os.getpid()), HEARTBEAT: f"{time.time():.0f}"}
    if started is not None:
        tags[STARTED] = started
    return tags


def is_alive(pid: int, started: str | None) -> bool:
    """Whether process ``pid`` runs, and is the same process (same start time) when known."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    now = process_start(pid)
    return started is None or now is None or now == started


class Heartbeat:
    """Refreshes a run's ``capx.heartbeat`` tag, at most every :data:`HEARTBEAT_SECONDS`."""

    def __init__(self, tracker: Any, seconds: float = HEARTBEAT_SECONDS):
        self.tracker, self.seconds, self.last = tracker, seconds, time.monotonic()

    def beat(self) -> None:
        if time.monotonic() - self.last >= self.seconds:
            self.last = time.monotonic()
            self.tracker.set_tags({HEARTBEAT: f"{time.time():.0f}"})


def why_dead(run: Any, host: str, now: float) -> tuple[str, str] | None:
    """``(status, note)`` for a RUNNING run whose writer is gone, else None (alive, or not a
    capx job run: a sweep's parent run, a run from another tool)."""
    tags = run.data.tags
    if PID not in tags or HOST not in tags:
        return None
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    if tags[HOST] == host:
        if is_alive(int(tags[PID]), tags.get(STARTED)):
            return None
        return "KILLED", (f"process {tags[PID]} on host {host} ended without closing the run "
                          f"(killed or crashed); marked KILLED by capx at {stamp}")
    beat = float(tags.get(HEARTBEAT, 0) or 0)
    if now - beat < STALE_SECONDS:
        return None
    return "FAILED", (f"no heartbeat from process {tags[PID]} on host {tags[HOST]} for "
                      f"{(now - beat) / 3600:.0f} h; marked FAILED by capx at {stamp}")


def reap_store(uri: str) -> list[str]:
    """:func:`reap_dead_runs` over every experiment of the store at ``uri``; a failure is a
    warning (reading the runs must not fail over this)."""
    try:
        client = make_client(uri)
        ids = [e.experiment_id for e in retry(client.search_experiments,
                                                       "listing experiments")]
        return reap_dead_runs(client, ids) if ids else []
    except Exception as exc:  # noqa: BLE001 - bookkeeping
        log.warning("could not check %s for runs left RUNNING: %s", uri, exc)
        return []


def reap_dead_runs(client: Any, experiment_ids: Iterable[str]) -> list[str]:
    """Close the RUNNING runs of ``experiment_ids`` whose writer is gone; returns their ids."""
    host, now, closed = socket.gethostname(), time.time(), []
    for run in search_runs(client, list(experiment_ids), "looking for dead runs",
                                    status="RUNNING"):
        verdict = why_dead(run, host, now)
        if verdict is None:
            continue
        status, note = verdict
        run_id = run.info.run_id
        retry(lambda: client.set_tag(run_id, REAPED, note), "noting a dead run")
        retry(lambda: client.set_terminated(run_id, status=status), "closing a dead run")
        log.warning("run %s (%s) was left RUNNING: %s", run_id, run.info.run_name, note)
        closed.append(run_id)
    return closed
