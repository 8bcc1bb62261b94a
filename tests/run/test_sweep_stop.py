"""Ctrl-C stops a sweep, as it stops any Hydra sweep: with the basic launcher (jobs one by one
in one process) the job it stops ends KILLED, the jobs after it are not started, and the sweep
exits 130. Parallel launchers are not affected: each worker's job is stopped on its own."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capx.run import main as job_main
from capx.run.context import JobContext
from capx.run.outcomes import OUTCOME_FILE, sweep_summary
from tests.support import REPO, SMOKE, read_runs, subprocess_env


def _sweep_job(root: Path, n: int, in_process: bool = True) -> JobContext:
    folder = root / str(n)
    (folder / ".hydra").mkdir(parents=True)
    return JobContext(original_cwd=root, output_dir=folder, multirun=True, sweep_dir=root,
                      overrides=[f"seed={n}"], in_process_sweep=in_process)


@pytest.mark.parametrize("in_process", [True, False])
def test_a_killed_job_stops_an_in_process_sweep_and_only_that(tmp_path, monkeypatch, in_process):
    monkeypatch.setattr(job_main, "_sweep_stopped_at", None)
    jobs = iter([_sweep_job(tmp_path, n, in_process) for n in range(3)])
    monkeypatch.setattr(JobContext, "current", classmethod(lambda cls: next(jobs)))
    started = []

    def run_job(cfg, context):
        started.append(context.overrides)
        return job_main.Outcome("KILLED" if len(started) == 1 else "FINISHED", objective=1.0)

    monkeypatch.setattr(job_main, "run_job", run_job)
    objectives = [job_main.main(None) for _ in range(3)]
    summary = sweep_summary(tmp_path)
    if in_process:
        assert started == [["seed=0"]]
        assert [j["status"] for j in summary.jobs] == ["KILLED", "KILLED", "KILLED"]
        later = json.loads((tmp_path / "2" / OUTCOME_FILE).read_text())["error"]
        assert later.startswith("not started") and "seed=0" in later and "again" in later
        assert all(math.isnan(o) for o in objectives[1:])  # Optuna counts them failed
    else:  # a parallel launcher's worker: its next job runs
        assert started == [["seed=0"], ["seed=1"], ["seed=2"]]
        assert [j["status"] for j in summary.jobs] == ["KILLED", "FINISHED", "FINISHED"]


@pytest.mark.slow
def test_ctrl_c_in_a_sweep_stops_it_with_one_killed_run_and_no_other(tmp_path):
    process = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "-m", *SMOKE, "solver.num_epochs=200",
         "seed=0,1,2", "hydra.sweep.dir=sweep"], cwd=tmp_path,
        env=subprocess_env(tmp_path / "cache"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "sweep").glob("*/checkpoints/last.npz")):
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 130, output
    assert "Traceback" not in output and "not started" in output
    _, runs = read_runs(tmp_path)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [r.info.status for r in children] == ["KILLED"]
    assert [r.info.status for r in parents] == ["KILLED"]
    assert [j["status"] for j in sweep_summary(tmp_path / "sweep").jobs] == ["KILLED"] * 3
