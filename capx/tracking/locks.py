"""One process at a time: an exclusive file lock, and SIGINT/SIGTERM held back, for the store's
set-up and the sweep's parent run (steps that jobs starting together must not race through,
and that a Ctrl-C must not leave half done)."""

from __future__ import annotations

import contextlib
import fcntl
import signal
import threading
from pathlib import Path
from typing import Iterator

HELD_BACK = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def signals_held_back() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the block is done (e.g. while a database is created,
    which must not be left half made); they are delivered when it ends. Only the main thread
    can: elsewhere this does nothing."""
    main = threading.current_thread() is threading.main_thread()
    if not main or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_BACK)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
