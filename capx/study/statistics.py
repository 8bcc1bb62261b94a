"""Confidence intervals for comparing captioners: paired bootstrap over images, and over runs.

Two systems scored on the SAME images are compared by resampling those images (with
replacement) and recomputing both corpus metrics on each resample: images are the unit of
generalisation (a new test set is a new sample of images), and pairing (one resample serves
both systems) removes the image-to-image variation the two share. Every metric here is a
function of per-image column totals (a :class:`Statistic`): bits/char is ``sum(nll) / ln 2 /
sum(chars)``, a mean is ``sum(value) / sum(1)``, corpus BLEU a formula of summed n-gram counts
(:func:`capx.metrics.caption_scores.corpus_bleu`). A resample is drawn as how many times each
image is picked, and totals are weighted sums.

With several runs per system (seeds, folds; :func:`paired_bootstrap_runs`) the runs are paired
by (fold, seed): within a pair both systems saw the same training split and were scored on the
same test images. Level 1 resamples pairs (training noise: another seed or fold could have been
drawn), level 2 resamples the images within each drawn pair (test-set noise); the difference is
that of the pooled metrics over all drawn pairs. :func:`mean_ci` gives the interval of one
system's per-run metric (Student t by default: a bootstrap of 3-5 values is too narrow).

Intervals are percentile intervals of the bootstrap differences. SciPy's
``scipy.stats.bootstrap`` resamples one level only, so the two levels are drawn here, in NumPy,
as counts per image and weighted totals. :func:`paired_two_level_interval` takes per-image
column dicts (an Evaluation's ``per_image``) and a statistic of them: one that returns a
:class:`Statistic` goes the same vectorised way, any other is recomputed per resample. Student t
(SciPy's quantile and one-sample test) and Holm's adjustment are :mod:`capx.study.student_t`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from capx.metrics.caption_scores import BLEU_COUNT_COLUMNS, BLEU_ORDER, corpus_bleu
from capx.study.student_t import holm, t_quantile, t_test_p

__all__ = ["Bootstrap", "Columns", "Interval", "Statistic", "as_statistic", "bleu_statistic",
           "holm", "mean_ci", "paired_bootstrap", "paired_bootstrap_runs", "paired_two_level_interval", "ratio",
           "resample_counts", "t_quantile", "t_test_p"]

MAX_DRAWS_PER_CHUNK = 2_000_000  # bootstrap samples are drawn in chunks of about this many picks


@dataclass(frozen=True)
class Statistic:
    """A corpus metric made of per-image columns: ``of_totals(columns.sum(axis=0))``.

    ``of_totals`` maps column totals ``(..., k)`` to metric values ``(...)``, vectorised over
    the leading axes (the bootstrap samples).
    """

    columns: np.ndarray                               # (images, k)
    of_totals: Callable[[np.ndarray], np.ndarray]

    @property
    def value(self) -> float:
        return float(self.of_totals(self.columns.sum(axis=0)))

    def __len__(self) -> int:
        return len(self.columns)


def ratio(num: Any, den: Any = None, scale: float = 1.0) -> Statistic:
    """``scale * sum(num) / sum(den)`` over images; ``den=None`` is the mean of ``num``.

    Bits per char: ``ratio(nll, chars, 1 / math.log(2))``; mean CIDEr: ``ratio(cider)``.
    """
    num = np.asarray(num, dtype=np.float64)
    den = np.ones_like(num) if den is None else np.asarray(den, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError(f"ratio() takes two 1-D arrays of one value per image, got shapes "
                         f"{num.shape} and {den.shape}")
    return Statistic(np.stack([num, den], axis=1),
                     lambda totals: scale * totals[..., 0] / totals[..., 1])


def as_statistic(metric: Any) -> Statistic:
    """A :class:`Statistic` as is; a 1-D array of per-image values as their mean."""
    return metric if isinstance(metric, Statistic) else ratio(metric)


def bleu_statistic(per_image: dict[str, np.ndarray], n: int = BLEU_ORDER) -> Statistic:
    """Corpus BLEU-n (:func:`capx.metrics.caption_scores.corpus_bleu`) as a :class:`Statistic`
    of the per-image counts, for :func:`paired_bootstrap` (images without references are NaN:
    left out)."""
    columns = np.stack([np.asarray(per_image[c], dtype=np.float64) for c in BLEU_COUNT_COLUMNS],
                       axis=1)
    return Statistic(columns, lambda totals: corpus_bleu(
        {c: totals[..., i] for i, c in enumerate(BLEU_COUNT_COLUMNS)}, n))


@dataclass(frozen=True)
class Bootstrap:
    """``difference`` = metric(a) - metric(b) on all images, its percentile interval at ``level``
    and the std of the bootstrap differences; ``p_value``: twice the share of differences on
    the far side of 0 (the smallest 1 - level whose interval excludes 0), capped at 1."""

    difference: float
    low: float
    high: float
    std: float
    level: float
    p_value: float
    images: int
    runs: int = 1
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    def to_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": float(getattr(self, k)) for k in
                ("difference", "low", "high", "std", "level", "p_value", "images", "runs")}


def paired_bootstrap(a: Any, b: Any, *, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> Bootstrap:
    """Interval for metric(a) - metric(b), two systems scored on the same images.

    ``a``, ``b``: :class:`Statistic` (e.g. :func:`ratio`) or 1-D per-image arrays (means),
    rows in the same image order. Images with a non-finite column in either are left out
    (e.g. NaN CIDEr of images without references).
    """
    return paired_bootstrap_runs([(a, b)], n_boot=n_boot, seed=seed, level=level,
                                 resample_runs=False)


def paired_bootstrap_runs(pairs: Sequence[tuple[Any, Any]], *, n_boot: int = 2000,
                          seed: int = 0, level: float = 0.95,
                          resample_runs: bool = True) -> Bootstrap:
    """Two-level paired bootstrap over K matched runs of two systems (see the module notes).

    ``pairs[r] = (a_r, b_r)``: run r of each system (same fold and seed), scored on the same
    images (rows in the same order); runs may have different images (k-fold test folds).
    Level 1 draws K pairs with replacement (``resample_runs``), level 2 the images of each
    drawn pair with replacement; metric totals are pooled over the drawn pairs. The point
    difference pools all pairs once each.
    """
    _check_level(level)
    if not pairs:
        raise ValueError("paired_bootstrap_runs() needs at least one (a, b) pair of runs")
    runs = [_paired_columns(as_statistic(a), as_statistic(b), r) for r, (a, b) in
            enumerate(pairs)]
    of_a, of_b = as_statistic(pairs[0][0]).of_totals, as_statistic(pairs[0][1]).of_totals
    total_a = sum(cols_a.sum(axis=0) for cols_a, _ in runs)
    total_b = sum(cols_b.sum(axis=0) for _, cols_b in runs)
    difference = float(of_a(total_a) - of_b(total_b))

    rng = np.random.default_rng(seed)
    sizes = np.array([len(cols_a) for cols_a, _ in runs])
    chunk = max(1, MAX_DRAWS_PER_CHUNK // max(int(sizes.sum()), 1))
    samples = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        if resample_runs:  # level 1: how often each pair is drawn
            picks = rng.multinomial(len(runs), np.full(len(runs), 1 / len(runs)), size=rows)
        else:
            picks = np.ones((rows, len(runs)), dtype=np.int64)
        sum_a, sum_b = 0.0, 0.0
        for r, (cols_a, cols_b) in enumerate(runs):  # level 2: images of each drawn pair
            weights = resample_counts(rng, picks[:, r] * sizes[r], sizes[r])
            sum_a = sum_a + weights @ cols_a
            sum_b = sum_b + weights @ cols_b
        with np.errstate(divide="ignore", invalid="ignore"):
            samples[start:start + rows] = of_a(sum_a) - of_b(sum_b)
    return _summarise(difference, samples, level, images=int(sizes.sum()), runs=len(runs))


def resample_counts(rng: np.random.Generator, draws: np.ndarray, n: int) -> np.ndarray:
    """``(len(draws), n)``: for each row, how often each of ``n`` items is picked in
    ``draws[row]`` uniform draws with replacement."""
    draws = np.asarray(draws, dtype=np.int64)
    if n == 0:
        return np.zeros((len(draws), 0), dtype=np.int64)
    row_of_draw = np.repeat(np.arange(len(draws)), draws)
    picked = rng.integers(0, n, size=len(row_of_draw))
    return np.bincount(row_of_draw * n + picked, minlength=len(draws) * n).reshape(len(draws), n)


@dataclass(frozen=True)
class Interval:
    """``mean`` of per-run values with its interval at ``level`` (``method`` "t" or
    "bootstrap"), clipped to the metric's range; ``std`` is the runs' sample std."""

    mean: float
    low: float
    high: float
    std: float
    level: float
    runs: int
    method: str

    def to_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": float(getattr(self, k)) for k in
                ("mean", "low", "high", "std", "level", "runs")}


def mean_ci(values: Any, *, level: float = 0.95, method: str = "t",
            bounds: tuple[float | None, float | None] = (None, None), n_boot: int = 2000,
            seed: int = 0) -> Interval:
    """Interval for the mean of one system's metric over its runs (seeds, folds).

    ``method="t"``: mean +- t(level, K - 1) * std / sqrt(K), the honest choice for a few runs;
    ``"bootstrap"``: percentile interval of resampled means. ``bounds``: the metric's range
    (e.g. ``(0, None)`` for CIDEr, ``(0, 1)`` for BLEU); the interval is clipped to it.
    """
    _check_level(level)
    if method not in ("t", "bootstrap"):
        raise ValueError(f"mean_ci method must be 't' or 'bootstrap', got {method!r}")
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    k = len(values)
    if k == 0:
        raise ValueError("mean_ci() needs at least one finite value")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if k > 1 else math.nan
    if k == 1:  # no spread to go by
        low, high = (mean, mean) if method == "bootstrap" else (math.nan, math.nan)
    elif method == "t":
        half = t_quantile((1 + level) / 2, k - 1) * std / math.sqrt(k)
        low, high = mean - half, mean + half
    else:
        means = resample_counts(np.random.default_rng(seed), np.full(n_boot, k), k) @ values / k
        low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    if bounds != (None, None):
        low, high = np.clip([low, high], *bounds)
    return Interval(mean, float(low), float(high), std, level, k, method)


# -- the same bootstraps for any statistic of per-image column dicts -------------------------------

Columns = dict  # {column name: (images,) array}, e.g. an Evaluation's per_image


def paired_two_level_interval(pairs: Sequence[tuple[Columns, Columns]],
                              statistic: Callable[[Columns], Statistic | float], *,
                              n_boot: int = 2000, seed: int = 0,
                              level: float = 0.95) -> tuple[float, float, float]:
    """(estimate, low, high) of ``statistic(a) - statistic(b)`` over runs paired by (fold,
    seed): pairs drawn with replacement, then images within each drawn pair, the same images
    for both systems.

    ``statistic`` maps a run's per-image columns to a :class:`Statistic` (a function of column
    totals, e.g. ``lambda c: ratio(c["nll_open"], c["chars"], 1 / math.log(2))``): the resamples
    are then weighted totals, drawn in NumPy by :func:`paired_bootstrap_runs` (images with a
    non-finite column in either system are left out). Any other statistic (a float of the
    columns, e.g. a median) is recomputed on each resample in a Python loop, which is slower."""
    if not pairs:
        raise ValueError("no runs to resample")
    if isinstance(statistic(pairs[0][0]), Statistic):
        result = paired_bootstrap_runs([(statistic(a), statistic(b)) for a, b in pairs],
                                       n_boot=n_boot, seed=seed, level=level)
        return result.difference, result.low, result.high
    estimate, samples = _resampled_statistics(
        pairs, lambda a, b: statistic(a) - statistic(b), n_boot, seed)
    low, high = _percentiles(samples, level)
    return float(estimate), float(low), float(high)


def _resampled_statistics(pairs: Sequence[tuple[Columns, Columns]],
                          of_pair: Callable[[Columns, Columns], float], n_boot: int,
                          seed: int) -> tuple[float, np.ndarray]:
    """``of_pair`` on all pairs pooled, and on ``n_boot`` two-level resamples of them."""
    if not pairs:
        raise ValueError("no runs to resample")
    sizes = [len(next(iter(a.values()))) for a, _ in pairs]
    rng = np.random.default_rng(seed)

    def pooled(picks: list[np.ndarray]) -> tuple[Columns, Columns]:
        return tuple({k: np.concatenate([np.asarray(pair[side][k])[rows]
                                         for pair, rows in zip(pairs, picks)])
                      for k in pairs[0][side]} for side in (0, 1))

    estimate = of_pair(*pooled([np.arange(n) for n in sizes]))
    samples = np.empty(n_boot)
    for i in range(n_boot):
        drawn = rng.multinomial(len(pairs), np.full(len(pairs), 1 / len(pairs)))
        picks = [rng.integers(0, n, size=c * n) for n, c in zip(sizes, drawn)]
        with np.errstate(divide="ignore", invalid="ignore"):
            samples[i] = of_pair(*pooled(picks))
    return float(estimate), samples


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    _check_level(level)
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return math.nan, math.nan
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _paired_columns(a: Statistic, b: Statistic, run: int) -> tuple[np.ndarray, np.ndarray]:
    if len(a) != len(b):
        raise ValueError(f"run {run}: {len(a)} images for system a but {len(b)} for system b; "
                         "a paired bootstrap needs both scored on the same images")
    keep = np.isfinite(a.columns).all(axis=1) & np.isfinite(b.columns).all(axis=1)
    return a.columns[keep], b.columns[keep]


def _summarise(difference: float, samples: np.ndarray, level: float, images: int,
               runs: int) -> Bootstrap:
    finite = samples[np.isfinite(samples)]
    low, high = _percentiles(samples, level)
    p_value = min(1.0, 2 * min(np.mean(finite <= 0), np.mean(finite >= 0))) if len(finite) else (
        math.nan)
    return Bootstrap(difference, float(low), float(high),
                     float(finite.std(ddof=1)) if len(finite) > 1 else math.nan, level,
                     float(p_value), images, runs, samples)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"the confidence level must be between 0 and 1, got {level!r}")
