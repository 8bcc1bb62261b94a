"""MLflow's chatter filtered at its source, so a run's console shows capx's own lines and the
warnings that matter.

MLflow narrates its own work at INFO (the system-metrics monitor starting and stopping, a new
store's tables being made, a model's input example being checked) and draws a progress bar for
every artifact download (``capx export`` and ``capx caption`` download per run). capx sets
those loggers to WARNING, so their warnings and errors still show, and turns the download bars
off through MLflow's own setting ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``. A user's own choice
wins: a logger with a level already set, or the variable already in the environment, is left
as it is.
"""

from __future__ import annotations

import logging
import os

#: MLflow loggers whose INFO lines narrate MLflow's work rather than the run's
CHATTY_LOGGERS = ("mlflow.system_metrics", "mlflow.store.db.utils", "mlflow.pyfunc",
                  "mlflow.models", "alembic")
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def quiet_mlflow() -> None:
    """Artifact-download bars off and MLflow's narrating loggers at WARNING (see above)."""
    os.environ.setdefault(PROGRESS_BAR, "false")
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
