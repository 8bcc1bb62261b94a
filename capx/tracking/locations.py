"""Where a job's runs go and where its code came from: the store's URI, the folder of its
artifacts, the command that shows it in MLflow's UI, and the git commit of a folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

DEFAULT_DB = "mlflow.db"


def tracking_uri(configured: str | None, base_dir: str | os.PathLike) -> str:
    """``tracking.uri`` if set, else ``$MLFLOW_TRACKING_URI``, else SQLite in ``base_dir``."""
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(base_dir).resolve() / DEFAULT_DB}"


def local_artifact_root(uri: str) -> str | None:
    """For a SQLite store, an ``mlartifacts`` folder beside the database file (else None)."""
    if uri.startswith("sqlite:///"):
        return str(Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts")
    return None


def ui_command(uri: str) -> str:
    """The shell command that shows ``uri`` in the MLflow web UI."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if db.name == DEFAULT_DB:  # MLflow's own default store: plain `mlflow ui` reads it
            return f"cd {db.parent} && mlflow ui"
        return f"cd {db.parent} && mlflow ui --backend-store-uri sqlite:///{db.name}"
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


def git_tree_clean(cwd: str | os.PathLike) -> bool | None:
    """Whether the checkout of ``cwd`` has no changes to tracked files and no untracked files
    inside ``cwd`` itself (a new module of the package); None outside a git checkout."""
    try:
        tracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                 cwd=cwd, capture_output=True, text=True, timeout=10)
        here = subprocess.run(["git", "status", "--porcelain", "--untracked-files=normal", "--",
                               "."], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if tracked.returncode != 0 or here.returncode != 0:
        return None
    return not (tracked.stdout.strip() or here.stdout.strip())


def git_commit(cwd: str | os.PathLike) -> str | None:
    """The commit checked out in ``cwd``; None outside a git checkout or without git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
