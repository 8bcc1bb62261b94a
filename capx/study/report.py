"""``capx report``: a study's runs side by side, with 95% CIs, paired comparisons and plots.

Reads finished runs from a study export (``--from runs.jsonl``, no MLflow store needed), from an
MLflow experiment (``--experiment NAME``), from one sweep (``--parent RUN_ID``), or, with no
argument, from the experiment of the newest run in the store. Writes ``report.md`` (its
tables: :mod:`capx.study.report_markdown`), ``report.html`` (the same in one self-contained
page, with a gallery of captions: see :mod:`capx.study.html_report`), ``runs.csv`` and the
figures into a folder (logged to the sweep's parent run when one is given) and prints the
tables.

    capx report
    capx report --from docs/study/coco_mini/runs.jsonl --out docs/study/coco_mini
    capx report --parent 0123abcd... --tracking-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from capx.study.export import (ExportError, complete_runs, finished_runs, images_of,
                               read_records, run_to_record)
from capx.study.html_report import make_gallery, report_html
from capx.study.plots import FIGURES
from capx.study.provenance import MixedCommitsError, check_one_commit, commit_line
from capx.study.report_markdown import report_markdown, tested_rows
from capx.study.tables import make_rows
from capx.tracking import names
from capx.tracking.liveness import reap_store
from capx.tracking.locations import tracking_uri
from capx.tracking.preflight import existing_store
from capx.tracking.searches import child_runs
from capx.tracking.store_setup import make_client
from capx.tracking.tracker import Tracker

log = logging.getLogger(__name__)


class ReportError(ValueError):
    """Nothing to report: unknown experiment, run or file, or no finished runs."""


# -- reading ------------------------------------------------------------------------------------


def load_records(uri: str | None = None, experiment: str | None = None,
                 parent: str | None = None, source: str | Path | None = None
                 ) -> tuple[list[dict[str, Any]], str]:
    """Export records of the runs to report, and a sentence saying where they came from."""
    if source is not None:
        try:
            records = read_records(source)
        except ExportError as exc:
            raise ReportError(str(exc)) from exc
        where = f"export {source}"
    else:
        client = make_client(uri)
        if parent:
            runs = _sweep_runs(client, parent)
            where = f"sweep run {parent}"
        else:
            experiment = experiment or latest_experiment(client)
            try:
                runs = finished_runs(client, experiment)
            except ExportError as exc:
                raise ReportError(str(exc)) from exc
            where = f"experiment {experiment}"
        records = [run_to_record(client, run) for run in runs]
    records = [r for r in records if r.get("metrics")]
    if not records:
        raise ReportError(f"{where} has no finished runs to report")
    return records, where


def latest_experiment(client: Any) -> str:
    """The experiment of the newest run in the store (what plain ``capx report`` reports)."""
    experiments = client.search_experiments()
    newest = client.search_runs([e.experiment_id for e in experiments], max_results=1,
                                order_by=["attributes.start_time DESC"]) if experiments else []
    if not newest:
        raise ReportError("the tracking store has no runs yet: run a study first "
                          "(python run.py -m experiment=study_coco_mini), or pass --from FILE")
    return client.get_experiment(newest[0].info.experiment_id).name


def _sweep_runs(client: Any, parent: str) -> list[Any]:
    try:
        parent_run = client.get_run(parent)
    except Exception as exc:  # noqa: BLE001 - MLflow raises its own error types
        raise ReportError(f"no run {parent!r} in the tracking store: {exc}") from exc
    runs = complete_runs(child_runs(client, parent_run.info.experiment_id, parent,
                                    status="FINISHED", max_results=50000))
    if not runs:
        raise ReportError(f"sweep run {parent} has no finished runs")
    return runs

def write_csv(records: Sequence[dict[str, Any]], path: Path) -> None:
    """One line per run: labels and final metrics (the export has everything else)."""
    metric_names = sorted({k for r in records for k in r.get("metrics", {})})
    label_names = sorted({k for r in records for k in r.get("labels", {})})
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run_id", "name"] + label_names + metric_names)
        for r in records:
            writer.writerow([r["run_id"], r.get("name", "")]
                            + [r["labels"].get(k, "") for k in label_names]
                            + [r["metrics"].get(k, "") for k in metric_names])


def make_report(out_dir: Path, uri: str | None = None, experiment: str | None = None,
                parent: str | None = None, source: str | Path | None = None,
                allow_mixed_commits: bool = False) -> tuple[str, list[Path]]:
    """Write the report; returns its Markdown and the files written (logged to ``parent``).
    Runs of different capx commits are refused unless ``allow_mixed_commits``."""
    records, where = load_records(uri, experiment, parent, source)
    try:
        check_one_commit(records, allow_mixed_commits)
    except MixedCommitsError as exc:
        raise ReportError(f"{where}: {exc}") from exc
    rows = make_rows(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in FIGURES.items():
        figure = make(rows)
        if figure is not None:
            figure.savefig(out_dir / name, dpi=110)
            written.append(out_dir / name)
    figures = list(written)
    text = report_markdown(rows, where, [p.name for p in figures], commit_line(records))
    (out_dir / "report.md").write_text(text)
    gallery, note = make_gallery(tested_rows(rows), images_of(records))
    (out_dir / "report.html").write_text(report_html(text, figures, gallery, note),
                                         encoding="utf-8")
    write_csv(records, out_dir / "runs.csv")
    written += [out_dir / "report.md", out_dir / "report.html", out_dir / "runs.csv"]
    if parent:
        tracker = Tracker(make_client(uri), parent, uri)
        for path in written:
            tracker.log_artifact(path, names.REPORT)
    return text, written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--from", dest="source", type=Path,
                       help="a study export (runs.jsonl from capx export); no store needed")
    which.add_argument("--experiment", help="MLflow experiment name (all its finished runs)")
    which.add_argument("--parent", help="a sweep's parent run id (its finished child runs; the "
                                        "report is also logged to it as artifacts)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                             "sqlite:///mlflow.db in the current folder)")
    parser.add_argument("--allow-mixed-commits", action="store_true",
                        help="report runs of different capx commits together (refused by "
                             "default: one table should hold one version of the code)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: report/<experiment, run id or file name>)")


def main(args: argparse.Namespace) -> int:
    uri = tracking_uri(args.tracking_uri, Path.cwd())
    missing = None if args.source else existing_store(uri)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    if not args.source:
        reap_store(uri)  # runs left RUNNING by a dead process are closed before the report
    name = args.experiment or args.parent or (args.source.parent.name if args.source else None)
    try:
        if name is None:
            name = latest_experiment(make_client(uri))
            args.experiment = name
        out = args.out or Path("report") / name
        text, written = make_report(out, uri, args.experiment, args.parent, args.source,
                                    getattr(args, "allow_mixed_commits", False))
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(text)
    print(f"wrote {len(written)} files to {out.resolve()}"
          + (f" and logged them to run {args.parent} under report/" if args.parent else ""))
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m capx.study.report", description=__doc__.split(
        "\n")[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
