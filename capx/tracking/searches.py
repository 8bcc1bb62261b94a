"""Searching an MLflow store for runs: by tag values and status, and a sweep's jobs."""

from __future__ import annotations

from typing import Any, Iterable

from capx.tracking import names
from capx.tracking.retries import retry


def search_runs(client: Any, experiment_ids: Iterable[str], what: str, *,
                tags: dict[str, str] | None = None, status: str | None = None,
                **options: Any) -> list[Any]:
    """Runs whose ``tags`` have these values (and whose status is ``status``), with retries;
    ``options`` go to MLflow's ``search_runs`` (``max_results``, ``order_by``)."""
    clauses = [f"tags.`{key}` = '{value}'" for key, value in (tags or {}).items()]
    if status:
        clauses.append(f"attributes.status = '{status}'")
    return retry(lambda: client.search_runs(list(experiment_ids), filter_string=" and ".join(
        clauses), **options), what)


def child_runs(client: Any, experiment_id: str, parent: str, status: str | None = None,
               **options: Any) -> list[Any]:
    """The runs nested under run ``parent`` (a sweep's jobs)."""
    return search_runs(client, [experiment_id], "reading the sweep's runs",
                       tags={names.PARENT_RUN: parent}, status=status, **options)


def incomplete(run: Any) -> str | None:
    """What a run's record lacks (its ``capx.record.incomplete`` tag), or None if complete."""
    return run.data.tags.get(names.RECORD_INCOMPLETE)


def complete_and_incomplete(runs: Iterable[Any]) -> tuple[list[Any], list[Any]]:
    """``runs`` split into those whose record is complete and those marked incomplete."""
    runs = list(runs)
    return ([r for r in runs if incomplete(r) is None],
            [r for r in runs if incomplete(r) is not None])


def left_out_lines(runs: Iterable[Any]) -> list[str]:
    """One line per incomplete run: which, and what its record lacks."""
    return [f"left out run {r.info.run_id} ({r.info.run_name}): its record is incomplete "
            f"({incomplete(r)})" for r in runs]
