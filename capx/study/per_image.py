"""Each study metric computed from a run's per-image test columns (what a run pools and what
the two-level bootstrap resamples): :data:`PER_IMAGE_METRICS` (the corpus value),
:data:`PER_IMAGE_STATISTICS` (the same as a :class:`capx.study.statistics.Statistic`), the
metric's range (:data:`METRIC_BOUNDS`) and the columns it needs (:data:`REQUIRED_COLUMNS`)."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from capx.metrics.caption_scores import BLEU_COUNT_COLUMNS, corpus_bleu
from capx.study import statistics

LN2 = math.log(2)

#: metric -> its corpus value from per-image columns (images are what a run pools)
PER_IMAGE_METRICS: dict[str, Callable[[dict[str, np.ndarray]], float]] = {
    "bits_per_char": lambda c: c["nll_open"].sum() / c["chars"].sum() / LN2,
    "bits_per_char_closed": lambda c: c["nll_closed"].sum() / c["chars"].sum() / LN2,
    "cider": lambda c: float(np.nanmean(c["cider"])),
    "bleu4": lambda c: _corpus_bleu4(c),
}
#: bits/char on reference words unseen / rare / frequent in training (capx.metrics.frequency_bins)
FREQUENCY_BINS = ("unseen", "rare", "frequent")
for _bin in FREQUENCY_BINS:
    PER_IMAGE_METRICS[f"bpc_{_bin}"] = (
        lambda c, b=_bin: _safe_ratio(c[f"nll_{b}"].sum(), c[f"chars_{b}"].sum()) / LN2)
#: caption quality of the beam-search comparison (evaluation.compare_beam): columns beam_*
PER_IMAGE_METRICS["beam_cider"] = lambda c: float(np.nanmean(c["beam_cider"]))
PER_IMAGE_METRICS["beam_bleu4"] = lambda c: _corpus_bleu4(_beam_columns(c))
#: open bits/char with the unknown words spelled by other spellers (speller_sensitivity)
SPELLERS = ("kn3", "kn5", "kn7", "uniform")
for _name in SPELLERS:
    PER_IMAGE_METRICS[f"bits_per_char_speller_{_name}"] = (
        lambda c, n=_name: c[f"nll_open_{n}"].sum() / c["chars"].sum() / LN2)


#: the stress test: open bits/char on the test images richest in words unseen in training,
#: the quarter of a run's images whose references have the largest share of characters in
#: such words. The share reads only the references and the fold's training words, so every
#: tokenizer of a fold selects the same images and comparisons stay paired by image.
UNSEEN_RICH_QUANTILE = 0.75
PER_IMAGE_METRICS["bpc_unseen_rich"] = lambda c: _safe_ratio(
    (c["nll_open"] * unseen_rich(c)).sum(), (c["chars"] * unseen_rich(c)).sum()) / LN2
PER_IMAGE_METRICS["unseen_share_unseen_rich"] = lambda c: _safe_ratio(
    (c["chars_unseen"] * unseen_rich(c)).sum(), (c["chars"] * unseen_rich(c)).sum())

#: metric -> the same metric as a :class:`capx.study.statistics.Statistic` of per-image columns
#: (a function of their totals), which the two-level bootstrap resamples in NumPy
PER_IMAGE_STATISTICS: dict[str, Callable[[dict[str, np.ndarray]], statistics.Statistic]] = {
    "bits_per_char": lambda c: statistics.ratio(c["nll_open"], c["chars"], 1 / LN2),
    "bits_per_char_closed": lambda c: statistics.ratio(c["nll_closed"], c["chars"], 1 / LN2),
    "cider": lambda c: statistics.ratio(c["cider"]),  # images without references: NaN, left out
    "bleu4": lambda c: statistics.bleu_statistic(c),
}
for _bin in FREQUENCY_BINS:
    PER_IMAGE_STATISTICS[f"bpc_{_bin}"] = (
        lambda c, b=_bin: statistics.ratio(c[f"nll_{b}"], c[f"chars_{b}"], 1 / LN2))
PER_IMAGE_STATISTICS["beam_cider"] = lambda c: statistics.ratio(c["beam_cider"])
PER_IMAGE_STATISTICS["beam_bleu4"] = lambda c: statistics.bleu_statistic(_beam_columns(c))
for _name in SPELLERS:
    PER_IMAGE_STATISTICS[f"bits_per_char_speller_{_name}"] = (
        lambda c, n=_name: statistics.ratio(c[f"nll_open_{n}"], c["chars"], 1 / LN2))

PER_IMAGE_STATISTICS["bpc_unseen_rich"] = lambda c: statistics.ratio(
    c["nll_open"] * unseen_rich(c), c["chars"] * unseen_rich(c), 1 / LN2)
PER_IMAGE_STATISTICS["unseen_share_unseen_rich"] = lambda c: statistics.ratio(
    c["chars_unseen"] * unseen_rich(c), c["chars"] * unseen_rich(c))


METRIC_BOUNDS = {"bits_per_char": (0.0, None), "bits_per_char_closed": (0.0, None),
                 "cider": (0.0, None), "bleu4": (0.0, 1.0)}
REQUIRED_COLUMNS = {"bits_per_char": {"nll_open", "chars"},
                    "bits_per_char_closed": {"nll_closed", "chars"}, "cider": {"cider"},
                    "bleu4": {"bleu_hyp_len", "bleu_ref_len", "bleu_correct_4", "bleu_guess_4"}}
for _bin in FREQUENCY_BINS:
    METRIC_BOUNDS[f"bpc_{_bin}"] = (0.0, None)
    REQUIRED_COLUMNS[f"bpc_{_bin}"] = {f"nll_{_bin}", f"chars_{_bin}"}
METRIC_BOUNDS.update({"beam_cider": (0.0, None), "beam_bleu4": (0.0, 1.0)})
REQUIRED_COLUMNS["beam_cider"] = {"beam_cider"}
REQUIRED_COLUMNS["beam_bleu4"] = {f"beam_{c}" for c in REQUIRED_COLUMNS["bleu4"]}
for _name in SPELLERS:
    METRIC_BOUNDS[f"bits_per_char_speller_{_name}"] = (0.0, None)
    REQUIRED_COLUMNS[f"bits_per_char_speller_{_name}"] = {f"nll_open_{_name}", "chars"}

METRIC_BOUNDS["bpc_unseen_rich"] = (0.0, None)
REQUIRED_COLUMNS["bpc_unseen_rich"] = {"nll_open", "chars", "chars_unseen"}
METRIC_BOUNDS["unseen_share_unseen_rich"] = (0.0, 1.0)
REQUIRED_COLUMNS["unseen_share_unseen_rich"] = {"chars", "chars_unseen"}


def unseen_rich(columns: dict[str, np.ndarray]) -> np.ndarray:
    """1.0 for the images of the stress test (see :data:`UNSEEN_RICH_QUANTILE`), else 0.0:
    a share of unseen-word characters at or above the run's upper quartile, and above 0."""
    chars = np.asarray(columns["chars"], dtype=float)
    share = np.divide(columns["chars_unseen"], chars, out=np.zeros_like(chars), where=chars > 0)
    if not len(share):
        return share
    chosen = (share >= np.quantile(share, UNSEEN_RICH_QUANTILE)) & (share > 0)
    return chosen.astype(float)


def _beam_columns(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``beam_*`` per-image columns under the greedy columns' names."""
    return {k.removeprefix("beam_"): v for k, v in columns.items() if k.startswith("beam_")}


def _safe_ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def _corpus_bleu4(columns: dict[str, np.ndarray]) -> float:
    """Corpus BLEU-4 (pycocoevalcap's) from the summed per-image n-gram counts."""
    keep = np.isfinite(columns["bleu_hyp_len"])
    return float(corpus_bleu({c: np.nansum(columns[c][keep]) for c in BLEU_COUNT_COLUMNS}))


def per_image(record: dict[str, Any]) -> dict[str, np.ndarray] | None:
    columns = record.get("per_image")
    if not columns or "nll_open" not in columns:
        return None
    return {k: np.asarray(v, dtype=float) for k, v in columns.items() if k != "image_id"}
