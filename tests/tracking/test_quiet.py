"""MLflow's chatter is filtered at its source: a run's console holds capx's lines and no MLflow
INFO narration, download bars or model-logging warnings; a user's own settings win."""

from __future__ import annotations

import logging

import pytest

from capx.tracking.quiet import CHATTY_LOGGERS, PROGRESS_BAR, quiet_mlflow
from tests.support import SMOKE, run_py


def test_chatty_loggers_go_to_warning_unless_the_user_set_them(monkeypatch):
    for name in CHATTY_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    mine = logging.getLogger(CHATTY_LOGGERS[0])
    mine.setLevel(logging.DEBUG)  # the user's choice
    monkeypatch.setenv(PROGRESS_BAR, "true")
    quiet_mlflow()
    assert mine.level == logging.DEBUG
    assert all(logging.getLogger(n).level == logging.WARNING for n in CHATTY_LOGGERS[1:])
    import os

    assert os.environ[PROGRESS_BAR] == "true"
    monkeypatch.delenv(PROGRESS_BAR)
    quiet_mlflow()
    assert os.environ[PROGRESS_BAR] == "false"


@pytest.mark.slow  # a run.py job in a subprocess (the console a user sees)
def test_a_run_prints_capx_lines_and_no_library_noise(workdir, cache_dir):
    done = run_py(workdir, cache_dir, *SMOKE, "tracking.system_metrics=auto")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "FINISHED after" in done.stdout and "MLflow run" in done.stdout
    noise = [line for line in done.stderr.splitlines()
             if "INFO mlflow" in line or "Downloading artifacts" in line
             or "Warning" in line or "cloudpickle" in line.lower()]
    assert noise == []
