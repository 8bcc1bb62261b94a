"""One resume of a run at a time: a file lock keyed by the run id.

Two processes resuming one MLflow run would both train and log into it. :func:`resume_lock`
takes an exclusive, non-blocking ``fcntl`` lock on ``.capx-locks/resume-<run id>.lock`` beside
the SQLite store (or in the folder the job was started from, for a tracking server); the second
process gets :class:`ResumeInProgressError`, naming the process and host that hold it. The
kernel releases the lock when its process ends, however it ends (even by SIGKILL).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import Iterator

LOCK_FOLDER = ".capx-locks"


class ResumeInProgressError(RuntimeError):
    """Another process is resuming the same run."""


def lock_folder(uri: str, original_cwd: Path) -> Path:
    """Where the locks of the runs of store ``uri`` live: beside a SQLite file, else in
    ``original_cwd``."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).resolve().parent / LOCK_FOLDER
    return Path(original_cwd) / LOCK_FOLDER


@contextlib.contextmanager
def resume_lock(run_id: str, folder: Path) -> Iterator[Path]:
    """Hold the lock on resuming ``run_id`` for the block; raise at once if another has it."""
    path = Path(folder) / f"resume-{run_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ResumeInProgressError(
                f"run {run_id} is being resumed by {holder}; wait until it ends (or stop it) "
                f"before resuming it again (lock file: {path})") from None
        try:
            handle.truncate(0)
            handle.write(f"process {os.getpid()} on host {socket.gethostname()}\n")
            handle.flush()
            yield path
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
