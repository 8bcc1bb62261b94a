"""A tokenizer option chosen on dev inside each fold, as a row of its own.

The study runs the word model at several ``tokenizer.min_count`` values; which one a user would
pick is itself part of the method. :func:`chosen_on_dev` takes, for every fold and seed, the run
with the lowest best dev bits/char among the values tried, and makes a row of those runs, so the
comparisons of :mod:`capx.study.tables` can pair it with the other tokenizers like any row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from capx.study.tables import Row, param, record_metric, settings


@dataclass
class Selection:
    """A row of runs chosen on dev, and per (fold, seed) the option value each run has."""

    row: Row
    option: str
    chosen: dict[tuple[str, str], str]
    tried: list[str]


def chosen_on_dev(rows: Sequence[Row], option: str = "tokenizer.min_count") -> list[Selection]:
    """For every tokenizer x cell x size whose rows differ only in ``option`` (two values or
    more), the row of the runs with the lowest best dev bits/char per fold and seed that ran
    every value."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        if param(row.records[0], option) is None:
            continue
        rest = {k: v for k, v in settings(row.records[0]).items() if k != option}
        groups.setdefault((row.tokenizer, row.cell, row.size, frozenset(rest.items())),
                          []).append(row)
    out = []
    for (tokenizer, cell, size, _), group in groups.items():
        tried = sorted({param(r.records[0], option) for r in group}, key=_as_number)
        if len(tried) < 2:
            continue
        candidates: dict[tuple[str, str], list[dict]] = {}
        for row in group:
            for record in row.records:
                if math.isfinite(record_metric(record, "best_dev_bits_per_char")):
                    candidates.setdefault(row.pair_key(record), []).append(record)
        # a choice needs every value tried in that fold and seed (extra seeds of one value,
        # run for another purpose, are not a choice)
        best = {key: min(runs, key=lambda r: record_metric(r, "best_dev_bits_per_char"))
                for key, runs in candidates.items()
                if {param(r, option) for r in runs} == set(tried)}
        if not best:
            continue
        keys = sorted(best)
        chosen = Row(tokenizer, cell, size, f"[{option} chosen on dev]",
                     records=[best[k] for k in keys])
        out.append(Selection(chosen, option, {k: param(best[k], option) for k in keys}, tried))
    return out


def _as_number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.inf
