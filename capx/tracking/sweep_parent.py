"""A multirun sweep and its parent run in MLflow: :func:`sweep_parent_run` is the one way a
sweep's parent run is made (by the launching process's Hydra callback, or by the first job when
that did not), under a file lock in the sweep folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from capx.tracking import names
from capx.tracking.locks import file_lock
from capx.tracking.retries import retry
from capx.tracking.searches import search_runs

PARENT_ID_FILE = "mlflow_parent_run_id.txt"


@dataclass(frozen=True)
class Sweep:
    """A multirun sweep: its folder (absolute) and the overrides it was launched with; make
    one with :meth:`in_folder`."""

    folder: Path
    overrides: tuple[str, ...] = ()

    @classmethod
    def in_folder(cls, folder: str | os.PathLike,
                  overrides: Sequence[str] | None = None) -> "Sweep":
        """The sweep of ``folder``; without ``overrides``, those of the ``multirun.yaml`` that
        Hydra writes there before any job starts (so a job sees what the launcher was given)."""
        folder = Path(folder).resolve()
        if overrides is None:
            try:
                saved = yaml.safe_load((folder / "multirun.yaml").read_text()) or {}
                overrides = saved["hydra"]["overrides"]["task"] or []
            except (OSError, KeyError, TypeError, yaml.YAMLError):
                overrides = []
        return cls(folder, tuple(str(o) for o in overrides))

    @property
    def run_name(self) -> str:
        """``sweep tokenizer=char,word (<folder name>)``: the overrides that vary and the folder."""
        varies = [o for o in self.overrides if "," in o or "(" in o]
        return " ".join(["sweep", *varies, f"({self.folder.name})"])

    @property
    def tags(self) -> dict[str, str]:
        return {names.SWEEP_ID: str(self.folder), names.SWEEP_DIR: str(self.folder),
                names.SWEEP_OVERRIDES: " ".join(self.overrides)}


def sweep_parent_run(client: Any, exp_id: str, sweep: Sweep,
                     owner_tags: dict[str, str] | None = None) -> str:
    """The parent run of ``sweep``: read from its id file, found by tag, or made (named
    :attr:`Sweep.run_name`, tagged :attr:`Sweep.tags`, plus ``owner_tags`` when the launching
    process makes it: :mod:`capx.tracking.liveness` then closes it if that process dies). The
    one way a parent run is made.

    A file lock in the sweep folder makes jobs that start together agree on one parent.
    """
    id_file = sweep.folder / PARENT_ID_FILE
    with file_lock(sweep.folder / ".mlflow_parent.lock"):
        if id_file.is_file() and id_file.read_text().strip():
            return id_file.read_text().strip()
        found = search_runs(client, [exp_id], "searching for the sweep's parent run",
                            tags={names.SWEEP_ID: str(sweep.folder)}, max_results=1)
        if found:
            run_id = found[0].info.run_id
        else:
            tags = {**sweep.tags, **(owner_tags or {})}
            run = retry(lambda: client.create_run(exp_id, tags=tags, run_name=sweep.run_name),
                        "creating the sweep's parent run")
            run_id = run.info.run_id
        id_file.write_text(run_id + "\n")
        return run_id
