"""The recorder of a tracked job: everything it writes into its MLflow run, through a
:class:`capx.tracking.tracker.Tracker`. The per-epoch callback is :mod:`capx.run.epoch_recorder`;
what the run gets at the end is :mod:`capx.run.run_outputs`; :func:`capx.run.recorder.open_recorder`
makes one (or a null recorder when tracking is off).
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from capx.run.config import as_dict
from capx.run.epoch_recorder import EpochRecorder, last_steps, unlogged
from capx.run.null_recorder import Recorder, safely
from capx.run.run_outputs import (checkpoints_to_upload, log_evaluation, log_figures,
                                  log_job_wall_seconds, log_logged_model)
from capx.run.scoring import data_statistics
from capx.tracking import liveness, names, records
from capx.tracking.locations import ui_command
from capx.tracking.tracker import Tracker, flatten

log = logging.getLogger(__name__)


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
            record_resume(self.tracker, self.resumes, record, context.overrides)
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

    def epoch_callback(self, state, config, solver_data):
        captions = solver_data["train_captions"]
        tokens = float((captions[:, 1:] != 0).sum(axis=1).mean()) if len(captions) else 0.0
        self.epochs = EpochRecorder(state, self.tracker, config.tracking.log_every, tokens,
                                    config.solver.batch_size, logged=self.logged,
                                    val_ids=solver_data.get("val_image_ids"))
        return self.epochs

    def log_evaluation(self, metrics, step, result, test, test_split, train_captions):
        log_evaluation(self.tracker, self.logged, metrics, step, result, test, test_split,
                       train_captions)

    def log_outputs(self, state, parts):
        if self.epochs is not None:
            safely(self.epochs.log_samples_table)
        for path in checkpoints_to_upload(state, self.uploaded):
            self.checkpoint_saved(path)
        best = state.best_checkpoint or state.last_checkpoint
        if self.log_model and parts is not None and best is not None and Path(best).is_file():
            step = getattr(parts.solver, "epoch", 0) or 0  # where the test metrics are
            safely(lambda: log_logged_model(self.run_id, self.uri, best,
                                            parts.data.val.features, step))
        log_figures(self.tracker, state, parts)

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
        safely(lambda: log_job_wall_seconds(self.tracker, self.resumes, self.logged))
        self.tracker.end(status)


def record_resume(tracker: Tracker, resumes: Any, record: dict[str, Any],
                  overrides: list[str]) -> None:
    """What resuming the MLflow run ``resumes`` changed, since params cannot: a
    ``capx.resumed.<key>`` tag with the value now of each setting that differs from the run's
    params, the count of resumes, and ``resumes/<n>/`` with the overrides given and the config
    trained with."""
    tags, params = resumes.data.tags, resumes.data.params
    number = int(tags.get(names.RESUMES, 0)) + 1
    now = {k: _as_param(v) for k, v in flatten(record).items() if k != "resume"}
    changed = {k: v for k, v in now.items()
               if (k in params and params[k] != v) or names.RESUMED_SETTING + k in tags}
    tracker.set_tags({names.RESUMES: number,
                      **{names.RESUMED_SETTING + k: v for k, v in changed.items()}})
    folder = names.resume_folder(number)
    lines = [*overrides, "", "# settings that differ from the run's params:",
             *(f"{k}: {params.get(k)} -> {v}" for k, v in changed.items()
               if params.get(k) != v)]
    tracker.log_text("\n".join(lines) + "\n", f"{folder}/overrides.txt")
    tracker.log_text(yaml.safe_dump(record, sort_keys=False), f"{folder}/config.yaml")


def saved_iteration(path: Path) -> int | None:
    """The iteration a checkpoint file holds (read from its header alone), or None."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return int(json.loads(str(arrays["header_json"]))["iteration"])
    except (OSError, KeyError, ValueError) as exc:
        log.debug("could not read the iteration of %s: %s", path, exc)
        return None


def _as_param(value: Any) -> str:
    """A config value as MLflow's params hold it (see
    :meth:`capx.tracking.tracker.Tracker.log_params`)."""
    text = "null" if value is None else str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."
