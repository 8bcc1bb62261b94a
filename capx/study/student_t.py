"""Student's t and the tests built on it, for :mod:`capx.study.statistics` and the study tables.

:func:`t_quantile` (for t intervals of a few runs' metric) and :func:`t_test_p` (the one-sample
t test of paired per-run differences) use SciPy's t distribution (``scipy.stats.t.ppf``; the
two-sided tail ``scipy.stats.t.sf`` at ``ttest_1samp``'s statistic), with capx's handling of the
edge cases (fewer than two values, no spread); :func:`holm` (Holm-Bonferroni adjusted p-values of a family of comparisons) is a few
lines here, since SciPy has no Holm adjustment.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats


def t_test_p(values: Any) -> float:
    """Two-sided p of a one-sample t test that the mean of ``values`` is 0 (NaN for < 2 values;
    without spread: 0 for a non-zero mean, 1 for a zero one)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return math.nan
    std = float(values.std(ddof=1))
    if std == 0:  # the t statistic is undefined here
        return 0.0 if values.mean() != 0 else 1.0
    # scipy.stats.ttest_1samp's statistic, without its precision warning for nearly equal values
    t = abs(float(values.mean())) / (std / math.sqrt(len(values)))
    return float(2 * stats.t.sf(t, len(values) - 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    finite = [(p, i) for i, p in enumerate(p_values) if p == p]
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (len(finite) - rank) * p))
        adjusted[i] = running
    return adjusted


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with integer ``df`` degrees of freedom."""
    if isinstance(df, bool) or int(df) != df or df < 1:
        raise ValueError(f"t_quantile needs an integer df >= 1, got {df!r}")
    if not 0 < p < 1:
        raise ValueError(f"t_quantile needs 0 < p < 1, got {p!r}")
    return float(stats.t.ppf(p, int(df)))
