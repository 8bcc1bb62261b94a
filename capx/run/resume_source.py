"""Which checkpoint ``resume=<run id>`` continues from: the newest valid one of the run, never
silently one behind what the run recorded.

A run's checkpoint may be in two places: its artifacts (``checkpoints/last.npz``, uploaded on each
write) and the folders it trained in on this machine (the ``capx.checkpoint.local`` tag names the
newest sitting's ``last.npz``, ``hydra.output_dir`` the first's). When uploads failed, the
artifact is older than the local file. :func:`newest_checkpoint` loads every candidate, keeps
those written by the run, takes the one furthest on, and refuses, naming every candidate, when
even that one is behind the newest checkpoint the run recorded writing (its
``capx.checkpoint.iteration`` tag): resuming from it would silently train those iterations
again. Giving the file itself (``resume=<path>``) accepts it. (Metrics flushed after the last
checkpoint, as after a SIGKILL, are not a newer checkpoint: those steps are trained again and
logged once.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capx.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from capx.tracking import names

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """One place a run's checkpoint may be: what it is, and the checkpoint or why not."""

    where: str
    checkpoint: Checkpoint | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.checkpoint is None:
            return f"{self.where}: {self.problem}"
        return f"{self.where} (iteration {self.checkpoint.state['iteration']})"


def newest_checkpoint(client: Any, run_id: str, download_dir: Path, uri: str = "the store"
                      ) -> Checkpoint:
    """The newest valid checkpoint of MLflow run ``run_id`` in store ``uri`` (see the module's
    docstring)."""
    run = _run(client, run_id)
    if run is None:
        raise CheckpointError(f"MLflow run {run_id} is not in {uri}: give the store that holds "
                              f"it (tracking.uri=URI or MLFLOW_TRACKING_URI), or the checkpoint "
                              f"file (resume=<path>/checkpoints/last.npz)")
    candidates = [_artifact(client, run_id, download_dir)]
    tags = run.data.tags if run is not None else {}
    local = [tags.get(names.LOCAL_CHECKPOINT)]
    if tags.get("hydra.output_dir"):
        local.append(str(Path(tags["hydra.output_dir"]) / names.LAST_CHECKPOINT))
    for path in dict.fromkeys(p for p in local if p):
        candidates.append(_local(Path(path), run_id))
    usable = [c for c in candidates if c.checkpoint is not None]
    listing = "; ".join(c.describe() for c in candidates)
    if not usable:
        raise CheckpointError(f"run {run_id} has no usable checkpoint: {listing}. Give the "
                              f"checkpoint file: resume=<path>/checkpoints/last.npz")
    best = max(usable, key=lambda c: c.checkpoint.state["iteration"])
    iteration = int(best.checkpoint.state["iteration"])
    progress = written_iteration(run)
    if progress > iteration:
        raise CheckpointError(
            f"run {run_id} wrote a checkpoint at iteration {progress}, but the newest one "
            f"found is behind it: {listing}. Resuming would silently train iterations "
            f"{iteration + 1}-{progress} again. Give the newer checkpoint file if you have it "
            f"(resume=<path>/checkpoints/last.npz), or accept this one by giving it: "
            f"resume={best.checkpoint.path}")
    others = [c.describe() for c in candidates if c is not best]
    log.info("resume: run %s from %s%s", run_id, best.describe(),
             f"; also found: {'; '.join(others)}" if others else "")
    return best.checkpoint


def written_iteration(run: Any) -> int:
    """The iteration of the newest checkpoint ``run`` recorded writing (0 if none is tagged)."""
    try:
        return int((run.data.tags if run is not None else {}).get(names.CHECKPOINT_ITERATION, 0))
    except (TypeError, ValueError):
        return 0


def warn_if_behind(client: Any, run_id: str, checkpoint: Checkpoint) -> None:
    """A checkpoint file given on purpose that is behind its run's newest: said, then used."""
    progress = written_iteration(_run(client, run_id))
    iteration = int(checkpoint.state["iteration"])
    if progress > iteration:
        log.warning("resume: %s (iteration %d) is behind run %s, which wrote a checkpoint at "
                    "iteration %d; continuing from it as asked (iterations %d-%d are trained "
                    "again)", checkpoint.path, iteration, run_id, progress, iteration + 1,
                    progress)


def _run(client: Any, run_id: str) -> Any:
    try:
        return client.get_run(run_id)
    except Exception:  # noqa: BLE001 - not in this store: the artifact attempt says why
        return None


def _artifact(client: Any, run_id: str, download_dir: Path) -> Candidate:
    where = f"artifact {names.LAST_CHECKPOINT}"
    try:
        download_dir.mkdir(parents=True, exist_ok=True)
        path = client.download_artifacts(run_id, names.LAST_CHECKPOINT, str(download_dir))
    except Exception as exc:  # noqa: BLE001 - any MLflow failure: this candidate is out
        return Candidate(where, problem=f"could not be fetched ({str(exc)[:300]})")
    return _owned(Candidate(f"{where} (downloaded to {path})"), Path(path), run_id)


def _local(path: Path, run_id: str) -> Candidate:
    if not path.is_file():
        return Candidate(f"local {path}", problem="not found")
    return _owned(Candidate(f"local {path}"), path, run_id)


def _owned(candidate: Candidate, path: Path, run_id: str) -> Candidate:
    """``candidate`` with the checkpoint at ``path``, if it is valid and written by the run."""
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as exc:
        candidate.problem = str(exc)
        return candidate
    owner = checkpoint.meta.get("run_id")
    if owner and owner != run_id:
        candidate.problem = (f"written by run {owner} (its meta.run_id), not by run {run_id}; "
                             f"resume that run with resume={owner}")
        return candidate
    candidate.checkpoint = checkpoint
    return candidate
