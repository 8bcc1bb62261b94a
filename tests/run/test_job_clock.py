"""A job's wall time counts from its process's start, or from the end of the job before it in
the same (sweep) process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from capx.run import job_clock


def test_the_process_start_is_what_the_system_says():
    psutil = pytest.importorskip("psutil")
    started = job_clock.process_start_time()
    assert started is not None and started <= time.time()
    assert abs(started - psutil.Process(os.getpid()).create_time()) < 0.05


def test_a_child_started_later_has_a_later_start_and_a_short_wall_time():
    before = job_clock.process_start_time()
    code = ("import time; time.sleep(0.3); from capx.run import job_clock; "
            "print(job_clock.process_start_time(), job_clock.job_wall_seconds())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    started, wall = map(float, done.stdout.split())
    assert started > before
    assert wall >= 0.3  # it slept that long after its start, before asking


def test_after_a_job_ends_the_next_counts_from_then(monkeypatch):
    monkeypatch.setattr(job_clock, "_previous_end", None)
    first = job_clock.job_wall_seconds()
    job_clock.job_ended()
    ended = job_clock._previous_end
    assert job_clock.job_started() == ended
    assert 0 <= job_clock.job_wall_seconds() < first
