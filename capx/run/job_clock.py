"""A job's wall time, end to end: from its process's start, not from its MLflow run's start.

The run's own duration misses what comes before the run exists (Python's start-up and imports,
composing the config, opening the store, loading the data, solving the parameter budget), so
the sum of a study's run durations undercounts its wall time. :func:`job_wall_seconds` counts
from the process's start (``/proc``, or psutil where there is no ``/proc``); a sweep runs its
jobs one after another in one process, so there each job after the first counts from the end of
the one before (:func:`job_ended`), and the jobs' times add up to the sweep's.
"""

from __future__ import annotations

import os
import time

from capx.tracking.liveness import process_start

_IMPORTED = time.time()  # the fallback start: when capx's job code was first imported
_previous_end: float | None = None


def process_start_time(pid: int | None = None) -> float | None:
    """When process ``pid`` (default: this one) started, in seconds since the epoch."""
    pid = os.getpid() if pid is None else pid
    ticks = process_start(pid)  # clock ticks since boot
    try:
        with open("/proc/stat") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime"))
        if ticks is not None:
            return boot + int(ticks) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration):
        pass
    try:
        import psutil  # optional (the ``system`` extra); only where /proc is missing
    except ImportError:
        return None
    return float(psutil.Process(pid).create_time())


def job_started() -> float:
    """When this job started: the end of the previous job of this process, else the process's
    start (else when this module was imported)."""
    if _previous_end is not None:
        return _previous_end
    started = process_start_time()
    return started if started is not None else _IMPORTED


def job_wall_seconds() -> float:
    """Seconds from :func:`job_started` until now."""
    return max(0.0, time.time() - job_started())


def job_ended() -> None:
    """This job is over: the next job of this process counts from now."""
    global _previous_end
    _previous_end = time.time()
