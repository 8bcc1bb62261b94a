"""Jobs already done: a fingerprint of a job's configuration, and where finished ones are found.

A long study runs in sittings, maybe on another machine. Re-running its sweep must skip every job
that already has a FINISHED run, in the MLflow store or in the study's committed export
(``tracking.export``), and train only the rest. Two jobs are the same job when their validated
configs agree on everything that can change a result: tracking, progress display, checkpoint
cadence and resume are left out, and so are file locations (``*base_dir``, ``*_file``,
``*_files``), which differ between machines while naming the same data.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from capx.tracking import names
from capx.tracking.locations import tracking_uri
from capx.tracking.searches import complete_and_incomplete, left_out_lines, search_runs
from capx.tracking.store_setup import experiment_id, make_client

log = logging.getLogger(__name__)

IGNORED_SECTIONS = ("tracking", "progress", "resume", "checkpoint", "objective",
                    "memory_limit_gb")
_LOCATION_SUFFIXES = ("base_dir", "_file", "_files")


def fingerprint(plain: dict[str, Any]) -> str:
    """A short hash of the result-relevant part of a validated config."""
    relevant = {k: v for k, v in plain.items() if k not in IGNORED_SECTIONS}
    text = json.dumps(_without_locations(relevant), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _without_locations(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _without_locations(v) for k, v in tree.items()
                if not str(k).endswith(_LOCATION_SUFFIXES)}
    if isinstance(tree, list):
        return [_without_locations(v) for v in tree]
    return tree


def finished_in_store(client: Any, exp_id: str, key: str) -> str | None:
    """The id of a FINISHED run of experiment ``exp_id`` with fingerprint ``key`` and a
    complete record, if any (a run marked ``capx.record.incomplete`` is not done)."""
    runs = search_runs(client, [exp_id], "looking for a finished run",
                       tags={names.FINGERPRINT: key}, status="FINISHED", max_results=100)
    complete, partial = complete_and_incomplete(runs)
    if not complete:
        for line in left_out_lines(partial):
            log.warning("not skipping this job: %s; it is trained again", line[len("left out "):])
    return complete[0].info.run_id if complete else None


def finished_in_export(path: str | Path | None, key: str) -> str | None:
    """The run id of an exported run (a study's runs.jsonl) with fingerprint ``key``, if any."""
    if not path or not Path(path).is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if f'"{key}"' in line:
                record = json.loads(line)
                if record.get("fingerprint") == key:
                    return record.get("run_id") or "(exported)"
    return None


def already_finished(plain: dict[str, Any], base_dir: Path) -> str | None:
    """A FINISHED run with this job's fingerprint: in the study export (``tracking.export``,
    relative to ``base_dir``), else in the job's MLflow experiment. Its run id, or None."""
    key = fingerprint(plain)
    export = plain["tracking"]["export"]
    if export and not Path(export).is_absolute():
        export = Path(base_dir) / export
    found = finished_in_export(export, key)
    if found or not plain["tracking"]["enabled"]:
        return found
    uri = tracking_uri(plain["tracking"]["uri"], base_dir)
    client = make_client(uri)
    exp_id = experiment_id(client, plain["tracking"]["experiment_name"], uri)
    return finished_in_store(client, exp_id, key)
