"""SIGINT and SIGTERM for the whole life of a job, so that a stopped run ends KILLED, not RUNNING.

While the solver trains, a signal asks it to stop after the current iteration (the job then
flushes the metrics, saves its checkpoint and ends KILLED); further signals are noted and change
nothing, so however many arrive, every step in the saved checkpoint is in the run's record (a
second Ctrl-C used to stop at once, inside an iteration, and lost the steps not yet flushed; a
process that must die at once takes SIGKILL). In every other phase
(reading the config and the store, preparing the data, building the model, the final
evaluation) a signal raises :class:`Interrupted`, which unwinds like ``KeyboardInterrupt``
(``except Exception`` does not catch it) to the job, which ends its run KILLED. While the job
saves its checkpoint and closes its run (:attr:`Signals.closing`) signals are noted and
ignored, so that the record it leaves is complete. Only the main thread can handle signals;
elsewhere (a job run in a thread) these helpers do nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

log = logging.getLogger(__name__)

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A SIGINT or SIGTERM outside the training loop (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"signal {signal.Signals(signum).name}")


@dataclass
class Signals:
    """What the handler knows of the job: the signal received, the solver while it trains, and
    whether the job is already saving and closing its run."""

    received: int | None = None
    training: Any = None   # the solver, while it trains: stopped after the current iteration
    closing: bool = False  # saving the checkpoint and closing the run: let that finish

    def handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.closing:
            log.warning("%s: already stopping; saving the checkpoint and closing the run first",
                        name)
            return
        if self.training is not None:
            again = self.received is not None
            self.received = self.received or signum
            self.training.stop_training = True
            if again:
                log.warning("%s: already stopping after this iteration; the checkpoint and the "
                            "run's record are completed first (kill -9 %d abandons them)",
                            name, os.getpid())
            else:
                log.warning("%s: stopping after this iteration, then saving the checkpoint",
                            name)
            return
        self.received = signum
        raise Interrupted(signum)

    @property
    def why(self) -> str:
        return "" if self.received is None else f"signal {signal.Signals(self.received).name}"


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def handled_by(signals: Signals) -> Iterator[Signals]:
    """Route SIGINT and SIGTERM to ``signals`` in this block, then restore the old handlers."""
    if not in_main_thread():
        yield signals
        return
    previous = {s: signal.signal(s, signals.handle) for s in HANDLED}
    try:
        yield signals
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
