"""What a job records, and when: the :class:`Recorder` interface, whose methods do nothing, and
:class:`NullRecorder`, the recorder of a job with tracking off (the job never asks whether it is
tracked). :class:`capx.run.run_recorder.RunRecorder` records into an MLflow run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from capx.run.build import Parts
from capx.run.callbacks import RunState
from capx.run.context import JobContext
from capx.run.schemas import TopLevelConfig
from capx.solver import Callback

log = logging.getLogger(__name__)


def safely(call: Callable[[], Any]) -> None:
    """Run a recording call; a failure is logged, never raised (it must not hide the outcome)."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - bookkeeping must not hide the real outcome
        log.warning("could not record to MLflow: %s", exc)


class Recorder:
    """What a job records, and when; here every method does nothing (see :class:`NullRecorder`
    and :class:`RunRecorder`)."""

    run_id: str | None = None
    uri: str | None = None
    status_before_reopen: str | None = None  # the status of the run a resume continues
    reopen_pending: bool = False  # that run is not reopened yet (see :meth:`begin`)

    def begin(self) -> None:
        """The job's parts are built: reopen the run a resume continues (marked RUNNING)."""

    def checkpoint_saved(self, path: Path) -> None:
        """A checkpoint was written: upload it (a failure is a warning; training goes on)."""

    @property
    def degraded(self) -> str | None:
        """Why recording failed during the run (it went on untracked), or None."""
        return None

    def start_lines(self) -> list[str]:
        """Console lines saying where the run is recorded."""
        return []

    def end_lines(self) -> list[str]:
        return []

    def log_start(self, config: TopLevelConfig, context: JobContext, parts: Parts,
                  resumed: bool) -> None:
        """The config (as params and YAML), parameter counts, data stats; a run a resume
        continues gets instead what the resume changed (its params stay)."""

    def epoch_callback(self, state: RunState, config: TopLevelConfig,
                       solver_data: dict[str, Any]) -> Callback:
        """The solver callback that records the training loss and the epoch metrics."""
        return Callback()

    def log_evaluation(self, metrics: dict[str, float], step: int, result: Any, test: Any,
                       test_split: str, train_captions: list[str]) -> None:
        """The end-of-run metrics, the test split's name, decoded captions, per-image scores."""

    def log_outputs(self, state: RunState, parts: Parts | None) -> None:
        """Checkpoints, the loss curve, and sample captions beside their pictures."""

    def log_objective(self, name: str, value: float, epoch: int) -> None:
        """The sweep objective (metric ``name`` at the selected ``epoch``)."""

    def stopped(self, why: str) -> None:
        """Training was interrupted (``why``: the signal)."""

    def log_error(self, exc: BaseException) -> None:
        """The run failed: the error as tags and its traceback as a text artifact."""

    def resume_failed(self, exc: BaseException) -> None:
        """A resume could not start: the reason as a tag (the run keeps its status)."""

    def end(self, status: str) -> None:
        """Close the run with ``status``."""


class NullRecorder(Recorder):
    """Records nothing and raises nothing: the recorder of a job with tracking off."""
