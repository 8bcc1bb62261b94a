"""One experiment job: config -> (skip if done) -> store -> parts -> run -> :class:`capx.run.training.Job`.

:func:`main` is what ``run.py`` calls under Hydra; :func:`run` does the work and returns the run's
status (``FINISHED``, ``FAILED`` or ``KILLED``; ``SKIPPED`` for a sweep job already done). In a
sweep whose jobs run one by one in this process (Hydra's basic launcher), a job stopped by Ctrl-C
or SIGTERM stops the sweep, as Ctrl-C stops any Hydra sweep: the jobs after it are not started,
and the sweep ends KILLED (run it again to go on; finished jobs are skipped). Every
check that can fail on the user's input comes before the MLflow run is created: the config
(:mod:`capx.run.config`), the checkpoint to resume, the tracking store (:mod:`capx.tracking.preflight`), and
the data, tokenizer and model (:func:`capx.run.build.prepare`); those errors raise, and :func:`main`
prints them without a traceback. Once the run exists, failures end it FAILED instead of raising,
so one failed job of a sweep does not stop the others. The parts are trained and finished in
:mod:`capx.run.training`, recorded by :mod:`capx.run.recorder` and printed by :mod:`capx.run.console`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import asdict, dataclass

from omegaconf import DictConfig, OmegaConf

from capx.run import interrupts, job_clock
from capx.run.build import PluginOptionError, prepare
from capx.run.callbacks import RunState
from capx.run.config import ConfigError, as_dict, validate
from capx.run.sizes import check_sizes
from capx.run.context import JobContext
from capx.run.outcomes import write_outcome
from capx.run.recorder import open_recorder
from capx.run.resume import config_for_resume, resolve_resume
from capx.run.resume_lock import ResumeInProgressError, lock_folder, resume_lock
from capx.run.run_name import run_name
from capx.run.schemas import TrackingConfig
from capx.run.training import USER_ERRORS, Job
from capx.tracking.finished import already_finished
from capx.tracking.locations import tracking_uri
from capx.tracking.preflight import open_store

log = logging.getLogger(__name__)

EXIT_CODES = {"FINISHED": 0, "SKIPPED": 0, "FAILED": 1, "INVALID": 2, "KILLED": 130}

#: the job of this process's sweep that a signal stopped (its overrides), if one did
_sweep_stopped_at: list[str] | None = None


def main(cfg: DictConfig) -> int | float:
    """``run.py``'s body: run the job; config errors print without a traceback. Returns an exit
    code for a single run (0 finished, 1 failed, 2 invalid config, 130 interrupted). In a sweep
    it never raises, so the other jobs go on: it writes the job's outcome into its folder (for
    the sweep's end, :mod:`capx.run.outcomes`) and returns its objective (NaN unless it finished:
    Optuna counts that trial failed)."""
    global _sweep_stopped_at
    context = JobContext.current()
    try:
        if context.in_process_sweep and _sweep_stopped_at is not None:
            outcome = not_started(_sweep_stopped_at)
        else:
            with interrupts.handled_by(interrupts.Signals()):  # the job installs its own
                outcome = run_job(cfg, context)
    except (ConfigError, PluginOptionError, ResumeInProgressError, *USER_ERRORS) as exc:
        print(f"error: {exc}", file=sys.stderr)
        outcome = Outcome("INVALID", error=f"{type(exc).__name__}: {exc}")
    except interrupts.Interrupted as exc:
        print(f"interrupted ({exc}) before the run started: nothing was trained",
              file=sys.stderr)
        outcome = Outcome("KILLED", error=f"interrupted ({exc}) before the run started")
    except Exception as exc:  # noqa: BLE001 - in a sweep, one job's bug must not stop the others
        if not context.multirun:
            raise
        log.exception("job failed before its run started")
        outcome = Outcome("FAILED", error=f"{type(exc).__name__}: {exc}")
    job_clock.job_ended()  # a sweep's next job counts its wall time from here
    if context.in_process_sweep and outcome.status == "KILLED" and _sweep_stopped_at is None:
        _sweep_stopped_at = list(context.overrides)
        log.warning("the sweep stops here: the jobs after this one are not started (run the "
                    "same command again to go on; finished jobs are skipped)")
    if context.multirun:
        write_outcome(context.output_dir, {**asdict(outcome), "overrides": context.overrides})
        return outcome.objective
    return EXIT_CODES.get(outcome.status, 1)


def not_started(stopped_at: list[str]) -> "Outcome":
    """The outcome of a sweep job after the one a signal stopped: KILLED, nothing made."""
    return Outcome("KILLED", error=f"not started: a signal stopped the sweep at the job "
                   f"{' '.join(stopped_at)}; run the sweep again to go on (finished jobs are "
                   "skipped)")


@dataclass(frozen=True)
class Outcome:
    """How a job ended: its run's status and id, why it did not finish, and its objective
    (NaN unless FINISHED)."""

    status: str
    objective: float = float("nan")
    run_id: str | None = None
    error: str | None = None


def run(cfg: DictConfig | dict, context: JobContext | None = None) -> str:
    """Validate ``cfg``, train, track; returns the MLflow status of the run."""
    return run_job(cfg, context).status


def run_job(cfg: DictConfig | dict, context: JobContext | None = None) -> Outcome:
    """:func:`run`, returning the :class:`Outcome` (a sweeper needs the objective)."""
    context = context or JobContext.current()
    config = validate(cfg)
    checkpoint = source_run = None
    if config.resume:
        checkpoint, source_run = resolve_resume(config, context.original_cwd, context.output_dir)
        config = config_for_resume(config, checkpoint, context.overrides)
    check_sizes(config)  # before anything is read or built
    if checkpoint is None and context.multirun and config.tracking.skip_finished:
        done = already_finished(as_dict(config), context.original_cwd)
        if done:
            log.info("skipping %s: run %s already FINISHED with this configuration",
                     run_name(config, context), done)
            return Outcome("SKIPPED")
    with _one_resume_at_a_time(config.tracking, context, source_run):
        store = open_store(asdict(config.tracking), context.original_cwd)
        state = RunState()
        parts = prepare(config, checkpoint, state)
        context.output_dir.mkdir(parents=True, exist_ok=True)
        recorder = open_recorder(config, context, source_run, run_name(config, context), store)
        job = Job(config, context, recorder, checkpoint, parts, state)
        status = job.execute()
        return Outcome(status, job.objective, recorder.run_id, job.error)


def _one_resume_at_a_time(tracking: TrackingConfig, context: JobContext,
                          source_run: str | None) -> contextlib.AbstractContextManager:
    """The lock on resuming ``source_run`` (see :mod:`capx.run.resume_lock`), taken before any
    work; none to take when nothing is resumed into a tracked run."""
    if not source_run or not tracking.enabled:
        return contextlib.nullcontext()
    uri = tracking_uri(tracking.uri, context.original_cwd)
    return resume_lock(source_run, lock_folder(uri, context.original_cwd))


__all__ = ["run", "main", "JobContext", "EXIT_CODES", "ConfigError", "OmegaConf"]
