"""``capx report``: the runs of a study side by side, as Markdown tables and PNG plots.

Reads the finished runs of an MLflow experiment (``--experiment NAME``) or of one sweep
(``--parent RUN_ID``, the sweep's parent run), groups them by dataset x tokenizer x cell and
summarises each group over its seeds as ``mean ± standard deviation``. Writes ``report.md``,
``runs.csv`` and three plots into a folder, logs them as artifacts of the parent run when one is
given, and prints the tables.

    capx report --experiment char_vs_word
    capx report --parent 0123abcd... --out /tmp/report --tracking-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from capx import tracking

# (column title, metric name, scale, decimals); the headline table first, then the details.
HEADLINE = [
    ("params", "params/total", 1, 0),
    ("bits/char ↓", "test/bits_per_char", 1, 3),
    ("NLL/caption ↓", "test/nll_per_caption", 1, 2),
    ("BLEU-4 ↑", "test/bleu4", 1, 3),
    ("CIDEr-D ↑", "test/cider", 1, 3),
    ("invented words %", "test/invented_word_rate", 100, 1),
    ("s/epoch", "test/seconds_per_epoch", 1, 2),
]
QUALITY = [
    ("BLEU-1", "test/bleu1", 1, 3), ("BLEU-2", "test/bleu2", 1, 3),
    ("BLEU-3", "test/bleu3", 1, 3), ("BLEU-4", "test/bleu4", 1, 3),
    ("CIDEr-D", "test/cider", 1, 3),
    ("bits/char", "test/bits_per_char", 1, 3), ("NLL/caption", "test/nll_per_caption", 1, 2),
    ("best val bits/char (any epoch)", "best_val_bits_per_char", 1, 3),
    ("perplexity per token", "token_perplexity", 1, 2),
    ("invented words %", "test/invented_word_rate", 100, 1),
    ("no `<END>` %", "test/no_end_rate", 100, 1),
    ("`<UNK>` in refs %", "test/unk_rate_reference", 100, 2),
    ("`<UNK>` in output %", "test/unk_rate_output", 100, 2),
]
COST = [
    ("params", "params/total", 1, 0),
    ("image projection", "params/group/image projection", 1, 0),
    ("embedding", "params/group/embedding", 1, 0),
    ("recurrent", "params/group/recurrent", 1, 0),
    ("output", "params/group/output", 1, 0),
    ("tokens/caption (train)", "data/train_tokens_per_caption", 1, 1),
    ("tokens/caption (output)", "test/output_tokens_per_caption", 1, 1),
    ("s/epoch", "test/seconds_per_epoch", 1, 2),
    ("train tokens/s", "test/train_tokens_per_second", 1, 0),
    ("captions/s decoded", "test/captions_per_second", 1, 0),
    ("train step peak MB", "test/train_step_peak_memory_mb", 1, 1),
    ("decode peak MB", "test/decode_peak_memory_mb", 1, 1),
]
CURVE_METRIC = "val/bits_per_char"
TIME_METRIC = "time/train_seconds"


class ReportError(ValueError):
    """Nothing to report: unknown experiment or run, or no finished runs."""


@dataclass
class RunRecord:
    """One finished job: its labels, final metrics and validation curve."""

    run_id: str
    name: str
    dataset: str
    tokenizer: str
    cell: str
    seed: str
    metrics: dict[str, float]
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (epoch, seconds, bpc)
    settings: dict[str, str] = field(default_factory=dict)  # the config, less what seeds vary

    @property
    def group(self) -> tuple[str, str, str]:
        return self.dataset, self.tokenizer, self.cell

    def value(self, metric: str) -> float:
        if metric == "token_perplexity":
            metric = f"test/{self.tokenizer}_token_perplexity"
        if metric == "best_val_bits_per_char":  # the lowest point of the validation curve
            return min((bpc for *_, bpc in self.curve), default=math.nan)
        return self.metrics.get(metric, math.nan)


# -- reading the runs -------------------------------------------------------------------------

#: params that may differ between the seeds of one setting (or say nothing about the model)
NOT_SETTINGS = ("seed", "resume", "progress", "plugins", "tracking.", "checkpoint.")


def find_runs(client: Any, experiment: str | None = None,
              parent: str | None = None) -> tuple[list[Any], str | None]:
    """The finished job runs to report, and the parent run id (when reporting one sweep)."""
    if parent:
        try:
            parent_run = client.get_run(parent)
        except Exception as exc:  # noqa: BLE001 - MLflow raises its own error types
            raise ReportError(f"no run {parent!r} in the tracking store: {exc}") from exc
        runs = tracking.retry(lambda: client.search_runs(
            [parent_run.info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent}'", max_results=5000),
            "reading the sweep's runs")
    else:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            names = [e.name for e in client.search_experiments()]
            raise ReportError(f"no MLflow experiment named {experiment!r}; experiments in this "
                              f"store: {', '.join(names) or '(none)'}")
        runs = tracking.retry(lambda: client.search_runs([found.experiment_id],
                                                         max_results=5000), "reading the runs")
        runs = [r for r in runs if tracking.SWEEP_TAG not in r.data.tags]  # not parents
    finished = [r for r in runs if r.info.status == "FINISHED"]
    if not finished:
        where = f"sweep run {parent}" if parent else f"experiment {experiment!r}"
        raise ReportError(f"{where} has no finished runs ({len(runs)} run(s) in other states)")
    return finished, parent


def run_record(client: Any, run: Any) -> RunRecord:
    """Labels from the run's tags, final metrics, and the per-epoch validation curve."""
    tags, metrics = run.data.tags, dict(run.data.metrics)
    history = {key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
               for key in (CURVE_METRIC, TIME_METRIC)}
    curve = [(step, history[TIME_METRIC].get(step, math.nan), bpc)
             for step, bpc in sorted(history[CURVE_METRIC].items())]
    settings = {k: v for k, v in run.data.params.items() if not k.startswith(NOT_SETTINGS)}
    return RunRecord(run.info.run_id, run.info.run_name or run.info.run_id[:8],
                     tags.get("dataset", "?"), tags.get("tokenizer", "?"), tags.get("cell", "?"),
                     tags.get("seed", "?"), metrics, curve, settings)


# -- tables -----------------------------------------------------------------------------------


def group_runs(records: Sequence[RunRecord]) -> dict[tuple[str, str, str], list[RunRecord]]:
    """Rows of dataset x tokenizer x cell whose runs differ only in their seed.

    Runs of one row with other settings (e.g. a 1-epoch smoke run beside a full one) are not
    averaged as seeds: each setting gets its own row, labelled with what differs.
    """
    by_label: dict[tuple[str, str, str], list[RunRecord]] = {}
    for record in sorted(records, key=lambda r: (r.group, r.seed)):
        by_label.setdefault(record.group, []).append(record)
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for (dataset, tokenizer, cell), members in by_label.items():
        variants: dict[frozenset, list[RunRecord]] = {}
        for record in members:
            variants.setdefault(frozenset(record.settings.items()), []).append(record)
        common = set.intersection(*(set(variant) for variant in variants))
        keys = sorted({k for variant in variants for k, _ in variant - common})
        for variant, runs in variants.items():
            values = dict(variant)
            label = cell if not keys else cell + " [" + ", ".join(
                f"{k}={values.get(k, '-')}" for k in keys) + "]"
            groups[(dataset, tokenizer, label)] = runs
    return groups


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value) of the finite values."""
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if not finite.size:
        return math.nan, math.nan
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else 0.0


def format_cell(values: Sequence[float], scale: float, decimals: int) -> str:
    mean, spread = mean_spread([v * scale for v in values])
    if math.isnan(mean):
        return "–"
    if decimals == 0:
        text = f"{mean:,.0f}"
        return text if spread == 0 else f"{text} ± {spread:,.0f}"
    return f"{mean:.{decimals}f} ± {spread:.{decimals}f}"


def markdown_table(groups: dict[tuple[str, str, str], list[RunRecord]],
                   columns: Sequence[tuple[str, str, float, int]]) -> str:
    """One row per dataset x tokenizer x cell: ``mean ± std`` over the seeds of each column."""
    with_dataset = len({key[0] for key in groups}) > 1
    head = (["dataset"] if with_dataset else []) + ["tokenizer", "cell", "seeds"]
    head += [title for title, *_ in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (dataset, tokenizer, cell), records in groups.items():
        row = ([dataset] if with_dataset else []) + [tokenizer, cell, str(len(records))]
        for _, metric, scale, decimals in columns:
            row.append(format_cell([r.value(metric) for r in records], scale, decimals))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def report_markdown(groups: dict[tuple[str, str, str], list[RunRecord]], source: str,
                    figures: Sequence[str]) -> str:
    runs = sum(len(r) for r in groups.values())
    parts = [
        f"# Report: {source}", "",
        f"{runs} finished run(s); each cell is mean ± standard deviation over seeds. Quality "
        "metrics are of the last-epoch model on the val split; bits/char and NLL/caption score "
        "the same canonical reference strings for every tokenizer; per-token perplexity is per "
        "the tokenizer's own token (not comparable across tokenizers).", "",
        "## Headline", "", markdown_table(groups, HEADLINE), "",
        "## Quality and failure modes", "", markdown_table(groups, QUALITY), "",
        "## Cost", "", markdown_table(groups, COST), "",
        "## Figures", "",
    ]
    parts += [f"![{name}]({name})" for name in figures]
    parts += ["", "## Runs", "", "| run | dataset | tokenizer | cell | seed | run id |",
              "|---|---|---|---|---|---|"]
    for records in groups.values():
        parts += [f"| {r.name} | {r.dataset} | {r.tokenizer} | {r.cell} | {r.seed} | "
                  f"{r.run_id} |" for r in records]
    return "\n".join(parts) + "\n"


def write_csv(records: Sequence[RunRecord], path: Path) -> None:
    keys = sorted({k for r in records for k in r.metrics if not k.startswith("train/")})
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run_id", "name", "dataset", "tokenizer", "cell", "seed", *keys])
        for r in records:
            writer.writerow([r.run_id, r.name, r.dataset, r.tokenizer, r.cell, r.seed,
                             *[r.metrics.get(k, "") for k in keys]])


# -- plots ------------------------------------------------------------------------------------


def _style(groups: dict) -> dict[tuple[str, str, str], dict[str, Any]]:
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    tokenizers = sorted({k[1] for k in groups})
    cells = sorted({k[2] for k in groups})
    datasets = sorted({k[0] for k in groups})
    lines, markers = ["-", "--", ":", "-."], ["o", "s", "^", "D", "v"]
    return {key: {"color": colors[tokenizers.index(key[1]) % len(colors)],
                  "linestyle": lines[cells.index(key[2]) % len(lines)],
                  "marker": markers[(datasets.index(key[0]) + cells.index(key[2])) % len(markers)],
                  "label": " ".join(([key[0]] if len(datasets) > 1 else []) + [key[1], key[2]])}
            for key in groups}


def curve_figure(groups: dict[tuple[str, str, str], list[RunRecord]], x_axis: str):
    """Validation bits per character per epoch, against training seconds or epochs."""
    import capx.plots  # noqa: F401  (selects the Agg backend)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, style in _style(groups).items():
        for i, record in enumerate(groups[key]):
            if not record.curve:
                continue
            epochs, seconds, bpc = zip(*record.curve)
            xs = seconds if x_axis == "time" else epochs
            ax.plot(xs, bpc, color=style["color"], linestyle=style["linestyle"],
                    marker=style["marker"], markersize=3, lw=1.3, alpha=0.85,
                    label=style["label"] if i == 0 else None)
    ax.set_xlabel("training wall-clock time (s, validation excluded)" if x_axis == "time"
                  else "epoch")
    ax.set_ylabel("validation bits per character")
    ax.set_title("Validation bits/char (one line per seed)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def quality_figure(groups: dict[tuple[str, str, str], list[RunRecord]]):
    """CIDEr-D and BLEU-4 against the parameter count (mean ± std over seeds)."""
    import capx.plots  # noqa: F401
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, (metric, title) in zip(axes, (("test/cider", "CIDEr-D"), ("test/bleu4", "BLEU-4"))):
        for key, style in _style(groups).items():
            records = groups[key]
            params, _ = mean_spread([r.value("params/total") for r in records])
            mean, spread = mean_spread([r.value(metric) for r in records])
            ax.errorbar([params], [mean], yerr=[spread], color=style["color"],
                        marker=style["marker"], markersize=7, capsize=4, label=style["label"])
        ax.set_xlabel("parameters")
        ax.set_ylabel(title)
        ax.set_title(f"{title} vs parameters")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    return fig


FIGURES = {
    "val_bits_per_char_vs_time.png": lambda g: curve_figure(g, "time"),
    "val_bits_per_char_vs_epoch.png": lambda g: curve_figure(g, "epoch"),
    "quality_vs_params.png": quality_figure,
}


# -- the command ------------------------------------------------------------------------------


def make_report(uri: str, out_dir: Path, experiment: str | None = None,
                parent: str | None = None) -> tuple[str, list[Path]]:
    """Write the report; returns its Markdown and the files written (logged to ``parent``)."""
    if bool(experiment) == bool(parent):
        raise ReportError("give either an experiment name (--experiment) or a sweep's parent "
                          "run id (--parent), not both")
    import matplotlib.pyplot as plt

    client = tracking.make_client(uri)
    runs, parent = find_runs(client, experiment, parent)
    records = [run_record(client, run) for run in runs]
    groups = group_runs(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in FIGURES.items():
        fig = make(groups)
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        written.append(out_dir / name)
    source = f"sweep run {parent}" if parent else f"experiment {experiment}"
    text = report_markdown(groups, source, list(FIGURES))
    (out_dir / "report.md").write_text(text)
    write_csv(records, out_dir / "runs.csv")
    written += [out_dir / "report.md", out_dir / "runs.csv"]
    if parent:
        tracker = tracking.Tracker(client, parent, uri)
        for path in written:
            tracker.log_artifact(path, "report")
    return text, written


from hydra.experimental.callback import Callback as HydraCallback  # noqa: E402


class ReportCallback(HydraCallback):
    """Hydra callback: when a sweep ends, report it into ``<sweep dir>/report`` and log the
    report to the sweep's parent run (what ``capx report --parent ...`` would do)."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        import logging

        log = logging.getLogger(__name__)
        try:
            sweep_dir = Path(str(config.hydra.sweep.dir))
            if not sweep_dir.is_absolute():
                sweep_dir = Path(str(config.hydra.runtime.cwd)) / sweep_dir
            id_file = sweep_dir / tracking.PARENT_ID_FILE
            if not config.tracking.enabled or not id_file.is_file():
                return
            uri = tracking.tracking_uri(config.tracking.get("uri"), config.hydra.runtime.cwd)
            text, _ = make_report(uri, sweep_dir / "report", parent=id_file.read_text().strip())
            print(text)
            log.info("report written to %s", sweep_dir / "report")
        except Exception as exc:  # noqa: BLE001 - a finished sweep must not fail over its report
            log.warning("could not write the sweep's report: %s", exc)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--experiment", help="MLflow experiment name (all its finished runs)")
    which.add_argument("--parent", help="a sweep's parent run id (its finished child runs; the "
                                        "report is also logged to it as artifacts)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                             "sqlite:///mlflow.db in the current folder)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: report/<experiment or parent run id>)")


def main(args: argparse.Namespace) -> int:
    uri = tracking.tracking_uri(args.tracking_uri, Path.cwd())
    out = args.out or Path("report") / (args.experiment or args.parent)
    try:
        text, written = make_report(uri, out, args.experiment, args.parent)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(text)
    print(f"wrote {len(written)} files to {out.resolve()}"
          + (f" and logged them to run {args.parent} under report/" if args.parent else ""))
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m capx.report", description=__doc__.split(
        "\n")[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
