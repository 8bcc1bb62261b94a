"""What each job of a sweep did, kept in its own folder, so the sweep's end knows which failed.

MLflow alone cannot say: a job with bad input stops before it creates a run, and with
``tracking.enabled=false`` there are no runs at all. So every job writes ``capx_outcome.json``
(status, run id, overrides, the error's first line) into its folder, and
:func:`sweep_summary` reads them all when the sweep ends: a job folder without one is a job
that was killed before it could write it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTCOME_FILE = "capx_outcome.json"
#: statuses of a job that did its work (SKIPPED: an earlier run of it already FINISHED)
DONE = ("FINISHED", "SKIPPED")


def write_outcome(folder: Path, outcome: dict[str, Any]) -> Path:
    """Write ``outcome`` to ``folder/capx_outcome.json`` (atomically: whole or not at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v)
             for k, v in outcome.items()}
    path = folder / OUTCOME_FILE
    part = path.with_suffix(".json.part")
    part.write_text(json.dumps(clean, indent=1, default=str) + "\n")
    os.replace(part, path)
    return path


@dataclass(frozen=True)
class SweepSummary:
    """The jobs of one sweep: each job folder's outcome (``status`` ``MISSING``: none written)."""

    jobs: list[dict[str, Any]]

    @property
    def not_done(self) -> list[dict[str, Any]]:
        return [job for job in self.jobs if job["status"] not in DONE]

    @property
    def status(self) -> str:
        """The sweep's status: KILLED if a job was, FAILED if any other did not finish."""
        statuses = {job["status"] for job in self.not_done}
        return "KILLED" if "KILLED" in statuses else "FAILED" if statuses else "FINISHED"

    def lines(self) -> list[str]:
        """One line per job that did not finish: folder, status, overrides, why."""
        out = []
        for job in self.not_done:
            why = (job.get("error") or "").strip().splitlines()
            out.append(f"job {job['folder']}: {job['status']} ({' '.join(job.get('overrides') or [])})"
                       + (f": {why[0][:300]}" if why else ""))
        return out


def sweep_summary(sweep_dir: Path) -> SweepSummary:
    """The outcome of every job folder under ``sweep_dir`` (a folder Hydra made for a job has
    ``.hydra/``), in folder order."""
    jobs = []
    for hydra_dir in sorted(Path(sweep_dir).rglob(".hydra")):
        folder = hydra_dir.parent
        try:
            outcome = json.loads((folder / OUTCOME_FILE).read_text())
        except (OSError, ValueError):
            outcome = {"status": "MISSING",
                       "error": "the job wrote no outcome: it was killed (SIGKILL, out of "
                                "memory) or crashed before it could"}
        outcome["folder"] = str(folder.relative_to(sweep_dir))
        jobs.append(outcome)
    return SweepSummary(jobs)
