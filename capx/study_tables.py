"""A study's runs as rows of a table, with 95% confidence intervals and paired comparisons.

Input: export records (see :mod:`capx.export`), one per finished run. A *row* is one setting:
runs whose configs agree on everything but the model seed and the fold. Runs with other settings
are never averaged together; each setting gets its row, labelled with what differs.

Intervals come from a two-level bootstrap (:mod:`capx.stats`): runs (folds x seeds) are
resampled, then the test images within each run, and the corpus metric is recomputed on the
pooled resample (bits/char: total NLL over total characters; CIDEr-D: mean over images; BLEU-4: corpus BLEU
from the summed n-gram counts).
A comparison of two rows pairs their runs by (fold, seed), so both sides of a pair score the same
images, and resamples the pairs and then the shared images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from capx import names, stats

#: params that vary between the runs of one row, or say nothing about the model
NOT_SETTINGS = ("seed", "split.fold", "resume", "progress", "plugins", "tracking.",
                "checkpoint.", "evaluation.num_samples", "evaluation.measure_memory",
                "dataset.base_dir", "dataset.captions_file", "dataset.exclude_files")
LN2 = math.log(2)


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
        return np.array([_metric(r, metric) for r in self.records], dtype=float)

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


def _metric(record: dict[str, Any], metric: str) -> float:
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
    return sorted(rows, key=lambda r: (r.size, r.cell, _tokenizer_order(r.tokenizer), r.extra))


def _tokenizer_order(label: str) -> tuple[int, int]:
    if label.startswith("char"):
        return 0, 0
    if label.startswith("word"):
        return 2, 0
    digits = "".join(c for c in label if c.isdigit())
    return 1, int(digits) if digits else 0


# -- per-image statistics -----------------------------------------------------------------------

#: metric -> (corpus statistic of per-image columns, clip range); images are the resampled unit
PER_IMAGE_METRICS: dict[str, tuple[Callable[[dict[str, np.ndarray]], float], tuple[float, float]]] = {
    "bits_per_char": (lambda c: c["nll_open"].sum() / c["chars"].sum() / LN2, (0.0, math.inf)),
    "bits_per_char_closed": (lambda c: c["nll_closed"].sum() / c["chars"].sum() / LN2,
                             (0.0, math.inf)),
    "cider": (lambda c: float(np.nanmean(c["cider"])), (0.0, 10.0)),
    "bleu4": (lambda c: _corpus_bleu4(c), (0.0, 1.0)),
}


METRIC_BOUNDS = {"bits_per_char": (0.0, None), "bits_per_char_closed": (0.0, None),
                 "cider": (0.0, None), "bleu4": (0.0, 1.0)}
REQUIRED_COLUMNS = {"bits_per_char": {"nll_open", "chars"},
                    "bits_per_char_closed": {"nll_closed", "chars"}, "cider": {"cider"},
                    "bleu4": {"bleu_hyp_len", "bleu_ref_len", "bleu_correct_4", "bleu_guess_4"}}


def _corpus_bleu4(columns: dict[str, np.ndarray]) -> float:
    """Corpus BLEU-4 (pycocoevalcap's) from the summed per-image n-gram counts."""
    from capx.metrics.caption_scores import BLEU_COUNT_COLUMNS, corpus_bleu

    keep = np.isfinite(columns["bleu_hyp_len"])
    return float(corpus_bleu({c: np.nansum(columns[c][keep]) for c in BLEU_COUNT_COLUMNS}))


def per_image(record: dict[str, Any]) -> dict[str, np.ndarray] | None:
    columns = record.get("per_image")
    if not columns or "nll_open" not in columns:
        return None
    return {k: np.asarray(v, dtype=float) for k, v in columns.items() if k != "image_id"}


def row_interval(row: Row, metric: str, n_boot: int = 2000, seed: int = 0
                 ) -> tuple[float, float, float]:
    """(estimate, low, high): the pooled metric of the row's runs with a two-level bootstrap CI.

    Falls back to the mean over runs with a t interval over runs when per-image scores are
    missing (NaN when no run has the metric).
    """
    if metric in PER_IMAGE_METRICS:
        runs = [per_image(r) for r in row.records]
        needed = REQUIRED_COLUMNS[metric]
        if runs and all(run is not None and needed <= set(run) for run in runs):
            statistic, clip = PER_IMAGE_METRICS[metric]
            return stats.two_level_interval(runs, statistic, n_boot=n_boot, seed=seed, clip=clip)
    values = row.values(f"{names.TEST}{metric}")
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan, math.nan
    interval = stats.mean_ci(values, method="t", bounds=METRIC_BOUNDS.get(metric, (None, None)))
    return interval.mean, interval.low, interval.high


@dataclass
class Comparison:
    """A pre-registered difference ``a - b`` of one metric, over paired runs."""

    a: Row
    b: Row
    metric: str
    pairs: int
    estimate: float
    low: float
    high: float


def compare(a: Row, b: Row, metric: str, n_boot: int = 2000, seed: int = 0) -> Comparison | None:
    """``a - b`` on ``metric`` with a paired two-level bootstrap CI (pairs: same fold and seed)."""
    statistic, _ = PER_IMAGE_METRICS[metric]
    b_by_key = {b.pair_key(r): r for r in b.records}
    pairs = []
    for record in a.records:
        other = b_by_key.get(a.pair_key(record))
        left, right = per_image(record), per_image(other) if other else None
        if left is None or right is None:
            continue
        same_images = (record["per_image"].get("image_id") == other["per_image"].get("image_id")
                       and len(left["chars"]) == len(right["chars"]))
        if not same_images:
            raise ValueError(f"runs {record['run_id']} and {other['run_id']} share fold and seed "
                             "but scored different test images: they cannot be paired")
        pairs.append((left, right))
    if not pairs:
        return None
    estimate, low, high = stats.paired_two_level_interval(pairs, statistic, n_boot=n_boot,
                                                          seed=seed)
    return Comparison(a, b, metric, len(pairs), estimate, low, high)


def preregistered(rows: Sequence[Row], metrics: Sequence[str] = ("bits_per_char", "cider")
                  ) -> list[Comparison]:
    """char - word and each bpe - word, within every cell x size (x other setting).

    A word row that differs only in tokenizer options (e.g. ``tokenizer.min_count``, a
    robustness run) is compared too, each such row on its own.
    """
    out = []
    for row in rows:
        if row.tokenizer.startswith("word"):
            continue
        words = [w for w in rows if w.tokenizer.startswith("word") and w.cell == row.cell
                 and w.size == row.size
                 and _without_tokenizer_options(w.extra) == _without_tokenizer_options(row.extra)]
        for word in words:
            for metric in metrics:
                found = compare(row, word, metric)
                if found is not None:
                    out.append(found)
    return out


def _without_tokenizer_options(extra: str) -> str:
    items = [item for item in extra.strip("[]").split(", ") if item]
    return ", ".join(item for item in items if not item.startswith("tokenizer."))


def format_interval(estimate: float, low: float, high: float, decimals: int,
                    scale: float = 1.0) -> str:
    if not math.isfinite(estimate):
        return "–"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{estimate * scale:.{decimals}f}"
    return (f"{estimate * scale:.{decimals}f} [{low * scale:.{decimals}f}, "
            f"{high * scale:.{decimals}f}]")
