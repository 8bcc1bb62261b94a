"""One job's training and its outcome: FINISHED, KILLED (a signal) or FAILED.

:class:`Job` takes the prepared parts (:func:`capx.run.build.prepare`) and the job's run, attaches
the checkpointer and callbacks, trains, and on the way out saves a
checkpoint, scores the selected parameters on the test split, records through its recorder
(:mod:`capx.run.recorder`) and prints the summary (:mod:`capx.run.console`). SIGINT/SIGTERM are handled
for the whole job (:mod:`capx.run.interrupts`): during training they stop after the current
iteration (a second SIGINT aborts), in any other phase at once; the run ends KILLED, with a
checkpoint when there is state.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from capx.budget import flops_per_caption
from capx.checkpoint import Checkpoint, CheckpointError
from capx.data import DataError
from capx.registry import PluginError, UnknownNameError
from capx.run import console, interrupts
from capx.run.build import Parts, PluginOptionError, attach
from capx.run.callbacks import RunState
from capx.run.context import JobContext
from capx.run.recorder import Recorder, safely
from capx.run.schemas import TopLevelConfig
from capx.run.scoring import (data_statistics, final_evaluation, timing_summary,
                              train_step_peak_memory_mb)
from capx.solver import TrainingDivergedError
from capx.tracking import names

log = logging.getLogger(__name__)

# Errors that say what to fix in their message: logged without a traceback.
USER_ERRORS = (DataError, CheckpointError, PluginError, UnknownNameError, PluginOptionError)
T = names.TEST


class Job:
    """Trains the job the validated config describes, recording into ``recorder``."""

    def __init__(self, config: TopLevelConfig, context: JobContext, recorder: Recorder,
                 checkpoint: Checkpoint | None, prepared: Parts, state: RunState):
        self.config, self.context, self.recorder, self.checkpoint = (config, context, recorder,
                                                                     checkpoint)
        self.prepared, self.state = prepared, state
        self.parts: Parts | None = None  # the prepared parts, once attached to the run
        self.signals = interrupts.Signals()
        self.saved_final = False  # last.npz holds the trained state (the evaluation then
        #                           swaps the selected epoch's parameters into the model)
        self.objective = float("nan")  # the config's objective metric, once FINISHED
        self.error: str | None = None  # why the job did not finish, in one line

    @property
    def solver(self) -> Any:
        return None if self.parts is None else self.parts.solver

    def execute(self) -> str:
        """Build, train and finish; returns the run's status instead of raising. A signal in
        any phase ends the run KILLED (see :mod:`capx.run.interrupts`)."""
        with interrupts.handled_by(self.signals):
            try:
                return self._build_train_finish()
            except (KeyboardInterrupt, interrupts.Interrupted):
                return self.interrupted(self.signals.why or "KeyboardInterrupt")

    def _build_train_finish(self) -> str:
        try:
            recorder, prepared = self.recorder, self.prepared
            self.parts = attach(prepared, self.config, self.context.output_dir, self.state,
                                recorder.run_id, recorder.checkpoint_saved,
                                recorder.epoch_callback(self.state, self.config,
                                                        prepared.solver_data))
            self.recorder.begin()  # a resumed run is reopened only once everything fits
        except Exception as exc:  # noqa: BLE001 - recorded, and the sweep goes on
            return self.failed_to_start(exc)
        try:
            resumed = self.checkpoint is not None
            console.starting(self.config, self.context, self.parts, self.recorder, resumed)
            self.recorder.log_start(self.config, self.context, self.parts, resumed)
            self.signals.training = self.parts.solver
            try:
                self.parts.solver.train()
            finally:
                self.signals.training = None
            if self.signals.received is not None:
                return self.interrupted(self.signals.why)
            return self.finished()
        except Exception as exc:  # noqa: BLE001 - recorded, and the sweep goes on
            log_training_failure(exc, self.state)
            return self.failed(exc)

    def finished(self) -> str:
        self.parts.checkpointer.save(self.parts.solver)
        self.saved_final = True
        if self.config.evaluation.final:
            evaluate_at_end(self.config, self.parts, self.state, self.recorder)
        self.signals.closing = True
        self.record_objective()
        self.recorder.log_outputs(self.state, self.parts)
        console.summary("FINISHED", self.state, self.solver, self.recorder)
        return self._end("FINISHED")

    def record_objective(self) -> None:
        """The ``objective`` metric at the selected epoch (see :func:`selected_objective`),
        logged as ``objective`` with its name as a tag."""
        value = selected_objective(self.config.objective, self.state)
        if value is not None:
            self.objective = value
            safely(lambda: self.recorder.log_objective(self.config.objective, value,
                                                       self.state.best_epoch or 0))

    def interrupted(self, why: str) -> str:
        self.signals.closing = True
        self.error = f"interrupted ({why})"
        if self.recorder.reopen_pending:
            log.warning("interrupted (%s) before the resume trained: run %s is left as it was "
                        "(%s)", why, self.recorder.run_id, self.recorder.status_before_reopen)
            return "KILLED"
        if self.parts is None:
            log.warning("interrupted (%s) before training started: nothing to save", why)
        elif self.saved_final:
            log.warning("interrupted (%s) after training: its checkpoint is saved", why)
        else:
            log.warning("interrupted (%s): saving a checkpoint", why)
            try:
                self.parts.checkpointer.save(self.parts.solver)
            except Exception as exc:  # noqa: BLE001 - the run must still end KILLED, not RUNNING
                log.error("could not save the interrupted run's checkpoint (%s); the last one "
                          "written before it is kept: %s", exc, self.state.last_checkpoint)
        safely(lambda: self.recorder.log_outputs(self.state, self.parts))
        safely(lambda: self.recorder.stopped(why))
        console.summary("KILLED", self.state, self.solver, self.recorder)
        return self._end("KILLED")

    def failed_to_start(self, exc: BaseException) -> str:
        """Attaching the prepared parts to the run failed: nothing trained. A user error is
        reported without a traceback, and a resumed run that could not even start is left as
        it was (its status and end time; the reason is added as a tag). (The data's and the
        config's errors come earlier, before the run.)"""
        self.signals.closing = True
        self.error = f"{type(exc).__name__}: {exc}"
        log_start_failure(exc)
        if not self.recorder.reopen_pending:
            return self.failed(exc)
        safely(lambda: self.recorder.resume_failed(exc))
        log.error("run %s keeps its status %s: the resume did not start",
                  self.recorder.run_id, self.recorder.status_before_reopen)
        return "FAILED"

    def failed(self, exc: BaseException) -> str:
        self.signals.closing = True
        self.error = f"{type(exc).__name__}: {exc}"
        self.recorder.log_error(exc)
        safely(lambda: self.recorder.log_outputs(self.state, self.parts))  # the last checkpoint
        console.summary("FAILED", self.state, self.solver, self.recorder,
                        f"{type(exc).__name__}: {exc}")
        return self._end("FAILED")

    def _end(self, status: str) -> str:
        safely(lambda: self.recorder.end(status))
        return status


def log_training_failure(exc: BaseException, state: RunState) -> None:
    """Say why training failed: a divergence names the last good checkpoint, anything else
    comes with its traceback."""
    if isinstance(exc, TrainingDivergedError):
        kept = state.last_checkpoint
        log.error("run failed: %s; %s", exc, f"the last good checkpoint is {kept}"
                  if kept is not None else "no epoch finished, so there is no checkpoint")
    else:
        log.error("run failed: %s: %s", type(exc).__name__, exc, exc_info=exc)


def log_start_failure(exc: BaseException) -> None:
    """Say why the job could not start: a user error (:data:`USER_ERRORS`) says what to fix in
    its message, so it comes without a traceback."""
    if isinstance(exc, USER_ERRORS):
        log.error("run failed: %s", exc)
    else:
        log.error("run failed: %s: %s", type(exc).__name__, exc, exc_info=exc)


def selected_objective(name: str, state: RunState) -> float | None:
    """The dev metric ``name`` at the selected epoch: what :func:`capx.run.main.main` returns to
    a sweeper (Optuna); None, with a warning, when there is no such metric."""
    value = state.selected_metrics.get(name)
    if value is None:
        log.warning("objective %s: no such dev metric at the selected epoch (have: %s)",
                    name, ", ".join(sorted(state.selected_metrics)) or "none")
        return None
    return float(value)


def evaluate_at_end(config: TopLevelConfig, parts: Parts, state: RunState,
                    recorder: Recorder) -> None:
    """Score the selected model once on the test split (``test/...``) and record it."""
    metrics, result, test, test_split = score_on_test(config, parts, state)
    console.evaluated(config.decoding["name"], metrics, test_split, state.best_epoch)
    recorder.log_evaluation(metrics, parts.solver.epoch, result, test, test_split,
                            parts.data.train.captions)


def score_on_test(config: TopLevelConfig, parts: Parts, state: RunState
                  ) -> tuple[dict[str, float], Any, Any, str]:
    """The end-of-run metrics of the best dev epoch's parameters, the raw evaluation, the split
    scored, and its name: the split scheme's test set, or ``val`` when it made none."""
    started = time.perf_counter()
    model, solver, data = parts.model, parts.solver, parts.data
    if state.best_params is not None:
        model.params.flat[...] = state.best_params
    test = data.test if data.test is not None else data.val
    metrics, result = final_evaluation(model, parts.tokenizer, test, data.train.captions,
                                       config.evaluation, config.decoding, config.seed,
                                       speller=parts.speller)
    stats = data_statistics(parts.solver_data)
    metrics.update(timing_summary(state.epoch_seconds, solver.iterations_per_epoch,
                                  solver.batch_size,
                                  stats.get(f"{names.DATA}train_tokens_per_caption", 0.0)))
    if state.epoch_seconds:  # over every resume, not only this process's epochs
        metrics[f"{T}train_seconds"] = state.train_seconds
    counts = model.param_counts()
    metrics.update({f"{T}{k}": float(v) for k, v in counts.items()
                    if k == "total" or k.startswith("group/")})
    metrics.update(selection_metrics(state, solver))
    groups = {k[len("group/"):]: v for k, v in counts.items() if k.startswith("group/")}
    metrics[f"{T}flops_per_caption"] = flops_per_caption(
        groups, metrics.get(f"{T}tokens_per_reference", 0.0))
    metrics[f"{T}hidden_dim"] = float(model.hidden_dim)
    if config.evaluation.measure_memory:
        metrics[f"{T}train_step_peak_memory_mb"] = train_step_peak_memory_mb(
            model, parts.solver_data, solver.batch_size)
    metrics[f"{T}evaluation_seconds"] = time.perf_counter() - started
    return metrics, result, test, "test" if data.test is not None else "val"


def selection_metrics(state: RunState, solver: Any) -> dict[str, float]:
    """Which epoch was selected on dev, and whether training stopped early or at the cap."""
    out = {f"{T}selected_epoch": float(state.best_epoch or solver.epoch),
           f"{T}epochs_trained": float(solver.epoch),
           names.TEST_HIT_EPOCH_CAP: float(state.stopped_early_at is None
                                           and solver.epoch >= solver.num_epochs)}
    if state.best_score is not None:
        out[f"{T}dev_score"] = float(state.best_score)
    return out
