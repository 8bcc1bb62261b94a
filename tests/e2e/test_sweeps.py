"""A sweep's end: it exits non-zero and its parent run is FAILED whenever a job did not finish
(a job with bad input makes no run; with tracking off there are no runs at all), and it lists
which jobs failed and why. Two sweeps launched at once never share a folder."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capx.run.outcomes import OUTCOME_FILE, sweep_summary, write_outcome
from tests.support import REPO, SMOKE, read_runs, run_py, subprocess_env


def _job_folder(sweep: Path, name: str, outcome: dict | None) -> None:
    (sweep / name / ".hydra").mkdir(parents=True)
    if outcome is not None:
        write_outcome(sweep / name, outcome)


def test_the_summary_lists_every_job_that_did_not_finish(tmp_path):
    _job_folder(tmp_path, "0", {"status": "FINISHED", "overrides": ["seed=0"]})
    _job_folder(tmp_path, "1", {"status": "INVALID", "overrides": ["seed=1"],
                                "error": "DataError: solver.batch_size=9 is larger\nmore"})
    _job_folder(tmp_path, "2", None)  # killed before it could write its outcome
    _job_folder(tmp_path, "3", {"status": "SKIPPED", "overrides": ["seed=3"],
                                "objective": float("nan")})
    summary = sweep_summary(tmp_path)
    assert [j["status"] for j in summary.jobs] == ["FINISHED", "INVALID", "MISSING", "SKIPPED"]
    assert summary.status == "FAILED"
    assert summary.lines() == [
        "job 1: INVALID (seed=1): DataError: solver.batch_size=9 is larger",
        "job 2: MISSING (): the job wrote no outcome: it was killed (SIGKILL, out of memory) or "
        "crashed before it could"]
    assert json.loads((tmp_path / "3" / OUTCOME_FILE).read_text())["objective"] is None
    _job_folder(tmp_path, "4", {"status": "KILLED"})
    assert sweep_summary(tmp_path).status == "KILLED"


@pytest.mark.parametrize("tracking", [pytest.param("true", marks=pytest.mark.slow), "false"])
def test_a_sweep_with_an_invalid_job_exits_non_zero_and_names_it(workdir, cache_dir, tracking):
    result = run_py(workdir, cache_dir, "-m", *SMOKE, "solver.batch_size=20,100000",
                     f"tracking.enabled={tracking}", "hydra.sweep.dir=sweep")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 of 2 job(s) did not finish" in out
    (line,) = [x for x in out.splitlines() if "job 1: INVALID (" in x]
    assert "solver.batch_size=100000" in line and "DataError: solver.batch_size=100000 is " \
        "larger than the 200 training captions" in line
    if tracking == "true":
        _, runs = read_runs(workdir)
        (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert parent.info.status == "FAILED"
        assert [r.info.status for r in children] == ["FINISHED"]  # the invalid job made no run
    else:
        assert not (workdir / "mlflow.db").exists()


@pytest.mark.slow
def test_two_sweeps_launched_together_get_their_own_folders_and_parents(workdir, cache_dir):
    env = subprocess_env(cache_dir)
    launch = [[sys.executable, str(REPO / "run.py"), "-m", *SMOKE, "seed=0,1",
               "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
              [sys.executable, str(REPO / "run.py"), "-m", *SMOKE, "seed=2,3"]]
    started = time.time()
    jobs = [subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for cmd in launch]
    outputs = [job.communicate(timeout=600)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], "\n".join(outputs)
    folders = sorted(p for p in (workdir / "multirun").glob("*/*") if p.is_dir())
    assert len(folders) == 2, folders
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir() if (p / ".hydra").is_dir()) == ["0", "1"]
        assert len(list(folder.glob("*/checkpoints/last.npz"))) == 2
    _, runs = read_runs(workdir)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2 and all(r.info.status == "FINISHED" for r in runs)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {p.info.run_id
                                                                     for p in parents}
    assert time.time() - started < 600
