"""The run recorder: everything a job writes to MLflow, and the null recorder for no tracking.

:func:`open_recorder` creates the job's run (nested under its sweep's parent run in a multirun),
or reopens the run a resume continues, and returns a :class:`RunRecorder`; with
``tracking.enabled=false`` it returns a :class:`NullRecorder`, which has the same methods and
does nothing, so the job never asks whether it is tracked. The store itself (retries, searches,
the parent run) is :mod:`capx.tracking`; the names are :mod:`capx.names`.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import yaml

from capx import liveness, names, tracking
from capx.callbacks import RunState
from capx.finished import fingerprint
from capx.solver import Callback

if TYPE_CHECKING:
    from capx.build import Parts
    from capx.experiment import JobContext
    from capx.preflight import Store

log = logging.getLogger(__name__)


def safely(call: Callable[[], Any]) -> None:
    """Run a recording call; a failure is logged, never raised (it must not hide the outcome)."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - bookkeeping must not hide the real outcome
        log.warning("could not record to MLflow: %s", exc)


def open_recorder(plain: dict[str, Any], context: "JobContext", source_run: str | None,
                  run_name: str, store: "Store | None" = None) -> "Recorder":
    """Create (or, when resuming a run of this store, reopen) this job's MLflow run, in the
    ``store`` that :func:`capx.preflight.open_store` opened (opened here if not given)."""
    from capx.preflight import open_store

    settings = plain["tracking"]
    store = store or open_store(settings, context.original_cwd)
    if store is None:
        return NullRecorder()
    client, exp_id, uri = store.client, store.experiment_id, store.uri
    if source_run:
        try:
            existing = client.get_run(source_run)
        except Exception:  # noqa: BLE001 - not in this store: start a new run
            existing = None
        if existing is not None:
            tracker = tracking.Tracker(client, source_run, uri)
            tracker.reopen(existing.info.status)
            tracker.set_tags({names.RESUMED: "true", **liveness.process_tags()})
            return RunRecorder(tracker, settings.get("log_model", True))
    tags = {**run_tags(plain, context), **liveness.process_tags()}
    if context.multirun and context.sweep_dir is not None:
        sweep = tracking.Sweep.in_folder(context.sweep_dir)
        tags[names.PARENT_RUN] = tracking.sweep_parent_run(client, exp_id, sweep)
        tags[names.SWEEP_CHILD] = str(sweep.folder)
    tags = {k: str(v) for k, v in tags.items() if v not in (None, "")}
    run = tracking.retry(lambda: client.create_run(exp_id, tags=tags, run_name=run_name),
                         "creating the run")
    tracker = tracking.Tracker(client, run.info.run_id, uri)
    return RunRecorder(tracker, settings.get("log_model", True))


def run_tags(plain: dict[str, Any], context: "JobContext") -> dict[str, Any]:
    """The labels of a job's run: what it trains, on which split, from which commit."""
    split = plain["split"]
    return {
        "tokenizer": plain["tokenizer"]["name"], "cell": plain["cell"]["name"],
        "dataset": plain["dataset"]["name"], "preset": context.choices.get("model", ""),
        names.FINGERPRINT: fingerprint(plain),
        "split": f"kfold{split['folds']}" if split["scheme"] == "kfold" else split["scheme"],
        "fold": split["fold"] if split["scheme"] == "kfold" else "",
        "experiment": context.choices.get("experiment", ""),
        "seed": plain["seed"], "hydra.output_dir": str(context.output_dir),
        names.SOURCE_COMMIT: tracking.git_commit(context.original_cwd),
        names.SOURCE_NAME: "run.py", names.RESUMED_FROM: plain.get("resume"),
    }


class Recorder:
    """What a job records, and when; here every method does nothing (see :class:`NullRecorder`
    and :class:`RunRecorder`)."""

    run_id: str | None = None
    uri: str | None = None
    status_before_reopen: str | None = None  # a reopened run's status, kept if a resume fails

    @property
    def degraded(self) -> str | None:
        """Why recording failed during the run (it went on untracked), or None."""
        return None

    def start_lines(self) -> list[str]:
        """Console lines saying where the run is recorded."""
        return []

    def end_lines(self) -> list[str]:
        return []

    def log_start(self, plain: dict[str, Any], context: "JobContext", parts: "Parts",
                  resumed: bool) -> None:
        """The config (as params, unless resumed, and as YAML), parameter counts, data stats."""

    def epoch_callback(self, state: RunState, plain: dict[str, Any],
                       solver_data: dict[str, Any]) -> Callback:
        """The solver callback that records the training loss and the epoch metrics."""
        return Callback()

    def log_evaluation(self, metrics: dict[str, float], step: int, result: Any, test: Any,
                       test_split: str, train_captions: list[str]) -> None:
        """The end-of-run metrics, the test split's name, decoded captions, per-image scores."""

    def log_outputs(self, state: RunState, parts: "Parts | None") -> None:
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


class RunRecorder(Recorder):
    """Records one job into its MLflow run through a :class:`capx.tracking.Tracker`."""

    def __init__(self, tracker: tracking.Tracker, log_model: bool = True):
        self.tracker, self.run_id, self.uri = tracker, tracker.run_id, tracker.uri
        self.log_model = log_model
        self.status_before_reopen = tracker.status_before_reopen

    @property
    def degraded(self) -> str | None:
        return self.tracker.degraded

    def start_lines(self) -> list[str]:
        return [f"MLflow run {self.run_id} in {self.uri}"]

    def end_lines(self) -> list[str]:
        return [f"MLflow run {self.run_id}; to look: {tracking.ui_command(self.uri)}"]

    def log_start(self, plain, context, parts, resumed):
        from capx.evaluation import data_statistics

        t = self.tracker
        if not resumed:  # a resumed run keeps the params it was started with
            t.log_params(tracking.flatten(plain))
        t.log_text(yaml.safe_dump(plain, sort_keys=False), names.CONFIG_YAML)
        t.log_text("\n".join(context.overrides) + "\n", names.OVERRIDES_TXT)
        hydra_dir = context.output_dir / ".hydra"
        if hydra_dir.is_dir():
            t.log_artifact(hydra_dir, names.HYDRA_CONFIG)
        metrics = {f"{names.PARAMS}{k}": v for k, v in parts.model.param_counts().items()}
        metrics.update({f"{names.DATA}vocab_size": parts.tokenizer.vocab_size,
                        f"{names.DATA}train_captions": len(parts.data.train.captions),
                        f"{names.DATA}truncated_fraction": parts.truncated})
        metrics.update(data_statistics(parts.solver_data))
        t.log_metrics(metrics, step=0)

    def epoch_callback(self, state, plain, solver_data):
        captions = solver_data["train_captions"]
        tokens = float((captions[:, 1:] != 0).sum(axis=1).mean()) if len(captions) else 0.0
        return EpochRecorder(state, self.tracker, plain["tracking"]["log_every"], tokens,
                             plain["solver"]["batch_size"])

    def log_evaluation(self, metrics, step, result, test, test_split, train_captions):
        from capx.evaluation import evaluation_text, per_image_json
        from capx.metrics import vocabulary

        self.tracker.log_metrics(metrics, step=step)
        self.tracker.set_tags({names.TEST_SPLIT: test_split})
        self.tracker.log_text(evaluation_text(result, test, vocabulary(train_captions)),
                              names.EVALUATION_CAPTIONS)
        self.tracker.log_text(per_image_json(result, test), names.PER_IMAGE)

    def log_outputs(self, state, parts):
        for path in (state.last_checkpoint, state.best_checkpoint):
            if path is not None and Path(path).is_file():
                self.tracker.log_artifact(path, names.CHECKPOINTS)
        best = state.best_checkpoint or state.last_checkpoint
        if self.log_model and parts is not None and best is not None and Path(best).is_file():
            safely(lambda: self._model(best, parts.data.val.features))
        solver = parts.solver if parts is not None else None
        if solver is not None and solver.loss_history:
            from capx.plots import loss_curve_figure

            self._figure(loss_curve_figure(solver.loss_history, solver.iterations_per_epoch),
                         names.LOSS_CURVE)
        if parts is not None and parts.images_for is not None and state.samples:
            from capx.plots import sample_grid_figure

            ids = parts.data.val.image_ids[[x.image for x in state.samples]]
            images = parts.images_for(ids)
            self._figure(sample_grid_figure(images, [x.sampled for x in state.samples]),
                         names.SAMPLE_GRID)

    def _model(self, checkpoint: Path, example_features: np.ndarray) -> None:
        """The checkpoint as a pyfunc model in the run's ``model/`` (see capx.mlflow_model)."""
        import tempfile

        from capx.mlflow_model import save_model

        with tempfile.TemporaryDirectory() as folder:
            save_model(checkpoint, example_features, Path(folder) / names.MODEL)
            self.tracker.log_artifact(Path(folder) / names.MODEL)

    def _figure(self, figure: Any, artifact_file: str) -> None:
        self.tracker.log_figure(figure, artifact_file)
        import matplotlib.pyplot as plt

        plt.close(figure)

    def log_objective(self, name, value, epoch):
        self.tracker.log_metrics({names.OBJECTIVE: value}, step=epoch)
        self.tracker.set_tags({names.OBJECTIVE_NAME: name})

    def stopped(self, why):
        self.tracker.set_tags({names.STOPPED_BY: why})

    def log_error(self, exc):
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        safely(lambda: self.tracker.set_tags({names.ERROR: f"{type(exc).__name__}: {exc}"[:5000],
                                              names.ERROR_TYPE: type(exc).__name__}))
        safely(lambda: self.tracker.log_text(text, names.ERROR_TXT))

    def resume_failed(self, exc):
        self.tracker.set_tags({names.RESUME_ERROR: f"{type(exc).__name__}: {exc}"[:5000]})

    def end(self, status):
        self.tracker.end(status)


class EpochRecorder(Callback):
    """Records the training loss every ``log_every`` iterations, and per epoch the epoch's
    metrics (loss, learning rate, timing, validation) and its sample captions."""

    def __init__(self, state: RunState, tracker: Any, log_every: int, tokens_per_caption: float,
                 batch_size: int):
        self.state, self.tracker, self.log_every = state, tracker, log_every
        self.tokens_per_caption, self.batch_size = tokens_per_caption, batch_size
        self.pending: list[Any] = []
        self.heartbeat = liveness.Heartbeat(tracker)

    def on_iteration_end(self, solver: Any, loss: float) -> None:
        if solver.iteration % self.log_every == 0 or solver.iteration == 1:
            self.pending.append(tracking.metric(names.TRAIN_LOSS, loss, solver.iteration))
        if len(self.pending) >= 50:
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
        metrics = {
            names.TRAIN_LOSS_EPOCH: float(np.mean(epoch_losses)),
            names.LEARNING_RATE: float(solver.epoch_learning_rate or 0.0),  # before its decay
            names.EPOCH_SECONDS: seconds,
            names.TRAIN_SECONDS: float(sum(state.epoch_seconds)),
            names.TOKENS_PER_SECOND: (solver.iterations_per_epoch * self.batch_size
                                      * self.tokens_per_caption / seconds if seconds else 0.0),
            names.EPOCH: solver.epoch,
        }
        if state.val_loss is not None:
            metrics[names.VAL_LOSS] = state.val_loss
            metrics[names.VAL_BEST_LOSS] = state.best_val_loss
        if state.best_epoch is not None:
            metrics[names.VAL_BEST_EPOCH] = state.best_epoch
        metrics.update({f"{names.VAL}{k}": v for k, v in state.val_metrics.items()})
        self.tracker.log_metrics(metrics, step=solver.epoch)
        if state.samples:
            self.tracker.log_text("\n".join(x.line() for x in state.samples) + "\n",
                                  names.epoch_samples(solver.epoch))

    def on_train_end(self, solver: Any) -> None:
        self.flush()
