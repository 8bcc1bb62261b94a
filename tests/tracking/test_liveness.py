"""Runs left RUNNING by a process that died (SIGKILL, out of memory, a lost machine) are closed
when the next job opens the store, or when ``capx report`` reads it, with a note saying why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from capx.tracking import liveness
from capx.tracking.preflight import open_store
from tests.support import REPO, SMOKE, read_runs, subprocess_env

SETTINGS = {"enabled": True, "uri": None, "experiment_name": "capx"}


@pytest.fixture(autouse=True)
def _default_store(monkeypatch):
    """The store is ./mlflow.db of the folder given (another test may have set the variable)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _running(client, exp_id: str, name: str, **tags: str) -> str:
    return client.create_run(exp_id, run_name=name, tags=tags).info.run_id


@pytest.mark.slow  # 4-10 s of end-to-end runs: the default suite's budget is ~3 min
def test_dead_runs_are_closed_and_live_ones_left_alone(tmp_path):
    store = open_store(SETTINGS, tmp_path)
    client, exp_id = store.client, store.experiment_id
    mine = liveness.process_tags()
    host = mine[liveness.HOST]
    old = f"{time.time() - 2 * liveness.STALE_SECONDS:.0f}"
    runs = {
        "dead": _running(client, exp_id, "dead", **{**mine, liveness.PID: str(_dead_pid())}),
        "reused pid": _running(client, exp_id, "reused", **{**mine, liveness.STARTED: "1"}),
        "alive": _running(client, exp_id, "alive", **mine),
        "far, silent": _running(client, exp_id, "far", **{
            liveness.HOST: host + "-elsewhere", liveness.PID: "1", liveness.HEARTBEAT: old}),
        "far, beating": _running(client, exp_id, "near", **{
            liveness.HOST: host + "-elsewhere", liveness.PID: "1",
            liveness.HEARTBEAT: f"{time.time():.0f}"}),
        "not capx's": _running(client, exp_id, "other"),
    }
    closed = liveness.reap_dead_runs(client, [exp_id])
    assert set(closed) == {runs["dead"], runs["reused pid"], runs["far, silent"]}
    status = {k: client.get_run(v) for k, v in runs.items()}
    assert status["dead"].info.status == "KILLED"
    assert "ended without closing the run" in status["dead"].data.tags[liveness.REAPED]
    assert status["reused pid"].info.status == "KILLED"
    assert status["far, silent"].info.status == "FAILED"
    assert "no heartbeat" in status["far, silent"].data.tags[liveness.REAPED]
    for alive in ("alive", "far, beating", "not capx's"):
        assert status[alive].info.status == "RUNNING" and liveness.REAPED not in status[alive].data.tags


@pytest.mark.slow
def test_a_sigkilled_run_is_closed_by_the_next_run_in_the_folder(workdir, cache_dir):
    """A real SIGKILL mid-training leaves the run RUNNING; the next ``run.py`` in the same
    folder marks it KILLED with the note, before its own run starts."""
    env = subprocess_env(cache_dir)
    job = subprocess.Popen([sys.executable, str(REPO / "run.py"), *SMOKE, "solver.num_epochs=400",
                            "hydra.run.dir=first"], cwd=workdir, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(workdir.glob("first/checkpoints/last.npz")):
        time.sleep(0.2)
    assert list(workdir.glob("first/checkpoints/last.npz")), "the job never checkpointed"
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    _, runs = read_runs(workdir)
    assert [r.info.status for r in runs] == ["RUNNING"]
    again = subprocess.run([sys.executable, str(REPO / "run.py"), *SMOKE, "seed=1",
                            "hydra.run.dir=second"], cwd=workdir, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    _, runs = read_runs(workdir)
    by_status = sorted((r.info.status, r.data.tags.get(liveness.REAPED, "")) for r in runs)
    assert by_status[0][0] == "FINISHED" and by_status[1][0] == "KILLED"
    assert f"process {job.pid}" in by_status[1][1]
