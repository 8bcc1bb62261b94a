"""Hydra callbacks of a multirun sweep, in the launching process.

:class:`SweepCallback` opens the sweep's MLflow parent run before the jobs start and closes it
after them (``conf/config.yaml`` lists it: ``hydra.callbacks.<name>._target_``). A sweep's
report is ``capx report --parent <its parent run id>``.
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig

from capx.run.outcomes import sweep_summary
from capx.tracking import names
from capx.tracking.liveness import process_tags, reap_dead_runs
from capx.tracking.locations import tracking_uri
from capx.tracking.retries import retry
from capx.tracking.searches import child_runs
from capx.tracking.store_setup import experiment_id, make_client
from capx.tracking.sweep_parent import Sweep, sweep_parent_run

log = logging.getLogger(__name__)


def resolve_sweep_dir(config: DictConfig) -> Path:
    """The sweep folder of a Hydra config, absolute (relative ones are under the launch folder)."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    if not sweep_dir.is_absolute():
        sweep_dir = Path(str(config.hydra.runtime.cwd)) / sweep_dir
    return sweep_dir


def sweep_of(config: DictConfig) -> Sweep:
    """The sweep a Hydra config launches: its folder and its command-line overrides."""
    return Sweep.in_folder(resolve_sweep_dir(config), list(config.hydra.overrides.task))


def _store(config: DictConfig) -> tuple[Any, str, str] | None:
    """The client, experiment id and URI of the sweep's store; None when tracking is off."""
    if not config.get("tracking", {}).get("enabled", True):
        return None
    uri = tracking_uri(config.tracking.get("uri"), config.hydra.runtime.cwd)
    client = make_client(uri)
    return client, experiment_id(client, config.tracking.experiment_name, uri), uri


def tag_best_trial(client: Any, parent: str, children: list[Any], config: DictConfig) -> None:
    """Tag the parent run with the child whose ``objective`` is best, in the sweeper's
    direction (``hydra.sweeper.direction``; minimise when it has none), and that value."""
    scored = [r for r in children if names.OBJECTIVE in r.data.metrics]
    if not scored:
        return
    direction = str(config.hydra.sweeper.get("direction", "minimize")).lower()
    pick = max if direction.startswith("max") else min
    best = pick(scored, key=lambda r: r.data.metrics[names.OBJECTIVE])
    tags = {names.BEST_TRIAL: best.info.run_id,
            names.OBJECTIVE: str(best.data.metrics[names.OBJECTIVE]),
            names.OBJECTIVE_NAME: best.data.tags.get(names.OBJECTIVE_NAME, "")}
    for key, value in tags.items():
        retry(lambda: client.set_tag(parent, key, value), "tagging the best trial")


class SweepCallback(HydraCallback):
    """Opens the sweep's parent run before jobs start and closes it after.

    The parent's status is FINISHED when every child finished, else FAILED (KILLED if one was).
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            store = _store(config)
            if store is None:
                return
            client, exp_id, _ = store
            parent = sweep_parent_run(client, exp_id, sweep_of(config), process_tags())
        except Exception as exc:  # noqa: BLE001 - jobs create the parent themselves then
            log.warning("could not open the sweep's MLflow parent run: %s", exc)
            return
        self._ended = False
        atexit.register(self._close_if_abandoned, client, exp_id, parent)

    def _close_if_abandoned(self, client: Any, exp_id: str, parent: str) -> None:
        """At exit, a parent run that :meth:`on_multirun_end` never closed (Hydra stopped the
        sweep, e.g. on a bad override, before or between its jobs) is deleted when no job made
        a run, else closed FAILED; never left RUNNING for the next command to reap."""
        if getattr(self, "_ended", True):
            return
        try:
            children = child_runs(client, exp_id, parent)
            retry(lambda: client.set_tag(parent, names.ERROR, "the sweep stopped before its "
                                         "end (see its console)"), "tagging the sweep run")
            retry(lambda: client.set_terminated(parent, status="FAILED"), "closing the sweep")
            if not children:  # nothing ran: the empty run is only noise
                retry(lambda: client.delete_run(parent), "removing the sweep's empty run")
        except Exception as exc:  # noqa: BLE001 - at exit: the next command reaps it instead
            log.warning("could not close the sweep's MLflow parent run %s: %s", parent, exc)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Close the parent run with the sweep's status, list the jobs that did not finish,
        and exit non-zero if any did not (after all of them ran); see :mod:`capx.run.outcomes`."""
        self._ended = True
        summary = sweep_summary(resolve_sweep_dir(config))
        status = summary.status
        try:
            store = _store(config)
            if store is not None:
                status = self._close_parent(config, store, status)
        except Exception as exc:  # noqa: BLE001 - never fail a finished sweep over bookkeeping
            log.warning("could not close the sweep's MLflow parent run: %s", exc)
        if status != "FINISHED":
            lines = summary.lines()
            log.error("sweep %s: %d of %d job(s) did not finish%s",
                      resolve_sweep_dir(config), len(lines), len(summary.jobs),
                      ":" if lines else " (see the MLflow runs)")
            for line in lines:
                log.error("  %s", line)
            raise SystemExit(130 if status == "KILLED" else 1)

    @staticmethod
    def _close_parent(config: DictConfig, store: tuple[Any, str, str], status: str) -> str:
        """Close the parent run: FAILED (KILLED) when a job's outcome or its run says so."""
        client, exp_id, _ = store
        reap_dead_runs(client, [exp_id])  # a job killed outright left its run RUNNING
        parent = sweep_parent_run(client, exp_id, sweep_of(config))
        children = child_runs(client, exp_id, parent)
        statuses = {run.info.status for run in children} | {status}
        status = ("KILLED" if "KILLED" in statuses else
                  "FAILED" if statuses - {"FINISHED"} else "FINISHED")
        if not children:
            log.info("no job of this sweep made a run: every job was skipped as already "
                     "FINISHED (tracking.skip_finished), or none started")
        tag_best_trial(client, parent, children, config)
        retry(lambda: client.set_terminated(parent, status=status), "closing the sweep run")
        log.info("MLflow sweep run %s: %d job(s), %s", parent, len(children), status)
        return status
