"""SIGINT and SIGTERM in every phase of a job: the run ends KILLED, with a checkpoint when there
is state, and without a traceback.

In-process tests send the signal to this process from inside the phase (by wrapping one of the
job's steps); the subprocess tests signal a real ``python run.py`` from outside while it waits in
that phase.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from capx.checkpoint import load_checkpoint
from capx.run.main import JobContext, run
from tests.support import REPO, SMOKE

def _only_run(folder: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    (run_,) = client.search_runs([client.get_experiment_by_name("capx").experiment_id])
    return run_


def _job(folder: Path, *overrides: str) -> str:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*SMOKE, *overrides])
    return run(cfg, JobContext(original_cwd=folder, output_dir=folder / "out",
                               overrides=list(overrides)))


def _signal_inside(monkeypatch, module, name: str, signum: int) -> None:
    """``module.name`` first signals this process, then does its work."""
    original = getattr(module, name)

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signum)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, signalled)


def _no_runs(folder: Path) -> bool:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("capx")
    return experiment is None or not client.search_runs([experiment.experiment_id])


def _main(*overrides: str) -> int:
    import capx.run.main

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*SMOKE, *overrides])
    return capx.run.main.main(cfg)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_preparing_data_exits_130_and_leaves_no_run(workdir, monkeypatch, capsys,
                                                                   signum):
    """The data, tokenizer and model are prepared before the run is created, so a signal
    then leaves nothing RUNNING: there is no run yet, and nothing was trained."""
    import capx.run.build

    _signal_inside(monkeypatch, capx.run.build, "load_data", signum)
    assert _main() == 130
    err = capsys.readouterr().err
    assert "before the run started" in err and "Traceback" not in err
    assert _no_runs(workdir)
    assert signal.getsignal(signum) is not None  # the old handler is back


def test_a_signal_while_building_the_model_leaves_no_run(workdir, monkeypatch):
    import capx.run.build

    _signal_inside(monkeypatch, capx.run.build, "hidden_dim", signal.SIGTERM)
    assert _main("evaluation.final=false") == 130
    assert _no_runs(workdir)


@pytest.mark.slow  # a signal in training is in the default suite (repeated SIGINTs)
def test_a_signal_before_the_first_iteration_saves_the_starting_state(workdir, monkeypatch):
    import capx.run.console

    _signal_inside(monkeypatch, capx.run.console, "starting", signal.SIGTERM)
    assert _job(workdir, "evaluation.final=false") == "KILLED"
    assert _only_run(workdir).info.status == "KILLED"
    assert load_checkpoint(workdir / "out" / "checkpoints" / "last.npz").state["iteration"] == 0


def test_a_signal_during_the_final_evaluation_keeps_the_trained_checkpoint(workdir,
                                                                          monkeypatch):
    """The evaluation swaps the selected epoch's parameters into the model; the checkpoint
    written before it must stay the trained state (resume then only re-runs the evaluation)."""
    import capx.run.training

    def interrupted_evaluation(plain, parts, state):
        parts.model.params.flat[...] = 0.0  # what a half-done evaluation may leave behind
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the signal should have stopped the evaluation")

    monkeypatch.setattr(capx.run.training, "score_on_test", interrupted_evaluation)
    assert _job(workdir) == "KILLED"
    recorded = _only_run(workdir)
    assert recorded.info.status == "KILLED" and "test/bleu4" not in recorded.data.metrics
    checkpoint = load_checkpoint(workdir / "out" / "checkpoints" / "last.npz")
    assert checkpoint.state["iteration"] == 10
    assert any(abs(w).sum() > 0 for w in checkpoint.state["params"].values())


def test_a_signal_before_the_run_exists_exits_130_without_a_run(workdir, monkeypatch, capsys):
    import capx.run.main

    _signal_inside(monkeypatch, capx.run.main, "open_recorder", signal.SIGINT)
    assert _main() == 130
    assert "before the run started" in capsys.readouterr().err
    assert _no_runs(workdir)


# -- a real process, signalled from outside ----------------------------------------------------

WAIT_IN = textwrap.dedent("""
    import runpy, sys, time
    from pathlib import Path
    import {module} as target
    original = target.{name}
    def waiting(*args, **kwargs):
        Path("in_phase").touch()
        time.sleep(60)
        return original(*args, **kwargs)
    target.{name} = waiting
    sys.argv = ["run.py", *sys.argv[1:]]
    runpy.run_path({run_py!r}, run_name="__main__")
""")


def _run_py_waiting_in(folder: Path, cache_dir: Path, module: str, name: str, *args: str):
    """``python run.py args`` that waits 60 s in ``module.name`` (and says so with a file)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(CAPX_CACHE_DIR=str(cache_dir),
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    code = WAIT_IN.format(module=module, name=name, run_py=str(REPO / "run.py"))
    return subprocess.Popen([sys.executable, "-c", code, *SMOKE, "hydra.run.dir=out", *args],
                            cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _signal_when_in_phase(process, folder: Path, signum: int) -> str:
    deadline = time.monotonic() + 120
    while not (folder / "in_phase").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.1)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=60)
    return output


@pytest.mark.slow
def test_ctrl_c_while_preparing_data_exits_130_without_a_traceback_or_a_run(workdir, cache_dir):
    """The data is prepared before the run is created, so Ctrl-C then leaves no run at all."""
    process = _run_py_waiting_in(workdir, cache_dir, "capx.run.build", "load_data")
    output = _signal_when_in_phase(process, workdir, signal.SIGINT)
    assert process.returncode == 130, output
    assert "Traceback" not in output and "before the run started" in output
    assert _no_runs(workdir)


@pytest.mark.slow
def test_sigterm_during_the_final_evaluation_kills_the_run_and_it_resumes(workdir, cache_dir):
    process = _run_py_waiting_in(workdir, cache_dir, "capx.run.training", "score_on_test")
    output = _signal_when_in_phase(process, workdir, signal.SIGTERM)
    assert process.returncode == 130, output
    assert "Traceback" not in output
    killed = _only_run(workdir)
    assert killed.info.status == "KILLED"
    resumed = subprocess.run(
        [sys.executable, str(REPO / "run.py"), f"resume={killed.info.run_id}",
         "hydra.run.dir=out2"], cwd=workdir, capture_output=True, text=True, timeout=300,
        env={**os.environ, "CAPX_CACHE_DIR": str(cache_dir),
             "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    again = _only_run(workdir)
    assert again.info.status == "FINISHED" and "test/bleu4" in again.data.metrics


@pytest.mark.parametrize("signals", [2, 3])
def test_repeated_sigints_in_training_lose_no_step_of_the_checkpoint(workdir, monkeypatch,
                                                                     signals):
    """Ctrl-C pressed again (and again) while training: the job still stops after the
    iteration, and every step the saved checkpoint holds is in the run's train/loss history
    (a second SIGINT used to raise inside the iteration, before its loss was recorded)."""
    import capx.run.recorder

    original = capx.run.recorder.EpochRecorder.on_iteration_end
    stop_at = 3  # inside the first epoch: nothing has been flushed at an epoch's end yet

    def pressed(self, solver, loss):
        if solver.iteration == stop_at:
            for _ in range(signals):
                os.kill(os.getpid(), signal.SIGINT)
        return original(self, solver, loss)

    monkeypatch.setattr(capx.run.recorder.EpochRecorder, "on_iteration_end", pressed)
    assert _job(workdir, "solver.num_epochs=4", "evaluation.final=false") == "KILLED"
    saved = load_checkpoint(workdir / "out" / "checkpoints" / "last.npz").state["iteration"]
    assert saved == stop_at
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    recorded = _only_run(workdir)
    steps = {m.step for m in client.get_metric_history(recorded.info.run_id, "train/loss")}
    assert steps == set(range(1, saved + 1))  # the smoke preset logs every iteration
    assert recorded.info.status == "KILLED"


def test_a_checkpoint_that_cannot_be_written_after_a_signal_still_ends_the_run_killed(
        workdir, monkeypatch):
    """A full disk while the interrupted job saves: the run is closed KILLED (not left RUNNING)
    and the checkpoint of the epoch before stays the one to resume from."""
    import capx.run.callbacks

    real_save, signalled = capx.run.callbacks.Checkpointer.save, []

    def save_then_signal(self, solver, name="last.npz"):
        if signalled:  # the save after the signal: the disk is full
            raise OSError(28, "No space left on device")
        path = real_save(self, solver, name)
        if name == "last.npz":
            signalled.append(os.kill(os.getpid(), signal.SIGTERM))
        return path

    monkeypatch.setattr(capx.run.callbacks.Checkpointer, "save", save_then_signal)
    assert _job(workdir, "solver.num_epochs=3") == "KILLED"
    assert _only_run(workdir).info.status == "KILLED"
    checkpoint = load_checkpoint(workdir / "out" / "checkpoints" / "last.npz")
    assert checkpoint.state["epoch"] == 1
