"""The run recorder: everything a job writes to MLflow, and the null recorder for no tracking.

:func:`open_recorder` creates the job's run (nested under its sweep's parent run in a multirun),
or reopens the run a resume continues, and returns a :class:`RunRecorder`; with
``tracking.enabled=false`` it returns a :class:`NullRecorder`, which has the same methods and
does nothing, so the job never asks whether it is tracked. A resumed run is reopened only by
:meth:`Recorder.begin`, once the job's parts are built (a resume that cannot start leaves it as
it was), and each metric step is logged once: points at steps the run already holds are dropped. The store itself is
:mod:`capx.tracking` (the writer :mod:`~capx.tracking.tracker`, retries, searches, the sweep's parent
run); the names are :mod:`capx.tracking.names`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from capx.metrics import vocabulary
from capx.run.build import Parts
from capx.run import job_clock
from capx.run.callbacks import RunState
from capx.run.config import as_dict
from capx.run.context import JobContext
from capx.run.schemas import TopLevelConfig
from capx.run.scoring import data_statistics, evaluation_text, per_image_json
from capx.solver import Callback
from capx.tracking import liveness, names, records
from capx.tracking.finished import fingerprint
from capx.tracking.locations import ui_command
from capx.tracking.preflight import Store, open_store
from capx.tracking.retries import retry
from capx.tracking.sweep_parent import Sweep, sweep_parent_run
from capx.tracking.tracker import Tracker, flatten, metric

log = logging.getLogger(__name__)


def safely(call: Callable[[], Any]) -> None:
    """Run a recording call; a failure is logged, never raised (it must not hide the outcome)."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - bookkeeping must not hide the real outcome
        log.warning("could not record to MLflow: %s", exc)


def open_recorder(config: TopLevelConfig, context: JobContext, source_run: str | None,
                  run_name: str, store: Store | None = None) -> "Recorder":
    """Create (or, when resuming a run of this store, reopen) this job's MLflow run, in the
    ``store`` that :func:`capx.tracking.preflight.open_store` opened (opened here if not given)."""
    settings = config.tracking
    store = store or open_store(asdict(settings), context.original_cwd)
    if store is None:
        return NullRecorder()
    client, exp_id, uri = store.client, store.experiment_id, store.uri
    if source_run:
        try:
            existing = client.get_run(source_run)
        except Exception:  # noqa: BLE001 - not in this store: start a new run
            existing = None
        if existing is not None:
            tracker = Tracker(client, source_run, uri)
            return RunRecorder(tracker, settings.log_model, resumes=existing)
    tags = {**run_tags(config, context), **liveness.process_tags()}
    if context.multirun and context.sweep_dir is not None:
        sweep = Sweep.in_folder(context.sweep_dir)
        tags[names.PARENT_RUN] = sweep_parent_run(client, exp_id, sweep)
        tags[names.SWEEP_CHILD] = str(sweep.folder)
    tags = {k: str(v) for k, v in tags.items() if v not in (None, "")}
    run = retry(lambda: client.create_run(exp_id, tags=tags, run_name=run_name),
                         "creating the run")
    tracker = Tracker(client, run.info.run_id, uri)
    return RunRecorder(tracker, settings.log_model)


def run_tags(config: TopLevelConfig, context: JobContext) -> dict[str, Any]:
    """The labels of a job's run: what it trains, on which split, from which commit."""
    split = config.split
    return {
        "tokenizer": config.tokenizer["name"], "cell": config.cell["name"],
        "dataset": config.dataset["name"], "preset": context.choices.get("model", ""),
        names.FINGERPRINT: fingerprint(as_dict(config)),
        "split": f"kfold{split.folds}" if split.scheme == "kfold" else split.scheme,
        "fold": split.fold if split.scheme == "kfold" else "",
        "experiment": context.choices.get("experiment", ""),
        "seed": config.seed, "hydra.output_dir": str(context.output_dir),
        **records.source_tags(context.original_cwd),
        names.SOURCE_NAME: "run.py", names.RESUMED_FROM: config.resume,
    }


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


class RunRecorder(Recorder):
    """Records one job into its MLflow run through a :class:`capx.tracking.tracker.Tracker`."""

    def __init__(self, tracker: Tracker, log_model: bool = True, resumes: Any = None):
        """``resumes``: the MLflow run (as read before) that this job continues, or None."""
        self.tracker, self.run_id, self.uri = tracker, tracker.run_id, tracker.uri
        self.log_model, self.resumes = log_model, resumes
        self.status_before_reopen = None if resumes is None else resumes.info.status
        self.reopen_pending = resumes is not None
        self.logged: dict[str, int] = {}  # key -> the last step the run already holds
        self.uploaded: dict[Path, int] = {}  # checkpoint -> its mtime when uploaded
        self.epochs: EpochRecorder | None = None  # its epoch callback, once made

    def begin(self):
        if not self.reopen_pending:
            return
        # this process's tags first, so that no one takes the reopened run for a dead one
        self.tracker.set_tags({names.RESUMED: "true", **liveness.process_tags()})
        self.tracker.reopen(self.status_before_reopen)
        self.reopen_pending = False
        self.logged.update(last_steps(self.tracker, self.resumes.data.metrics))  # shared

    def checkpoint_saved(self, path):
        if Path(path).name == Path(names.LAST_CHECKPOINT).name:  # what resume= looks for
            self.tracker.set_tags({names.LOCAL_CHECKPOINT: str(Path(path).resolve()),
                                   names.CHECKPOINT_ITERATION: saved_iteration(path)})
        skipped = getattr(self.tracker, "skipped", 0)  # writes a degraded tracker dropped
        try:
            self.tracker.log_artifact(path, names.CHECKPOINTS)
        except Exception as exc:  # noqa: BLE001 - training goes on with the local copy
            log.warning("could not upload %s to MLflow run %s (%s); training goes on, the "
                        "checkpoint is on disk", path, self.run_id, exc)
            return
        if getattr(self.tracker, "skipped", 0) == skipped:  # uploaded: not again at the end
            self.uploaded[Path(path)] = Path(path).stat().st_mtime_ns

    @property
    def degraded(self) -> str | None:
        return self.tracker.degraded

    def start_lines(self) -> list[str]:
        return [f"MLflow run {self.run_id} in {self.uri}"]

    def end_lines(self) -> list[str]:
        return [f"MLflow run {self.run_id}; to look: {ui_command(self.uri)}"]

    def log_start(self, config, context, parts, resumed):
        t = self.tracker
        self.monitor = records.system_metrics_monitor(
            config.tracking.system_metrics, self.run_id, self.uri,
            resumed=self.resumes is not None)
        record = as_dict(config)  # the config as data: params, YAML, the dataset's source
        if self.resumes is not None:  # a continued run keeps its params and step-0 metrics
            self._record_resume(record, context)
            return
        t.log_params(flatten(record))
        t.log_text(yaml.safe_dump(record, sort_keys=False), names.CONFIG_YAML)
        t.log_text("\n".join(context.overrides) + "\n", names.OVERRIDES_TXT)
        hydra_dir = context.output_dir / ".hydra"
        if hydra_dir.is_dir():
            t.log_artifacts(hydra_dir, names.HYDRA_CONFIG)
        t.log_inputs(records.dataset_inputs(record, parts.data))
        metrics = {f"{names.PARAMS}{k}": v for k, v in parts.model.param_counts().items()}
        metrics.update({f"{names.DATA}vocab_size": parts.tokenizer.vocab_size,
                        f"{names.DATA}train_captions": len(parts.data.train.captions),
                        f"{names.DATA}truncated_fraction": parts.truncated})
        metrics.update(data_statistics(parts.solver_data))
        t.log_metrics(metrics, step=0)

    def _record_resume(self, record: dict[str, Any], context: JobContext) -> None:
        """What this resume changed, since params cannot: a ``capx.resumed.<key>`` tag with
        the value now of each setting that differs from the run's params, the count of resumes,
        and ``resumes/<n>/`` with the overrides given and the config trained with."""
        tags, params = self.resumes.data.tags, self.resumes.data.params
        number = int(tags.get(names.RESUMES, 0)) + 1
        now = {k: _as_param(v) for k, v in flatten(record).items() if k != "resume"}
        changed = {k: v for k, v in now.items()
                   if (k in params and params[k] != v) or names.RESUMED_SETTING + k in tags}
        self.tracker.set_tags({names.RESUMES: number,
                               **{names.RESUMED_SETTING + k: v for k, v in changed.items()}})
        folder = names.resume_folder(number)
        lines = [*context.overrides, "", "# settings that differ from the run's params:",
                 *(f"{k}: {params.get(k)} -> {v}" for k, v in changed.items()
                   if params.get(k) != v)]
        self.tracker.log_text("\n".join(lines) + "\n", f"{folder}/overrides.txt")
        self.tracker.log_text(yaml.safe_dump(record, sort_keys=False), f"{folder}/config.yaml")

    def epoch_callback(self, state, config, solver_data):
        captions = solver_data["train_captions"]
        tokens = float((captions[:, 1:] != 0).sum(axis=1).mean()) if len(captions) else 0.0
        self.epochs = EpochRecorder(state, self.tracker, config.tracking.log_every, tokens,
                                    config.solver.batch_size, logged=self.logged,
                                    val_ids=solver_data.get("val_image_ids"))
        return self.epochs

    def log_evaluation(self, metrics, step, result, test, test_split, train_captions):
        metrics = unlogged(metrics, step, self.logged)
        if metrics:
            self.tracker.log_metrics(metrics, step=step)
        self.tracker.set_tags({names.TEST_SPLIT: test_split})
        self.tracker.log_text(evaluation_text(result, test, vocabulary(train_captions)),
                              names.EVALUATION_CAPTIONS)
        self.tracker.log_text(per_image_json(result, test), names.PER_IMAGE)
        self.tracker.log_table(records.evaluation_table(result, test),
                               names.EVALUATION_TABLE)

    def log_outputs(self, state, parts):
        if self.epochs is not None:
            safely(self.epochs.log_samples_table)
        for path in (state.last_checkpoint, state.best_checkpoint):
            if path is not None and Path(path).is_file() and (
                    self.uploaded.get(Path(path)) != Path(path).stat().st_mtime_ns):
                self.checkpoint_saved(path)
        best = state.best_checkpoint or state.last_checkpoint
        if self.log_model and parts is not None and best is not None and Path(best).is_file():
            step = getattr(parts.solver, "epoch", 0) or 0  # where the test metrics are
            safely(lambda: self._model(best, parts.data.val.features, step))
        solver = parts.solver if parts is not None else None
        if solver is not None and solver.loss_history:
            from capx.run.plots import loss_curve_figure  # deferred: matplotlib, for a figure

            self._figure(loss_curve_figure(solver.loss_history, solver.iterations_per_epoch),
                         names.LOSS_CURVE)
        if parts is not None and parts.images_for is not None and state.samples:
            from capx.run.plots import sample_grid_figure  # deferred: matplotlib, for a figure

            ids = parts.data.val.image_ids[[x.image for x in state.samples]]
            images = parts.images_for(ids)
            self._figure(sample_grid_figure(images, [x.sampled for x in state.samples]),
                         names.SAMPLE_GRID)

    def _model(self, checkpoint: Path, example_features: np.ndarray, step: int) -> None:
        """The checkpoint as the run's logged model ``model`` (see capx.tracking.logged_model)."""
        from capx.tracking.logged_model import log_model  # deferred: mlflow.pyfunc is heavy

        log_model(self.run_id, self.uri, checkpoint, example_features, step)

    def _figure(self, figure: Any, artifact_file: str) -> None:
        self.tracker.log_figure(figure, artifact_file)
        import matplotlib.pyplot as plt

        plt.close(figure)

    def log_objective(self, name, value, epoch):
        metrics = unlogged({names.OBJECTIVE: value}, epoch, self.logged)
        if metrics:
            self.tracker.log_metrics(metrics, step=epoch)
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
        monitor, self.monitor = getattr(self, "monitor", None), None
        if monitor is not None:
            safely(monitor.finish)
        safely(self._log_job_wall_seconds)
        self.tracker.end(status)

    def _log_job_wall_seconds(self) -> None:
        """This job's wall time from its process's start (:mod:`capx.run.job_clock`); a resumed
        run adds this process's time to what the run held, one step per process."""
        key = names.JOB_WALL_SECONDS
        before = self.resumes.data.metrics.get(key, 0.0) if self.resumes is not None else 0.0
        self.tracker.log_metrics({key: before + job_clock.job_wall_seconds()},
                                 step=self.logged.get(key, -1) + 1)


def saved_iteration(path: Path) -> int | None:
    """The iteration a checkpoint file holds (read from its header alone), or None."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return int(json.loads(str(arrays["header_json"]))["iteration"])
    except (OSError, KeyError, ValueError) as exc:
        log.debug("could not read the iteration of %s: %s", path, exc)
        return None


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


def _as_param(value: Any) -> str:
    """A config value as MLflow's params hold it (see :meth:`capx.tracking.tracker.Tracker.log_params`)."""
    text = "null" if value is None else str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


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
