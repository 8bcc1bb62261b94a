"""Retries of MLflow store calls: :func:`retry` waits out the transient "database is locked"
errors SQLite gives when several jobs write at once; :func:`describe_failure` names the cause
of a failure that is not transient (a full disk, a read-only folder, a server gone)."""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_SECONDS = 120.0
# SQLite's answers to concurrent writers. Network errors are not retried here: MLflow's HTTP
# client already retries them, and a wrong tracking.uri should fail fast, not after minutes.
_TRANSIENT = ("database is locked", "database table is locked", "busy", "unable to open database")


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
