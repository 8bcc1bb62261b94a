"""The sweep objective: each job returns its dev metric at the selected epoch, so Optuna
optimises something, and every trial's objective is in MLflow."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir

from tests.support import REPO, SMOKE, read_runs


@pytest.mark.slow  # 4-10 s of end-to-end runs: the default suite's budget is ~3 min
def test_a_sweep_job_returns_its_objective_and_records_it(workdir):
    """``main`` in a multirun returns the objective (val/bits_per_char at the selected epoch),
    the same value the run logs as ``objective`` with the metric's name as a tag."""
    import capx.run.main
    from capx.run.main import JobContext

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*SMOKE, "solver.num_epochs=2"])
    context = JobContext(workdir, workdir / "out" / "0", multirun=True, sweep_dir=workdir / "out")
    original = JobContext.current
    JobContext.current = classmethod(lambda cls: context)
    try:
        value = capx.run.main.main(cfg)
    finally:
        JobContext.current = original
    _, runs = read_runs(workdir)
    (job,) = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert job.data.tags["capx.objective"] == "val/bits_per_char"
    assert value == pytest.approx(job.data.metrics["objective"])
    client, _ = read_runs(workdir)
    history = client.get_metric_history(job.info.run_id, "val/bits_per_char")
    best_epoch = int(job.data.metrics["val/best_epoch"])
    assert value == pytest.approx(next(m.value for m in history if m.step == best_epoch))
    assert value == pytest.approx(min(m.value for m in history))


def test_a_failed_sweep_job_returns_nan(workdir):
    import capx.run.main
    from capx.run.main import JobContext

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*SMOKE, "dataset.num_val=0"])
    context = JobContext(workdir, workdir / "out" / "0", multirun=True, sweep_dir=workdir / "out")
    original = JobContext.current
    JobContext.current = classmethod(lambda cls: context)
    try:
        assert math.isnan(capx.run.main.main(cfg))
    finally:
        JobContext.current = original


def test_the_objective_must_be_a_dev_metric():
    from capx.run.config import ConfigError, validate

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*SMOKE, "objective=test/bits_per_char"])
    with pytest.raises(ConfigError, match="never on the test set"):
        validate(cfg)


@pytest.mark.slow
def test_optuna_reports_the_trial_with_the_lowest_objective(workdir, cache_dir):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper",
                        reason="the optuna extra (hydra-optuna-sweeper) is not installed")
    env = {**os.environ, "CAPX_CACHE_DIR": str(cache_dir), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "-m", "hparams_search=optuna", *SMOKE,
         "solver.num_epochs=2", "hydra.sweeper.n_trials=3",
         "hydra.sweeper.sampler.n_startup_trials=3", "hydra.sweep.dir=sweep"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    best = yaml.safe_load((workdir / "sweep" / "optimization_results.yaml").read_text())
    _, runs = read_runs(workdir)
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in trials)
    objectives = [r.data.metrics["objective"] for r in trials]
    assert len(set(objectives)) == 3  # the trials differ, so "best" means something
    winner = min(trials, key=lambda r: r.data.metrics["objective"])
    assert best["best_value"] == pytest.approx(winner.data.metrics["objective"])
    assert float(winner.data.params["solver.learning_rate"]) == pytest.approx(
        best["best_params"]["solver.learning_rate"])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags.get("capx.best_trial") == winner.info.run_id
