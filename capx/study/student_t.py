"""Student's t distribution and the tests built on it, for :mod:`capx.study.statistics` and the study tables.

:func:`t_quantile` (for t intervals of a few runs' metric), :func:`t_test_p` (the one-sample
t test of paired per-run differences) and :func:`holm` (Holm-Bonferroni adjusted p-values of a
family of comparisons). The distribution function is closed-form for integer degrees of
freedom, so no SciPy is needed.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np


def t_test_p(values: Any) -> float:
    """Two-sided p of a one-sample t test that the mean of ``values`` is 0 (NaN for < 2 values)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    k = len(values)
    if k < 2:
        return math.nan
    std = float(values.std(ddof=1))
    if std == 0:
        return 0.0 if values.mean() != 0 else 1.0
    t = abs(float(values.mean())) / (std / math.sqrt(k))
    return 1.0 - _t_central(t, k - 1)


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
    """The p-quantile of Student's t with integer ``df`` degrees of freedom (bisection on the
    closed-form distribution function, Abramowitz & Stegun 26.7.3-4)."""
    if isinstance(df, bool) or int(df) != df or df < 1:
        raise ValueError(f"t_quantile needs an integer df >= 1, got {df!r}")
    if not 0 < p < 1:
        raise ValueError(f"t_quantile needs 0 < p < 1, got {p!r}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    target = 2 * p - 1  # P(|T| <= t)
    low, high = 0.0, 1.0
    while _t_central(high, int(df)) < target:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if _t_central(middle, int(df)) < target else (low, middle)
    return (low + high) / 2


def _t_central(t: float, df: int) -> float:
    """P(|T| <= t) for t >= 0 and integer df."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    total, term = 0.0, math.cos(theta) if df % 2 else 1.0
    for k in range(1, (df - 1) // 2 + 1 if df % 2 else df // 2 + 1):
        total += term
        term *= cos2 * ((2 * k) / (2 * k + 1) if df % 2 else (2 * k - 1) / (2 * k))
    return 2 / math.pi * (theta + sin * total) if df % 2 else sin * total
