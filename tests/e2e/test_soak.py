"""A soak test of the whole life cycle: a parallel sweep of 8 jobs in which one job is SIGKILLed
and one gets SIGTERM, from outside, while they train.

Afterwards no run is RUNNING, each killed run resumes (by its run id) to exactly the curve of an
uninterrupted run of the same settings, and no run has a metric step twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from capx.tracking import names
from tests.support import REPO, SMOKE, mlflow_client, subprocess_env

EPOCHS = 30
SWEEP = [*SMOKE, f"solver.num_epochs={EPOCHS}", "evaluation.final=false",
         "tracking.log_model=false", "seed=0,1,2,3,4,5,6,7"]


def _jobs(client):
    experiment = client.get_experiment_by_name("capx")
    if experiment is None:
        return []
    return [r for r in client.search_runs([experiment.experiment_id])
            if "mlflow.parentRunId" in r.data.tags]


def _training(client, exclude: set[str]):
    """A job run that is still RUNNING and has written a checkpoint to resume from (its tag is
    set once ``last.npz`` is on disk; the epoch's metrics reach the store before the file, so
    ``epoch >= 1`` alone does not mean there is one)."""
    for run in _jobs(client):
        if (run.info.status == "RUNNING" and run.info.run_id not in exclude
                and names.CHECKPOINT_ITERATION in run.data.tags and "capx.pid" in run.data.tags):
            return run
    return None


def _curve(client, run_id: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, "train/loss"))


@pytest.mark.slow
def test_a_sweep_with_a_sigkill_and_a_sigterm_loses_nothing(workdir, cache_dir):
    env = subprocess_env(cache_dir)
    env["OPENBLAS_NUM_THREADS"] = "1"
    sweep = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "-m", "hydra/launcher=joblib",
         "hydra.launcher.n_jobs=2", *SWEEP], cwd=workdir, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(workdir.glob("multirun/*/*/*/.hydra")):
        time.sleep(0.1)  # the sweep has made its store: reading it now cannot race its set-up
    client, signalled = mlflow_client(workdir), {}
    for signum in (signal.SIGTERM, signal.SIGKILL):
        while time.time() < deadline and sweep.poll() is None:
            run = _training(client, set(signalled))
            if run is not None:
                os.kill(int(run.data.tags["capx.pid"]), signum)
                signalled[run.info.run_id] = signum
                break
            time.sleep(0.1)
        # Let the SIGTERMed job close its run before the SIGKILL: the SIGKILL makes loky tear
        # down the pool, which would kill that job too if it were still closing (the store's
        # reaper then closes what it left RUNNING, which the re-run below checks).
        while (signum == signal.SIGTERM and signalled and time.time() < deadline
               and client.get_run(next(iter(signalled))).info.status == "RUNNING"):
            time.sleep(0.1)
    output = sweep.communicate(timeout=600)[0]
    assert len(signalled) == 2, output
    assert sweep.returncode != 0, output  # a job did not finish: the sweep says so
    status = {r.info.run_id: r.info.status for r in _jobs(client)}
    sigterm = next(r for r, s in signalled.items() if s == signal.SIGTERM)
    assert status[sigterm] == "KILLED"  # it closed its own run, checkpoint saved

    # The SIGKILL took its joblib worker down; loky then cancels the jobs not yet started and
    # the sweep ends at once. Run it again: FINISHED jobs are skipped, the others run, and
    # opening the store closes the runs the dead processes left RUNNING (job and parent).
    again = subprocess.run([sys.executable, str(REPO / "run.py"), "-m", *SWEEP], cwd=workdir,
                           env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    experiment = client.get_experiment_by_name("capx")
    every = client.search_runs([experiment.experiment_id])
    assert "RUNNING" not in {r.info.status for r in every}, (
        [(r.info.run_name, r.info.status) for r in every], output)
    assert all(client.get_run(run_id).info.status == "KILLED" for run_id in signalled)
    for run_id in signalled:
        resumed = subprocess.run([sys.executable, str(REPO / "run.py"), f"resume={run_id}"],
                                 cwd=workdir, env=env, capture_output=True, text=True,
                                 timeout=600)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    runs = _jobs(client)
    assert all(r.info.status == "FINISHED" for r in runs if r.info.run_id in signalled)
    assert "RUNNING" not in {r.info.status for r in runs}
    finished = {}
    for run in runs:
        if run.info.status == "FINISHED" and run.info.run_id not in signalled:
            finished.setdefault(run.data.params["seed"], run.info.run_id)
    for run in runs:  # no metric step logged twice, in any run
        for key in ("train/loss", "val/loss", "epoch"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert len(steps) == len(set(steps)), (run.info.run_id, key)
    for run_id in signalled:  # a resumed run's curve is the uninterrupted run's, exactly
        seed = client.get_run(run_id).data.params["seed"]
        assert seed in finished, f"no uninterrupted run of seed {seed} to compare with"
        reference = _curve(client, finished[seed])
        assert [s for s, _ in reference] == list(range(1, EPOCHS * 10 + 1))
        assert _curve(client, run_id) == reference
