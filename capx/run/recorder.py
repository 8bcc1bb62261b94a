"""The run recorder: everything a job writes to MLflow, and the null recorder for no tracking.

:func:`open_recorder` creates the job's run (nested under its sweep's parent run in a multirun),
or reopens the run a resume continues, and returns a :class:`RunRecorder`; with
``tracking.enabled=false`` it returns a :class:`NullRecorder`, which has the same methods and
does nothing, so the job never asks whether it is tracked. A resumed run is reopened only by
:meth:`Recorder.begin`, once the job's parts are built (a resume that cannot start leaves it as
it was), and each metric step is logged once: points at steps the run already holds are
dropped. The recorder's parts:
:mod:`capx.run.null_recorder` (the interface, and the recorder that does nothing),
:mod:`capx.run.run_recorder` (the MLflow one), :mod:`capx.run.epoch_recorder` (its per-epoch
callback), :mod:`capx.run.run_outputs` (what a run gets at the end). The store itself is
:mod:`capx.tracking` (the writer :mod:`~capx.tracking.tracker`, retries, searches, the sweep's parent
run); the names are :mod:`capx.tracking.names`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from capx.run.config import as_dict
from capx.run.context import JobContext
from capx.run.epoch_recorder import EpochRecorder
from capx.run.null_recorder import NullRecorder, Recorder, safely
from capx.run.run_recorder import RunRecorder
from capx.run.schemas import TopLevelConfig
from capx.tracking import liveness, names, records
from capx.tracking.finished import fingerprint
from capx.tracking.preflight import Store, open_store
from capx.tracking.retries import retry
from capx.tracking.sweep_parent import Sweep, sweep_parent_run
from capx.tracking.tracker import Tracker

__all__ = ["open_recorder", "run_tags", "Recorder", "NullRecorder", "RunRecorder",
           "EpochRecorder", "safely"]


def open_recorder(config: TopLevelConfig, context: JobContext, source_run: str | None,
                  run_name: str, store: Store | None = None) -> Recorder:
    """Create (or, when resuming a run of this store, reopen) this job's MLflow run, in the
    ``store`` that :func:`capx.tracking.preflight.open_store` opened (opened here if not given)."""
    settings = config.tracking
    store = store or open_store(asdict(settings), context.original_cwd)
    if store is None:
        return NullRecorder()
    client, exp_id, uri = store.client, store.experiment_id, store.uri
    if source_run:
        try:  # a busy store is waited out: a resume must not split into a new run
            existing = retry(lambda: client.get_run(source_run), f"reading run {source_run}")
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
