"""What a job leaves in its MLflow run at the end, however it ends: the end-of-run evaluation
(metrics, the split scored, decoded captions, per-image scores), the checkpoints not uploaded yet,
the logged model, the job's wall time, and the figures (the loss curve, sample captions beside their pictures).
:class:`capx.run.run_recorder.RunRecorder` calls these with its tracker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from capx.metrics import vocabulary
from capx.run import job_clock
from capx.run.build import Parts
from capx.run.callbacks import RunState
from capx.run.epoch_recorder import unlogged
from capx.run.scoring import evaluation_text, per_image_json
from capx.tracking import names, records


def log_evaluation(tracker: Any, logged: dict[str, int], metrics: dict[str, float], step: int,
                   result: Any, test: Any, test_split: str, train_captions: list[str]) -> None:
    """The end-of-run metrics at ``step`` (those the run does not hold yet), the test split's
    name, the decoded captions and the per-image scores."""
    metrics = unlogged(metrics, step, logged)
    if metrics:
        tracker.log_metrics(metrics, step=step)
    tracker.set_tags({names.TEST_SPLIT: test_split})
    tracker.log_text(evaluation_text(result, test, vocabulary(train_captions)),
                     names.EVALUATION_CAPTIONS)
    tracker.log_text(per_image_json(result, test), names.PER_IMAGE)
    tracker.log_table(records.evaluation_table(result, test), names.EVALUATION_TABLE)


def checkpoints_to_upload(state: RunState, uploaded: dict[Path, int]) -> list[Path]:
    """The last and best checkpoints on disk that were not uploaded as they are now
    (``uploaded``: each uploaded file's modification time then)."""
    return [Path(path) for path in (state.last_checkpoint, state.best_checkpoint)
            if path is not None and Path(path).is_file()
            and uploaded.get(Path(path)) != Path(path).stat().st_mtime_ns]


def log_logged_model(run_id: str, uri: str, checkpoint: Path, example_features: np.ndarray,
                     step: int) -> None:
    """The checkpoint as the run's logged model ``model`` (see capx.tracking.logged_model)."""
    from capx.tracking.logged_model import log_model  # deferred: mlflow.pyfunc is heavy

    log_model(run_id, uri, checkpoint, example_features, step)


def log_figures(tracker: Any, state: RunState, parts: Parts | None) -> None:
    """The loss curve, and the last epoch's sample captions beside their pictures (when the
    dataset plugin draws them)."""
    solver = parts.solver if parts is not None else None
    if solver is not None and solver.loss_history:
        from capx.run.plots import loss_curve_figure  # deferred: matplotlib, for a figure

        _figure(tracker, loss_curve_figure(solver.loss_history, solver.iterations_per_epoch),
                names.LOSS_CURVE)
    if parts is not None and parts.images_for is not None and state.samples:
        from capx.run.plots import sample_grid_figure  # deferred: matplotlib, for a figure

        ids = parts.data.val.image_ids[[x.image for x in state.samples]]
        images = parts.images_for(ids)
        _figure(tracker, sample_grid_figure(images, [x.sampled for x in state.samples]),
                names.SAMPLE_GRID)


def _figure(tracker: Any, figure: Any, artifact_file: str) -> None:
    tracker.log_figure(figure, artifact_file)
    import matplotlib.pyplot as plt  # deferred: matplotlib, for a figure

    plt.close(figure)


def log_job_wall_seconds(tracker: Any, resumes: Any, logged: dict[str, int]) -> None:
    """This job's wall time from its process's start (:mod:`capx.run.job_clock`); a resumed
    run (``resumes``) adds this process's time to what the run held, one step per process."""
    key = names.JOB_WALL_SECONDS
    before = resumes.data.metrics.get(key, 0.0) if resumes is not None else 0.0
    tracker.log_metrics({key: before + job_clock.job_wall_seconds()},
                             step=logged.get(key, -1) + 1)
