"""The study's figures, drawn on ``matplotlib.figure.Figure`` (no pyplot, no backend switch).

Each function takes the report's rows and returns a Figure, or None when the runs hold nothing
to plot (e.g. a single training-set size). Error bars are the rows' 95% bootstrap CIs, clipped
to the metric's range, never ± standard deviations.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from matplotlib.figure import Figure

from capx.tracking import names
from capx.study.tables import Row, row_interval

T = names.TEST

MARKERS = {"char": "o", "bpe": "s", "word": "^"}
COLOURS = {"rnn": "tab:blue", "lstm": "tab:orange", "gru": "tab:green"}


def _style(row: Row) -> dict:
    filled = "1000" not in row.tokenizer
    return {"marker": MARKERS[_family(row)], "color": COLOURS.get(row.cell, "tab:gray"),
            "markerfacecolor": None if filled else "white"}


def _jitter(row: Row) -> float:
    """A small multiplicative x offset per tokenizer and cell, so rows at one budget separate."""
    family = ["char", "bpe", "word"].index(_family(row))
    size = "".join(c for c in row.tokenizer if c.isdigit())
    slot = family * 2 + (1 if size == "1000" else 0) + (0.5 if row.cell == "lstm" else 0)
    return 1 + 0.008 * (slot - 2.5)


def _family(row: Row) -> str:
    return "char" if row.tokenizer.startswith("char") else (
        "word" if row.tokenizer.startswith("word") else "bpe")


def _scatter(ax, rows: Sequence[Row], x_metric: str, y_metric: str, log_x: bool = True) -> None:
    for row in rows:
        x = row.mean(x_metric) * (_jitter(row) if log_x else 1)
        y, low, high = row_interval(row, y_metric)
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        yerr = [[max(y - low, 0.0)], [max(high - y, 0.0)]] if np.isfinite(low) else None
        ax.errorbar([x], [y], yerr=yerr, capsize=3, linestyle="none", label=row.label,
                    **_style(row))
    if log_x:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short ranges
    ax.grid(alpha=0.3)


def _tested(rows: Sequence[Row], full_data: bool = True) -> list[Row]:
    """Rows with test scores; with ``full_data`` only those trained on all their train images."""
    return [r for r in rows if np.isfinite(r.mean(names.TEST_BITS_PER_CHAR))
            and (not full_data or "split.train_percent=" not in r.extra
                 or "split.train_percent=100" in r.extra)]


def _legend(fig, ax) -> None:
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=7)


def bits_vs_params(rows: Sequence[Row]) -> Figure | None:
    rows = _tested(rows)
    if not rows:
        return None
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    _scatter(ax, rows, f"{T}total", "bits_per_char")
    ax.set(xlabel="parameters", ylabel="test bits/char (open vocabulary)",
           title="Bits per character against model size (95% CI)")
    _legend(fig, ax)
    return fig


def bits_vs_compute(rows: Sequence[Row]) -> Figure | None:
    rows = _tested(rows)
    if not rows:
        return None
    fig = Figure(figsize=(13, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    _scatter(left, rows, f"{T}flops_per_caption", "bits_per_char")
    left.set(xlabel="forward FLOPs per caption", ylabel="test bits/char (open)")
    _scatter(right, rows, f"{T}train_seconds", "bits_per_char")
    right.set(xlabel="training wall-clock seconds (2 shared cores, to the early stop)",
              ylabel="test bits/char (open)")
    _legend(fig, right)
    fig.suptitle("Bits per character against compute (95% CI)")
    return fig


def cider_vs_params(rows: Sequence[Row]) -> Figure | None:
    rows = _tested(rows)
    if not rows:
        return None
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    _scatter(ax, rows, f"{T}total", "cider")
    ax.set(xlabel="parameters", ylabel="test CIDEr-D (greedy)", ylim=(0, None),
           title="CIDEr-D against model size (95% CI, clipped at 0)")
    _legend(fig, ax)
    return fig


TRAIN_SIZE_KEYS = ("split.train_percent=", "dataset.max_train=")  # what a learning curve varies


def bits_vs_train_size(rows: Sequence[Row]) -> Figure | None:
    """Learning curves: needs rows that differ in split.train_percent or dataset.max_train."""
    rows = _tested(rows, full_data=False)
    sizes = {r.mean("data/train_captions") for r in rows}
    if len(sizes) < 2:
        return None
    fig = Figure(figsize=(9.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    lines: dict[tuple[str, str, str, str], list[tuple[float, float, float, float]]] = {}
    for row in rows:
        y, low, high = row_interval(row, "bits_per_char")
        others = ", ".join(item for item in row.extra.strip("[]").split(", ")
                           if item and not item.startswith(TRAIN_SIZE_KEYS))
        lines.setdefault((row.tokenizer, row.cell, row.size, others), []).append(
            (row.mean("data/train_captions"), y, low, high))
    for (tokenizer, cell, size, others), points in sorted(lines.items()):
        if len(points) < 2:  # a setting run at one size only is not a learning curve
            continue
        points.sort()
        x, y, low, high = map(np.array, zip(*points))
        style = _style(Row(tokenizer, cell, size, ""))
        style["linestyle"] = "--" if size.startswith("H=") else "-"  # fixed size vs budget
        label = " ".join(part for part in (tokenizer, cell, size, others) if part)
        ax.errorbar(x, y, yerr=[np.maximum(y - low, 0), np.maximum(high - y, 0)], capsize=3,
                    label=label, **style)
    ax.set(xscale="log", xlabel="training captions", ylabel="test bits/char (open)",
           title="Bits per character against training-set size (95% CI)")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(sorted(sizes))
    ax.grid(alpha=0.3)
    _legend(fig, ax)
    return fig


TOKENIZER_COLOURS = {"char": "tab:red", "bpe250": "tab:olive", "bpe1000": "tab:green",
                     "word": "tab:blue"}


def frequency_bins(rows: Sequence[Row]) -> Figure | None:
    """Grouped bars: one group per frequency bin, one bar per row (colour: tokenizer, hatched:
    rnn), so the reader sees where each model's bits go."""
    rows = [r for r in _tested(rows) if np.isfinite(r.mean(f"{T}bpc_frequent"))]
    if not rows:
        return None
    bins = ["unseen", "rare", "frequent"]
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        values = [row.mean(f"{T}bpc_{name}") for name in bins]
        ax.bar(np.arange(3) + i * width, values, width, label=row.label,
               color=TOKENIZER_COLOURS.get(row.tokenizer, "tab:gray"),
               hatch="//" if row.cell == "rnn" else None, edgecolor="white", linewidth=0.3)
    ax.set_xticks(np.arange(3) + 0.4 - width / 2, [f"{b} words" for b in bins])
    ax.set(ylabel="test bits/char (open)",
           title="Where the bits go: by training frequency of the reference word")
    _legend(fig, ax)
    return fig


FIGURES: dict[str, Callable[[Sequence[Row]], Figure | None]] = {
    "bits_per_char_vs_params.png": bits_vs_params,
    "bits_per_char_vs_compute.png": bits_vs_compute,
    "cider_vs_params.png": cider_vs_params,
    "bits_per_char_vs_train_size.png": bits_vs_train_size,
    "bits_per_char_by_word_frequency.png": frequency_bins,
}
