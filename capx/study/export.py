"""``capx export``: a study's finished runs as one compact JSON-lines file that travels with git.

A study outlives its MLflow store: it runs in sittings, maybe on other machines. The export holds
what the report needs and what a continuing sweep needs to skip finished jobs: per run its
labels, fingerprint, the commit of the capx code that ran it and whether its checkout was
clean, flattened config, final metrics, dev curve, the per-image test scores
that the paired bootstrap resamples and each test image's caption (for the report's gallery);
each test image's references and picture (URL or file name) are written once per file, in the
first record that has the image (``images``). ``capx report --from FILE`` rebuilds every table and figure
from it without the store, and ``tracking.export=FILE`` makes a sweep skip the jobs it holds.

    capx export --experiment study_coco_mini --out docs/study/coco_mini/runs.jsonl

Exporting again merges: runs already in the file are kept, new ones are appended (by run id).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

from capx.tracking import names
from capx.tracking.liveness import reap_store
from capx.tracking.locations import tracking_uri
from capx.tracking.preflight import existing_store
from capx.tracking.retries import retry
from capx.tracking.searches import complete_and_incomplete, left_out_lines, search_runs
from capx.tracking.store_setup import make_client

CURVE_METRICS = (names.VAL_BITS_PER_CHAR, names.VAL_BITS_PER_CHAR_CLOSED, names.TRAIN_SECONDS)


class ExportError(ValueError):
    """Nothing to export (unknown experiment, no finished runs) or an unreadable export file."""


def run_to_record(client: Any, run: Any) -> dict[str, Any]:
    """One finished MLflow run as an export record (a JSON-ready dict)."""
    tags, run_id = run.data.tags, run.info.run_id
    curves = {}
    for key in CURVE_METRICS:
        history = client.get_metric_history(run_id, key)
        curves[key] = [[m.step, m.value] for m in sorted(history, key=lambda m: m.step)]
    return {
        "run_id": run_id,
        "name": run.info.run_name,
        "fingerprint": tags.get(names.FINGERPRINT),
        "experiment_id": run.info.experiment_id,
        "parent_run_id": tags.get(names.PARENT_RUN),
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "commit": tags.get(names.SOURCE_COMMIT),  # the capx code that ran it
        "clean": {"true": True, "false": False}.get(tags.get(names.SOURCE_CLEAN, "")),
        "arithmetic": tags.get(names.ARITHMETIC),  # NumPy and its BLAS
        "labels": {k: tags[k] for k in names.LABELS if k in tags},
        "params": dict(run.data.params),
        "metrics": {k: _finite(v) for k, v in run.data.metrics.items()},
        "curves": curves,
        "per_image": _per_image(client, run_id),
        **_captions(client, run_id),
    }


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _per_image(client: Any, run_id: str) -> dict[str, list] | None:
    """Per-image test scores (older runs have none; the report then skips their CIs)."""
    return read_artifact_json(client, run_id, names.PER_IMAGE)


def _captions(client: Any, run_id: str) -> dict[str, Any]:
    """``captions`` (image ids and the run's caption of each) and ``images`` (id -> references
    and url) from the run's evaluation table; nothing for runs without one."""
    table = read_artifact_json(client, run_id, names.EVALUATION_TABLE)
    if not table or "caption" not in (columns := dict(zip(table.get("columns", []),
                                                             zip(*table.get("data", []))))):
        return {}
    ids = [None if i is None else int(i) for i in columns.get("image_id", [])]
    images = {}
    for n, image_id in enumerate(ids):
        if image_id is not None:
            references = columns.get("references", [""] * len(ids))[n] or ""
            images[str(image_id)] = {"references": [r for r in references.split(" | ") if r],
                                     "url": (columns.get("url") or [""] * len(ids))[n] or ""}
    return {"captions": {"image_id": ids, "caption": list(columns["caption"])},
            "images": images}


def read_artifact_json(client: Any, run_id: str, artifact: str) -> Any:
    """The JSON artifact of a run, or None when the run has none (runs older than the table).

    Only absence means "none": a store that fails while listing or downloading is retried and
    then an error, so an export never drops a run's captions silently.
    """
    folder_name = artifact.rpartition("/")[0]
    listed = retry(lambda: client.list_artifacts(run_id, folder_name or None),
                   f"listing the artifacts of run {run_id}")
    if artifact not in {item.path for item in listed}:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = retry(lambda: client.download_artifacts(run_id, artifact, folder),
                     f"downloading {artifact} of run {run_id}")
        return json.loads(Path(path).read_text())


def images_of(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every test image's references and url that the records hold (image id as text)."""
    images: dict[str, dict[str, Any]] = {}
    for record in records:
        for image_id, image in (record.get("images") or {}).items():
            images.setdefault(image_id, image)
    return images


def _once(records: list[dict[str, Any]], known: dict[str, Any]) -> list[dict[str, Any]]:
    """``records`` with each image's references and url kept only where first seen."""
    seen = set(known)
    for record in records:
        images = {k: v for k, v in (record.get("images") or {}).items() if k not in seen}
        seen |= set(images)
        if "images" in record:
            record["images"] = images
    return records


def finished_runs(client: Any, experiment: str) -> list[Any]:
    """The FINISHED job runs (not sweep parents) of an experiment with a complete record,
    oldest first."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        known = [e.name for e in client.search_experiments()]
        raise ExportError(f"no MLflow experiment named {experiment!r}; experiments in this "
                          f"store: {', '.join(known) or '(none)'}")
    runs = search_runs(client, [found.experiment_id], "reading the runs",
                                status="FINISHED", max_results=50000,
                                order_by=["attributes.start_time ASC"])
    return complete_runs(r for r in runs if names.SWEEP_ID not in r.data.tags)


def complete_runs(runs: Iterable[Any]) -> list[Any]:
    """The runs whose record is complete; each one left out is named on stderr, with why."""
    complete, partial = complete_and_incomplete(runs)
    for line in left_out_lines(partial):
        print(f"warning: {line}", file=sys.stderr)
    return complete


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of an export file (one JSON object per line)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no export file {path}; make one with capx export --experiment NAME "
                          f"--out {path}")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ExportError(f"{path}:{number}: not a JSON record ({exc})") from exc
    return records


def write_records(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Write records atomically (a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    with open(partial, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n")
    partial.replace(path)


def export(uri: str, experiment: str, out: str | Path) -> tuple[int, int]:
    """Merge the experiment's finished runs into ``out``; returns (new records, total)."""
    client = make_client(uri)
    existing = read_records(out) if Path(out).is_file() else []
    known = {r["run_id"] for r in existing}
    new = _once([run_to_record(client, run) for run in finished_runs(client, experiment)
                 if run.info.run_id not in known], images_of(existing))
    write_records(out, existing + new)
    return len(new), len(existing) + len(new)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", required=True, help="MLflow experiment name")
    parser.add_argument("--out", type=Path, required=True, help="the runs.jsonl file to merge into")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                             "sqlite:///mlflow.db in the current folder)")


def main(args: argparse.Namespace) -> int:
    uri = tracking_uri(args.tracking_uri, Path.cwd())
    missing = existing_store(uri)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    reap_store(uri)  # runs left RUNNING by a dead process are closed before the export
    try:
        new, total = export(uri, args.experiment, args.out)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {new} new run(s), {total} in all")
    return 0
