"""Checks that run before any work: the start folder, and the tracking store a job will write to.

A wrong ``tracking.uri`` used to hang for minutes in MLflow's retries and end in a traceback,
and a read-only folder or database failed after the data was prepared. :func:`open_store` opens
the store up front, with a short probe for a server, and turns every way it can fail into one
:class:`TrackingError` that says what is wrong and what to do. The data's own checks (a batch
larger than the data, an empty dev split) are :func:`capx.run.build.check_fits`.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from capx.errors import ConfigError
from capx.tracking.liveness import reap_dead_runs
from capx.tracking.locations import local_artifact_root, tracking_uri
from capx.tracking.retries import describe_failure
from capx.tracking.store_setup import StoreError, experiment_id, make_client

log = logging.getLogger(__name__)

#: seconds to wait for an MLflow server's answer to the start-up probe
PROBE_SECONDS = 5.0
#: MLflow's HTTP retry settings for a capx job, unless the user set them: MLflow's defaults
#: (7 retries, 120 s timeouts) hold a job for minutes when a server is gone
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
#: the URI schemes MLflow's tracking stores read (``dialect+driver://`` counts as its dialect)
SCHEMES = ("", "file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


class TrackingError(ConfigError):
    """The tracking store cannot be used; the message names it and says what to do."""


@dataclass(frozen=True)
class Store:
    """An opened tracking store: the client, the job's experiment id and the URI."""

    client: Any
    experiment_id: str
    uri: str


def open_store(settings: dict[str, Any], base_dir: str | os.PathLike) -> Store | None:
    """The store ``tracking`` settings name (None with ``tracking.enabled=false``), opened and
    checked: a known scheme, a server that answers, a folder and database that can be written."""
    if not settings["enabled"]:
        return None
    uri = tracking_uri(settings["uri"], base_dir)
    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme not in SCHEMES:
        raise TrackingError(
            f"tracking.uri={uri!r}: MLflow has no tracking store for scheme {scheme!r}; use "
            f"sqlite:///path/to/mlflow.db, a folder, or an http(s):// MLflow server "
            f"(or tracking.enabled=false)")
    if scheme in ("http", "https"):
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        probe_server(uri)
    if scheme == "sqlite":
        check_writable_sqlite(uri)
    try:
        client = make_client(uri)
        exp_id = experiment_id(client, settings["experiment_name"], uri)
    except TrackingError:
        raise
    except StoreError as exc:
        raise TrackingError(str(exc)) from exc
    except (ImportError, MemoryError) as exc:  # not the store's fault: do not blame the URI
        raise TrackingError(
            f"MLflow could not load its store code ({type(exc).__name__}: {exc}): the process "
            f"ran out of memory (a low ulimit -v?) or the install is broken; raise the limit, "
            f"reinstall mlflow, or run with tracking.enabled=false") from exc
    except Exception as exc:  # noqa: BLE001 - whatever MLflow raises, the user needs the same
        raise TrackingError(f"tracking.uri={uri!r}: MLflow could not open the store "
                            f"({describe_failure(exc)}); check the URI, or run with "
                            f"tracking.enabled=false") from exc

    try:
        reap_dead_runs(client, [exp_id])
    except Exception as exc:  # noqa: BLE001 - closing others' dead runs must not stop this one
        log.warning("could not check for runs left RUNNING: %s", exc)
    return Store(client, exp_id, uri)


def probe_server(uri: str, seconds: float = PROBE_SECONDS) -> None:
    """Any HTTP answer from ``uri`` within ``seconds`` will do; no answer is a TrackingError."""
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=seconds).close()
    except urllib.error.HTTPError:
        return  # it answered (a proxy or an old server without /health)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"tracking.uri={uri!r}: no MLflow server answers there ({reason}, waited "
            f"{seconds:g} s); start one (mlflow server --host 127.0.0.1 --port PORT), fix the "
            f"URI, or run with tracking.enabled=false") from exc


def check_writable_sqlite(uri: str) -> None:
    """The database file (if it exists), its folder and the artifact folder beside it must be
    writable: SQLite writes a journal beside the database."""
    db = Path(uri[len("sqlite:///"):]).expanduser()
    if db.exists() and not db.is_file():
        raise TrackingError(f"tracking.uri={uri!r}: {db} is a directory, not a database file; "
                            f"rename it (mv {db} {db}.folder) or point tracking.uri at a file")
    artifacts = local_artifact_root(uri)
    for path, what in ((db.parent, "folder"), (db, "database"),
                       (Path(artifacts) if artifacts else None, "artifact folder")):
        if path is None or not path.exists():
            if what == "folder":
                raise TrackingError(f"tracking.uri={uri!r}: the folder {path} does not exist; "
                                    f"create it or point tracking.uri elsewhere")
            continue
        if not os.access(path, os.W_OK):
            raise TrackingError(
                f"tracking store: the {what} {path} is read-only, so runs cannot be recorded; "
                f"make it writable, run from a writable folder, or set "
                f"tracking.uri=sqlite:////a/writable/folder/mlflow.db")


def check_start_folder(folder: str | os.PathLike, argv: list[str]) -> str | None:
    """A message when Hydra would fail to create its output folder in a read-only ``folder``
    (unless the command line moves ``hydra.run.dir``/``hydra.sweep.dir`` elsewhere)."""
    if any(a.startswith(("hydra.run.dir=", "hydra.sweep.dir=", "--help", "-h", "--cfg", "-c",
                         "--info", "--hydra-help", "--shell-completion")) for a in argv):
        return None  # the output goes elsewhere, or Hydra only prints
    if os.access(folder, os.W_OK):
        return None
    return (f"the folder {Path(folder).resolve()} is read-only: a run writes its outputs, "
            f"checkpoints and mlflow.db there. Start from a writable folder, or pass "
            f"hydra.run.dir=/writable/dir (hydra.sweep.dir=... with -m) and "
            f"tracking.uri=sqlite:////writable/dir/mlflow.db")


def existing_store(uri: str) -> str | None:
    """For commands that read runs (``capx report``, ``capx export``): a message when a SQLite
    store does not exist, instead of MLflow quietly creating an empty database there."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///"):]).expanduser()
    if db.is_file():
        return None
    return (f"no MLflow store at {db}: run this command in the folder where you trained "
            f"(where mlflow.db is), or pass --tracking-uri sqlite:////path/to/mlflow.db")
