"""Resuming a run as a user expects: each metric step once, overrides on top of the run's own
config, a record of what the resume changed, the source run untouched when a resume cannot
start, the checkpoint's owner checked, one resume of a run at a time, and the checkpoint in
MLflow after every write.

Each test trains the smoke job (10 iterations an epoch) in-process, in a temporary folder.
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

import numpy as np
import pytest

import capx.run.build
import capx.run.recorder
from capx.tracking import names
from capx.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from capx.run.config import ConfigError
from capx.data import DataError
from capx.run.resume_lock import ResumeInProgressError, lock_folder, resume_lock
from tests.support import (REPO, SMOKE, artifact_paths, mlflow_client, read_runs, run_in_process,
                           run_py, subprocess_env)

FAST = ["tracking.log_model=false", "evaluation.measure_memory=false"]


class _Killed(BaseException):
    """Stands for SIGKILL: nothing in the job catches it, so nothing is saved or closed."""


def _kill_at_iteration(monkeypatch, iteration: int) -> None:
    """The job dies (after the recorder flushed the iteration's loss) at ``iteration``."""
    original = capx.run.recorder.EpochRecorder.on_iteration_end

    def dying(self, solver, loss):
        original(self, solver, loss)
        if solver.iteration == iteration:
            raise _Killed

    monkeypatch.setattr(capx.run.recorder.EpochRecorder, "on_iteration_end", dying)


def _sigterm_at_iteration(monkeypatch, iteration: int) -> None:
    """SIGTERM at ``iteration``: the solver stops after it, the job saves and ends KILLED."""
    original = capx.run.recorder.EpochRecorder.on_iteration_end

    def stopping(self, solver, loss):
        original(self, solver, loss)
        if solver.iteration == iteration:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(capx.run.recorder.EpochRecorder, "on_iteration_end", stopping)


def _steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _only(workdir):
    client, runs = read_runs(workdir)
    (run_,) = runs
    return client, run_


@pytest.mark.slow  # three jobs; the stale-artifact and lock tests resume by run id by default
def test_a_resume_after_a_kill_logs_each_metric_step_once(workdir, monkeypatch):
    """Killed at iteration 15 after its losses reached the store (the checkpoint is at 10):
    the resume by run id (from the checkpoint uploaded at epoch 1) logs steps 16-20 only,
    no second params/data/test points, and a training time that does not go down; resuming
    the FINISHED run again adds nothing."""
    monkeypatch.setattr(capx.run.recorder.EpochRecorder, "FLUSH_EVERY", 1)
    _kill_at_iteration(monkeypatch, 15)
    with pytest.raises(_Killed):
        run_in_process(workdir, *FAST, "solver.num_epochs=2", name="first")
    monkeypatch.undo()
    client, killed = _only(workdir)
    run_id = killed.info.run_id
    assert killed.info.status == "RUNNING"
    assert _steps(client, run_id, names.TRAIN_LOSS) == list(range(1, 16))
    assert names.LAST_CHECKPOINT in artifact_paths(client, run_id)  # uploaded when written

    assert run_in_process(workdir, f"resume={run_id}", name="second") == "FINISHED"
    assert _steps(client, run_id, names.TRAIN_LOSS) == list(range(1, 21))
    for key in ("params/total", "data/vocab_size", "data/train_captions"):
        assert _steps(client, run_id, key) == [0], key
    assert _steps(client, run_id, names.VAL_LOSS) == [1, 2]
    assert _steps(client, run_id, "test/bleu4") == [2]
    seconds = [m.value for m in sorted(client.get_metric_history(run_id, names.TRAIN_SECONDS),
                                       key=lambda m: m.step)]
    assert len(seconds) == 2 and 0 < seconds[0] <= seconds[1]
    test_seconds = client.get_run(run_id).data.metrics["test/train_seconds"]
    assert test_seconds == pytest.approx(seconds[1])

    assert run_in_process(workdir, f"resume={run_id}", name="third") == "FINISHED"
    assert _steps(client, run_id, "test/bleu4") == [2]
    assert len(client.get_metric_history(run_id, names.OBJECTIVE)) == 1
    assert _steps(client, run_id, names.TRAIN_LOSS) == list(range(1, 21))
    assert client.get_run(run_id).data.tags[names.RESUMES] == "2"


@pytest.mark.slow  # two jobs; resuming is in the default suite through the override and lock tests
def test_a_resumed_partial_epoch_counts_only_its_own_iterations_and_the_run_says_what_changed(
        workdir, monkeypatch):
    """Stopped at iteration 15 (checkpoint there), resumed to 3 epochs: epoch 2 trained 5
    iterations in the resume, so its tokens per second counts 5, not 10. The params keep
    solver.num_epochs=2; a tag and resumes/1/ say the run now trains 3."""
    _sigterm_at_iteration(monkeypatch, 15)
    assert run_in_process(workdir, *FAST, "solver.num_epochs=2", "evaluation.final=false",
                           name="first") == "KILLED"
    monkeypatch.undo()
    client, stopped = _only(workdir)
    run_id = stopped.info.run_id
    assert run_in_process(workdir, f"resume={run_id}", "solver.num_epochs=3",
                           name="second") == "FINISHED"
    history = {key: {m.step: m.value for m in client.get_metric_history(run_id, key)}
               for key in (names.TOKENS_PER_SECOND, names.EPOCH_SECONDS)}
    tokens = {epoch: history[names.TOKENS_PER_SECOND][epoch] * history[names.EPOCH_SECONDS][epoch]
              for epoch in (2, 3)}  # = iterations x batch x tokens per caption
    assert tokens[2] / tokens[3] == pytest.approx(0.5)
    run_ = client.get_run(run_id)
    assert run_.data.params["solver.num_epochs"] == "2"
    assert run_.data.tags[names.RESUMED_SETTING + "solver.num_epochs"] == "3"
    assert run_.data.tags[names.RESUMES] == "1"
    text = client.download_artifacts(run_id, "resumes/1/overrides.txt", str(workdir / "dl"))
    assert "solver.num_epochs=3" in open(text).read()
    assert "solver.num_epochs: 2 -> 3" in open(text).read()
    assert {"resumes/1/config.yaml", names.CONFIG_YAML} <= artifact_paths(client, run_id)


def test_overrides_apply_on_top_of_the_checkpoints_config_and_fixed_ones_are_refused(
        workdir, caplog):
    """A char run resumed with only solver.num_epochs and a learning rate keeps its char
    tokenizer and sizes; the learning rate replaces the restored optimiser's rate (and says
    so). Settings a checkpoint fixes are refused by name, before any work."""
    off = ["tracking.enabled=false", "evaluation.final=false"]
    assert run_in_process(workdir, *off, "tokenizer=char", name="char") == "FINISHED"
    last = workdir / "outputs" / "char" / "checkpoints" / "last.npz"
    first = load_checkpoint(last)
    with caplog.at_level(logging.INFO):
        assert run_in_process(workdir, *off, f"resume={last}", "solver.num_epochs=2",
                               "solver.learning_rate=1e-9", name="more") == "FINISHED"
    assert "solver.learning_rate=1e-09 replaces the restored optimiser's rate 0.0095" in caplog.text
    resumed = load_checkpoint(workdir / "outputs" / "more" / "checkpoints" / "last.npz")
    assert resumed.state["iteration"] == 20 and resumed.tokenizer == first.tokenizer
    assert resumed.state["optim_configs"]["flat"]["learning_rate"] == pytest.approx(1e-9 * 0.95)
    for name, value in first.state["params"].items():  # a rate of 1e-9 barely moves them
        np.testing.assert_allclose(resumed.state["params"][name], value, atol=1e-6)

    for override, key in [("tokenizer=word", "tokenizer.name"), ("cell=rnn", "cell.name"),
                          ("model.hidden_dim=20", "model.hidden_dim"),
                          ("model.dtype=float64", "model.dtype"), ("seed=1", "seed"),
                          ("dataset.num_train=30", "dataset.num_train"),
                          ("split.seed=4", "split.seed"),
                          ("solver.batch_size=10", "solver.batch_size")]:
        with pytest.raises(ConfigError, match=rf"cannot change .*{key} \(trained with"):
            run_in_process(workdir, *off, f"resume={last}", override, name="refused")
    assert not (workdir / "outputs" / "refused").exists()


def test_a_resume_that_cannot_start_leaves_the_source_run_untouched(workdir, monkeypatch):
    """Data that cannot be read stops the resume before the run is touched at all; a failure
    while attaching to the run leaves its status and end time (the reason is a tag)."""
    assert run_in_process(workdir, *FAST, "evaluation.final=false", name="first") == "FINISHED"
    client, before = _only(workdir)
    run_id = before.info.run_id

    def missing(*sections):
        raise DataError("the shapes files are gone")

    with monkeypatch.context() as patch:
        patch.setattr(capx.run.build, "load_data", missing)
        with pytest.raises(DataError, match="shapes files are gone"):
            run_in_process(workdir, f"resume={run_id}", "solver.num_epochs=2", name="second")
    after = client.get_run(run_id)
    assert (after.info.status, after.info.end_time) == ("FINISHED", before.info.end_time)
    assert after.data.tags == before.data.tags

    def broken(*args):
        raise RuntimeError("no callbacks today")

    monkeypatch.setattr(capx.run.build, "make_callbacks", broken)
    assert run_in_process(workdir, f"resume={run_id}", "solver.num_epochs=2",
                           name="third") == "FAILED"
    after = client.get_run(run_id)
    assert (after.info.status, after.info.end_time) == ("FINISHED", before.info.end_time)
    assert "no callbacks today" in after.data.tags[names.RESUME_ERROR]
    assert names.RESUMED not in after.data.tags
    assert not (workdir / "outputs" / "third" / "checkpoints").exists()


def test_a_checkpoint_of_another_run_in_a_runs_artifacts_is_refused(workdir):
    """Another run's last.npz (its meta.run_id names that run) swapped into this run's
    artifacts, and the local one gone: resume=<this run> refuses it and leaves the run as it
    was."""
    assert run_in_process(workdir, *FAST, "evaluation.final=false", name="a") == "FINISHED"
    client, run_a = _only(workdir)
    a, other = run_a.info.run_id, "b" * 32
    mine = load_checkpoint(workdir / "outputs" / "a" / "checkpoints" / "last.npz")
    swapped = workdir / "swapped" / "last.npz"
    swapped.parent.mkdir()
    save_checkpoint(swapped, mine.state, mine.tokenizer, mine.config_yaml,
                    {**mine.meta, "run_id": other})
    client.log_artifact(a, str(swapped), "checkpoints")
    (workdir / "outputs" / "a" / "checkpoints" / "last.npz").unlink()  # the artifact alone
    with pytest.raises(CheckpointError, match=f"written by run {other} .*, not by run {a}"):
        run_in_process(workdir, f"resume={a}", name="c")
    after = client.get_run(a)
    assert (after.info.status, after.info.end_time) == ("FINISHED", run_a.info.end_time)


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from capx.run.resume_lock import resume_lock
    with resume_lock(sys.argv[1], Path(sys.argv[2])):
        print("locked", flush=True)
        time.sleep(60)
""")


@pytest.mark.slow  # 4-10 s of end-to-end runs: the default suite's budget is ~3 min
def test_one_resume_of_a_run_at_a_time_and_a_dead_process_holds_no_lock(workdir):
    assert run_in_process(workdir, *FAST, "evaluation.final=false", name="first") == "FINISHED"
    client, first = _only(workdir)
    run_id = first.info.run_id
    folder = lock_folder(f"sqlite:///{workdir / 'mlflow.db'}", workdir)
    with resume_lock(run_id, folder):
        with pytest.raises(ResumeInProgressError,
                           match=f"run {run_id} is being resumed by process {os.getpid()} on "
                                 f"host "):
            run_in_process(workdir, f"resume={run_id}", "solver.num_epochs=2", name="second")
    assert client.get_run(run_id).info.end_time == first.info.end_time

    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, run_id, str(folder)],
                              env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResumeInProgressError, match=f"process {holder.pid} on host"):
            with resume_lock(run_id, folder):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with resume_lock(run_id, folder):  # the kernel released it with the process
        pass


@pytest.mark.slow  # 4-10 s of end-to-end runs: the default suite's budget is ~3 min
def test_resume_takes_the_newest_checkpoint_and_refuses_a_stale_artifact_alone(
        workdir, monkeypatch, caplog):
    """Checkpoint uploads fail after the first epoch (and in the resume): the run's artifact
    last.npz is stale (epoch 1) while the local one holds epoch 3. resume=<run id> continues from the local one
    and says so; with the local one gone, the stale artifact is refused, both candidates
    named; given as a file, it is accepted with a warning."""
    import capx.tracking.tracker

    original = capx.tracking.tracker.Tracker.log_artifact
    uploads = {"checkpoints": 0}

    def stale_after_one(self, path, artifact_path=None):
        if artifact_path == names.CHECKPOINTS and Path(path).name == "last.npz":
            uploads["checkpoints"] += 1
            if uploads["checkpoints"] > 1:
                raise OSError("Read-only file system")
        return original(self, path, artifact_path)

    monkeypatch.setattr(capx.tracking.tracker.Tracker, "log_artifact", stale_after_one)
    with caplog.at_level(logging.WARNING):
        assert run_in_process(workdir, *FAST, "evaluation.final=false", "solver.num_epochs=3",
                              name="first") == "FINISHED"
    assert "could not upload" in caplog.text and "training goes on" in caplog.text
    client, first = _only(workdir)
    run_id = first.info.run_id
    local = workdir / "outputs" / "first" / "checkpoints" / "last.npz"
    done = load_checkpoint(local).state["iteration"]
    per_epoch = done // 3

    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run_in_process(workdir, *FAST, "evaluation.final=false", f"resume={run_id}",
                              "solver.num_epochs=4", name="second") == "FINISHED"
    assert f"resume: run {run_id} from local {local} (iteration {done})" in caplog.text
    newest = workdir / "outputs" / "second" / "checkpoints" / "last.npz"
    assert client.get_run(run_id).data.tags[names.LOCAL_CHECKPOINT] == str(newest.resolve())
    assert load_checkpoint(newest).state["iteration"] == 4 * per_epoch
    monkeypatch.undo()

    for path in (local, newest):  # only the stale artifact is left
        path.unlink()
    with pytest.raises(CheckpointError) as refused:
        run_in_process(workdir, f"resume={run_id}", name="third")
    message = str(refused.value)
    assert f"wrote a checkpoint at iteration {4 * per_epoch}" in message
    assert "artifact checkpoints/last.npz (downloaded to" in message
    assert f"(iteration {per_epoch})" in message and f"local {newest.resolve()}: not found" in message
    stale = workdir / "outputs" / "third" / "resume" / "last.npz"
    assert f"resume={stale}" in message

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert run_in_process(workdir, *FAST, "evaluation.final=false", f"resume={stale}",
                              name="fourth") == "FINISHED"
    assert f"is behind run {run_id}, which wrote a checkpoint at iteration {4 * per_epoch}" in caplog.text


# -- slow: real processes ---------------------------------------------------------------------------


def _wait_for(condition, process, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.2)


@pytest.mark.slow
def test_after_sigkill_one_resume_trains_a_second_is_refused_and_no_step_is_logged_twice(
        workdir, cache_dir):
    """SIGKILL between checkpoints (every 3 epochs, losses flushed in between); the resume by
    run id finds the uploaded checkpoint; a second resume started meanwhile exits 2 naming the
    first's process; every train/loss step is in the store once."""
    def start(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(REPO / "run.py"), *args], cwd=workdir,
                                env=subprocess_env(cache_dir), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    first = start(*SMOKE, "solver.num_epochs=200", "checkpoint.every_epochs=3",
                  "tracking.log_model=false", "hydra.run.dir=out1")
    last = workdir / "out1" / "checkpoints" / "last.npz"
    _wait_for(last.exists, first)  # the store exists by then (its making is not raced here)
    client = mlflow_client(workdir)

    def flushed_past_the_checkpoint() -> bool:
        run_id = load_checkpoint(last).meta["run_id"]
        logged = _steps(client, run_id, names.TRAIN_LOSS)
        return bool(logged) and logged[-1] > load_checkpoint(last).state["iteration"]

    _wait_for(flushed_past_the_checkpoint, first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    run_id = load_checkpoint(last).meta["run_id"]
    assert client.get_run(run_id).info.status == "RUNNING"

    resumed = start(f"resume={run_id}", "hydra.run.dir=out2")
    lock = lock_folder(f"sqlite:///{workdir / 'mlflow.db'}", workdir) / f"resume-{run_id}.lock"
    _wait_for(lambda: lock.exists() and lock.read_text().strip(), resumed)
    second = run_py(workdir, cache_dir, f"resume={run_id}", "hydra.run.dir=out3")
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"is being resumed by process {resumed.pid} on host" in second.stderr
    _wait_for(lambda: (workdir / "out2" / "checkpoints" / "last.npz").exists(), resumed)
    resumed.send_signal(signal.SIGINT)
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 130, output
    assert client.get_run(run_id).info.status == "KILLED"
    steps = _steps(client, run_id, names.TRAIN_LOSS)
    assert steps == list(range(1, steps[-1] + 1))  # each step once, none missing
    assert _steps(client, run_id, "params/total") == [0]


def test_a_kill_just_after_a_checkpoint_is_written_loses_no_step_of_it(workdir, monkeypatch):
    """The record is never behind the checkpoint a resume starts from: the job dies the moment
    epoch 1's ``last.npz`` is on disk (before anything else runs), yet the store already holds
    epoch 1's losses and metrics, so the resume from that checkpoint leaves no step missing.
    (Checkpoints used to be written before the epoch was recorded; a SIGKILL between the two
    lost the epoch for good.)"""
    import capx.run.callbacks

    real_save = capx.run.callbacks.Checkpointer.save

    def save_then_die(self, solver, name="last.npz"):
        path = real_save(self, solver, name)
        if name == "last.npz":
            raise _Killed
        return path

    monkeypatch.setattr(capx.run.callbacks.Checkpointer, "save", save_then_die)
    with pytest.raises(_Killed):
        run_in_process(workdir, *FAST, "solver.num_epochs=2", "checkpoint.every_epochs=1",
                       name="first")
    monkeypatch.undo()
    client, killed = _only(workdir)
    run_id = killed.info.run_id
    assert load_checkpoint(workdir / "outputs" / "first" / "checkpoints" / "last.npz"
                           ).state["iteration"] == 10
    assert _steps(client, run_id, names.TRAIN_LOSS) == list(range(1, 11))
    assert _steps(client, run_id, names.VAL_LOSS) == [1]

    assert run_in_process(workdir, f"resume={run_id}", name="second") == "FINISHED"
    assert _steps(client, run_id, names.TRAIN_LOSS) == list(range(1, 21))
    assert _steps(client, run_id, names.VAL_LOSS) == [1, 2]
