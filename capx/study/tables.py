"""A study's runs as rows of a table, with 95% confidence intervals and paired comparisons.

Input: export records (see :mod:`capx.study.export`), one per finished run. A *row* is one setting:
runs whose configs agree on everything but the model seed and the fold. Runs with other settings
are never averaged together; each setting gets its row, labelled with what differs.

Point estimates pool the test images of all runs of a row (bits/char: total NLL over total
characters; CIDEr-D: mean over images; BLEU-4: corpus BLEU from the summed n-gram counts). The
headline interval is a t interval over folds: the metric of each run, averaged over a fold's
seeds (they share its training split and test images, so they are not independent replicates of
the test sampling), K folds, K - 1 degrees of freedom; runs without a fold (a fixed split) each
count once. Its coverage does not depend on how the variance splits between runs and images,
which a bootstrap over only 5 folds gets wrong (too narrow when runs differ a lot, too wide when
they do not). A two-level bootstrap (runs, then images within each run) is kept as a second
opinion. A comparison of two rows pairs their runs by (fold, seed), so both sides of a pair
score the same images; its t interval and t-test p are over the per-pair differences, averaged
within each fold in the same way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from capx.study import statistics
from capx.study.per_image import (METRIC_BOUNDS, PER_IMAGE_METRICS, PER_IMAGE_STATISTICS,
                                  REQUIRED_COLUMNS, per_image)
from capx.tracking import names

#: params that vary between the runs of one row, or say nothing about the model
NOT_SETTINGS = ("seed", "split.fold", "resume", "progress", "plugins", "tracking.",
                "memory_limit_gb", "checkpoint.", "evaluation.num_samples", "evaluation.measure_memory",
                "dataset.base_dir", "dataset.captions_file", "dataset.exclude_files")


@dataclass
class Row:
    """Runs of one setting: a label and the export records."""

    tokenizer: str
    cell: str
    size: str
    extra: str
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " ".join(x for x in (self.tokenizer, self.cell, self.size, self.extra) if x)

    def values(self, metric: str) -> np.ndarray:
        return np.array([record_metric(r, metric) for r in self.records], dtype=float)

    def mean(self, metric: str) -> float:
        values = self.values(metric)
        values = values[np.isfinite(values)]
        return float(values.mean()) if len(values) else math.nan

    def runs_label(self) -> str:
        folds = {r["labels"].get("fold", "") for r in self.records} - {""}
        seeds = {r["labels"].get("seed", "") for r in self.records}
        if folds:
            return f"{len(self.records)} ({len(folds)} folds x {len(seeds)} seeds)"
        return f"{len(self.records)} ({len(seeds)} seeds)"

    def pair_key(self, record: dict[str, Any]) -> tuple[str, str]:
        return record["labels"].get("fold", ""), record["labels"].get("seed", "")


def fold_means(values: Sequence[float], records: Sequence[dict[str, Any]]) -> np.ndarray:
    """``values`` (one per record) averaged within each fold, in fold order: the units a t
    interval counts. A record without a fold label is a unit of its own; a non-finite value
    (a run without the metric) is left out."""
    groups: dict[Any, list[float]] = {}
    for n, (value, record) in enumerate(zip(values, records, strict=True)):
        if not math.isfinite(value):
            continue
        fold = record.get("labels", {}).get("fold", "")
        groups.setdefault(fold if fold != "" else ("run", n), []).append(float(value))
    return np.array([np.mean(v) for v in groups.values()], dtype=float)


def record_metric(record: dict[str, Any], metric: str) -> float:
    """A run's metric (``best_dev_bits_per_char``: the minimum of its dev curve); NaN if absent."""
    if metric == "best_dev_bits_per_char":
        curve = record.get("curves", {}).get(names.VAL_BITS_PER_CHAR) or []
        return min((v for _, v in curve), default=math.nan)
    value = record.get("metrics", {}).get(metric)
    return math.nan if value is None else float(value)


def param(record: dict[str, Any], key: str) -> str | None:
    """A logged config value; None when absent or null."""
    value = record.get("params", {}).get(key)
    return None if value in (None, "None", "null", "") else str(value)


def tokenizer_label(record: dict[str, Any]) -> str:
    """``char``, ``word``, or ``bpe1000`` (a subword tokenizer named with its size)."""
    name = record["labels"].get("tokenizer", "?")
    size = param(record, "tokenizer.vocab_size")
    return f"{name}{size}" if size else name


def size_label(record: dict[str, Any]) -> str:
    budget = param(record, "model.param_budget")
    if budget:
        return f"~{int(float(budget)) // 1000}k params"
    return f"H={param(record, 'model.hidden_dim') or '?'}"


def settings(record: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in record.get("params", {}).items() if not k.startswith(NOT_SETTINGS)}


def make_rows(records: Sequence[dict[str, Any]]) -> list[Row]:
    """Group runs by setting; label rows of one tokenizer x cell x size by what else differs."""
    by_setting: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        head = (tokenizer_label(record), record["labels"].get("cell", "?"), size_label(record))
        by_setting.setdefault((head, frozenset(settings(record).items())), []).append(record)
    labelled: dict[tuple[str, str, str], list[frozenset]] = {}
    for head, key in by_setting:
        labelled.setdefault(head, []).append(key)
    rows = []
    for head, keys in labelled.items():
        common = set.intersection(*(set(k) for k in keys))
        differing = sorted({name for k in keys for name, _ in set(k) - common})
        for key in keys:
            values = dict(key)
            extra = ", ".join(f"{name}={values.get(name, '-')}" for name in differing)
            rows.append(Row(*head, extra=f"[{extra}]" if extra else "",
                            records=sorted(by_setting[(head, key)],
                                           key=lambda r: str(r["labels"]))))
    return sorted(rows, key=lambda r: (_natural(r.size), r.cell, _tokenizer_order(r.tokenizer),
                                       _natural(r.extra)))


def _natural(text: str) -> list[tuple[int, Any]]:
    """A sort key that orders the numbers in a label by value: 500 before 1000, ~250k before
    ~1000k."""
    return [(0, int(part)) if part.isdigit() else (1, part)
            for part in re.split(r"(\d+)", text) if part]


def _tokenizer_order(label: str) -> tuple[int, int]:
    if label.startswith("char"):
        return 0, 0
    if label.startswith("word"):
        return 2, 0
    digits = "".join(c for c in label if c.isdigit())
    return 1, int(digits) if digits else 0


def _per_image_runs(row: Row, metric: str) -> list[dict[str, np.ndarray]] | None:
    runs = [per_image(r) for r in row.records]
    needed = REQUIRED_COLUMNS.get(metric, {"missing"})
    return runs if runs and all(r is not None and needed <= set(r) for r in runs) else None


def pooled_value(runs: Sequence[dict[str, np.ndarray]], metric: str) -> float:
    """``metric`` over the test images of all ``runs`` (their per-image columns), each run's
    images weighed within that run first: the stress test's quarter of images is each run's
    own, as in the paired comparisons, not a quarter of the images pooled."""
    if metric in PER_IMAGE_STATISTICS:
        parts = [PER_IMAGE_STATISTICS[metric](r) for r in runs]
        columns = np.concatenate([p.columns for p in parts])
        columns = columns[np.isfinite(columns).all(axis=1)]  # images without references
        return float(parts[0].of_totals(columns.sum(axis=0)))
    return PER_IMAGE_METRICS[metric]({k: np.concatenate([r[k] for r in runs]) for k in runs[0]})


def row_interval(row: Row, metric: str) -> tuple[float, float, float]:
    """(estimate, low, high): the metric pooled over the row's test images, with a t interval
    over its folds (each fold's runs averaged; clipped to the metric's range; NaN bounds for a
    single fold).

    Without per-image scores: the mean over runs and the same t interval (NaN when no run has
    the metric).
    """
    runs = _per_image_runs(row, metric)
    if runs is not None:
        statistic = PER_IMAGE_METRICS[metric]
        pooled = pooled_value(runs, metric)
        per_run = statistics.mean_ci(fold_means([statistic(r) for r in runs], row.records),
                                     method="t")
        low = pooled - (per_run.mean - per_run.low)
        high = pooled + (per_run.high - per_run.mean)
        floor, ceiling = METRIC_BOUNDS.get(metric, (None, None))
        low = low if floor is None else max(low, floor)
        high = high if ceiling is None else min(high, ceiling)
        return float(pooled), float(low), float(high)
    units = fold_means(row.values(f"{names.TEST}{metric}"), row.records)
    if not len(units):
        return math.nan, math.nan, math.nan
    interval = statistics.mean_ci(units, method="t", bounds=METRIC_BOUNDS.get(metric, (None, None)))
    return interval.mean, interval.low, interval.high


@dataclass
class Comparison:
    """A difference ``a - b`` of one metric over paired runs: the pooled estimate, the t
    interval and t-test p over the per-pair differences, and the two-level bootstrap interval."""

    a: Row
    b: Row
    metric: str
    pairs: int
    estimate: float
    low: float
    high: float
    p_value: float
    boot_low: float
    boot_high: float
    preregistered: bool = True
    p_holm: float = math.nan


def compare(a: Row, b: Row, metric: str, n_boot: int = 2000, seed: int = 0) -> Comparison | None:
    """``a - b`` on ``metric`` over runs paired by fold and seed (the same test images)."""
    statistic = PER_IMAGE_METRICS[metric]
    b_by_key = {b.pair_key(r): r for r in b.records}
    pairs, paired_records = [], []
    for record in a.records:
        other = b_by_key.get(a.pair_key(record))
        left, right = per_image(record), per_image(other) if other else None
        needed = REQUIRED_COLUMNS.get(metric, set())
        if left is None or right is None or not (needed <= set(left) and needed <= set(right)):
            continue  # not scored per image (or exported before this metric was)
        same_images = (record["per_image"].get("image_id") == other["per_image"].get("image_id")
                       and len(left["chars"]) == len(right["chars"]))
        if not same_images:
            raise ValueError(f"runs {record['run_id']} and {other['run_id']} share fold and seed "
                             "but scored different test images: they cannot be paired")
        pairs.append((left, right))
        paired_records.append(record)
    if not pairs:
        return None
    estimate, boot_low, boot_high = statistics.paired_two_level_interval(
        pairs, PER_IMAGE_STATISTICS[metric], n_boot=n_boot, seed=seed)
    differences = fold_means([statistic(left) - statistic(right) for left, right in pairs],
                             paired_records)
    interval = statistics.mean_ci(differences, method="t")
    half_low, half_high = interval.mean - interval.low, interval.high - interval.mean
    return Comparison(a, b, metric, len(pairs), estimate, estimate - half_low,
                      estimate + half_high, statistics.t_test_p(differences), boot_low, boot_high)


def preregistered(rows: Sequence[Row], metrics: Sequence[str] = ("bits_per_char", "cider")
                  ) -> list[Comparison]:
    """char - word and each bpe - word, within every cell x size (x other setting).

    A word row that differs only in tokenizer options (e.g. ``tokenizer.min_count``, a
    robustness run) is compared too, each such row on its own. The comparison with the word row
    whose runs started first (the study's own word setting; variants are run after it) is the
    pre-registered one; the others, and those of learning-curve rows and of rows trained
    without the image, are marked exploratory. The pre-registered ones get
    Holm-adjusted p-values over all of them.
    """
    out = []
    for row in rows:
        if row.tokenizer.startswith("word"):
            continue
        words = [w for w in rows if w.tokenizer.startswith("word") and w.cell == row.cell
                 and w.size == row.size and shared_settings(w) == shared_settings(row)]
        first = min(words, key=_first_start, default=None)
        for word in words:
            for metric in metrics:
                found = compare(row, word, metric)
                if found is not None:
                    found.preregistered = (word is first and _full_training_set(row)
                                           and _real_images(row))
                    out.append(found)
    planned = [c for c in out if c.preregistered]
    for c, adjusted in zip(planned, statistics.holm([c.p_value for c in planned])):
        c.p_holm = adjusted
    return out


def _full_training_set(row: Row) -> bool:
    """Learning-curve rows (a share of the training images) are exploratory comparisons."""
    return param(row.records[0], "split.train_percent") in (None, "100")


def _real_images(row: Row) -> bool:
    """Rows trained without the image (``model.image_features=constant``) are controls."""
    return param(row.records[0], "model.image_features") in (None, "real")


def _first_start(row: Row) -> float:
    return min((r.get("start_time") or math.inf for r in row.records), default=math.inf)


#: settings a tokenizer brings or a study chooses per tokenizer (learning rate and dropout, on
#: dev): not part of what two compared rows must share
PER_TOKENIZER = ("tokenizer.", "solver.learning_rate", "model.dropout", "model.wordvec_dim",
                 "study.")


def shared_settings(row: Row) -> dict[str, str]:
    """The settings two rows must share to be compared (all but the per-tokenizer ones)."""
    return {k: v for k, v in settings(row.records[0]).items() if not k.startswith(PER_TOKENIZER)}


def format_interval(estimate: float, low: float, high: float, decimals: int,
                    scale: float = 1.0) -> str:
    if not math.isfinite(estimate):
        return "–"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{estimate * scale:.{decimals}f}"
    return (f"{estimate * scale:.{decimals}f} [{low * scale:.{decimals}f}, "
            f"{high * scale:.{decimals}f}]")
