"""The solver callback that records a job's training as it goes: the training loss every few
iterations, each epoch's metrics and sample captions, and a heartbeat. Steps a resumed run already
holds are not logged again (:func:`unlogged`, :func:`last_steps`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from capx.run.callbacks import RunState
from capx.solver import Callback
from capx.tracking import liveness, names, records
from capx.tracking.retries import retry
from capx.tracking.tracker import metric


def last_steps(tracker: Any, keys: Any) -> dict[str, int]:
    """The last step the run of ``tracker`` holds of each metric in ``keys``."""
    def last(key: str) -> int:
        history = retry(lambda: tracker.client.get_metric_history(tracker.run_id, key),
                        f"reading {key}")
        return max((m.step for m in history), default=-1)

    return {key: last(key) for key in keys}


def unlogged(metrics: dict[str, float], step: int, logged: dict[str, int]) -> dict[str, float]:
    """The ``metrics`` at ``step`` that the run does not hold yet (``logged``: the last step
    it holds of each key; a resume replays steps after its checkpoint that were flushed)."""
    return {k: v for k, v in metrics.items() if step > logged.get(k, -1)}


class EpochRecorder(Callback):
    """Records the training loss every ``log_every`` iterations, and per epoch the epoch's
    metrics (loss, learning rate, timing, validation) and its sample captions. Steps that the
    run already holds (``logged``: the last step of each key) are not logged again."""

    FLUSH_EVERY = 50  # training-loss points sent to the store at once

    def __init__(self, state: RunState, tracker: Any, log_every: int, tokens_per_caption: float,
                 batch_size: int, logged: dict[str, int] | None = None, val_ids: Any = None):
        self.state, self.tracker, self.log_every = state, tracker, log_every
        self.val_ids = val_ids  # the dataset's ids of the val images, for the samples table
        self.tokens_per_caption, self.batch_size = tokens_per_caption, batch_size
        self.logged = {} if logged is None else logged  # filled when a resumed run reopens
        self.pending: list[Any] = []
        self.sample_rows: dict[str, list[Any]] = {}  # every epoch's samples, for one table
        self.heartbeat = liveness.Heartbeat(tracker)

    def on_iteration_end(self, solver: Any, loss: float) -> None:
        if ((solver.iteration % self.log_every == 0 or solver.iteration == 1)
                and solver.iteration > self.logged.get(names.TRAIN_LOSS, -1)):
            self.pending.append(metric(names.TRAIN_LOSS, loss, solver.iteration))
        if len(self.pending) >= self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.tracker.log_metric_batch(self.pending)
            self.pending = []
        self.heartbeat.beat()

    def on_epoch_end(self, solver: Any) -> None:
        self.flush()
        state = self.state
        seconds = state.epoch_seconds[-1] if state.epoch_seconds else 0.0
        epoch_losses = solver.loss_history[-solver.iterations_per_epoch:]
        # the iterations this process trained of the epoch (fewer in a resumed one)
        done = getattr(solver, "epoch_iterations", None) or [solver.iterations_per_epoch]
        metrics = {
            names.TRAIN_LOSS_EPOCH: float(np.mean(epoch_losses)),
            names.LEARNING_RATE: float(solver.epoch_learning_rate or 0.0),  # before its decay
            names.EPOCH_SECONDS: seconds,
            names.TRAIN_SECONDS: state.train_seconds,
            names.TOKENS_PER_SECOND: (done[-1] * self.batch_size
                                      * self.tokens_per_caption / seconds if seconds else 0.0),
            names.EPOCH: solver.epoch,
        }
        if state.val_loss is not None:
            metrics[names.VAL_LOSS] = state.val_loss
            metrics[names.VAL_BEST_LOSS] = state.best_val_loss
        if state.best_epoch is not None:
            metrics[names.VAL_BEST_EPOCH] = state.best_epoch
        metrics.update({f"{names.VAL}{k}": v for k, v in state.val_metrics.items()})
        metrics = unlogged(metrics, solver.epoch, self.logged)
        if metrics:
            self.tracker.log_metrics(metrics, step=solver.epoch)
        if state.samples:
            self.tracker.log_text("\n".join(x.line() for x in state.samples) + "\n",
                                  names.epoch_samples(solver.epoch))
            rows = records.samples_table(state.samples, self.val_ids, solver.epoch)
            for column, values in rows.items():
                self.sample_rows.setdefault(column, []).extend(values)

    def log_samples_table(self) -> None:
        """Every epoch's samples of this process as one table (a table per epoch cost about a
        tenth of a second each); called when the job ends, however it ends."""
        epochs = self.sample_rows.get("epoch")
        if epochs:
            self.tracker.log_table(self.sample_rows, names.samples_table(epochs[0], epochs[-1]))
            self.sample_rows = {}

    def on_train_end(self, solver: Any) -> None:
        self.flush()
