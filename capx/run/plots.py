"""Matplotlib figures for experiment runs.

The figures are plain :class:`matplotlib.figure.Figure` objects, not pyplot ones: they need no
display, leave pyplot's backend and figure list alone (so a notebook keeps its own), and are freed
when no longer referenced. Save them with ``figure.savefig(path)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure


def loss_curve_figure(loss_history: Sequence[float], iterations_per_epoch: int) -> Figure:
    """Training loss per iteration, with a moving average and epoch boundaries."""
    losses = np.asarray(loss_history, dtype=float)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.8, alpha=0.5, label="loss per iteration")
    window = max(1, min(len(losses) // 10, iterations_per_epoch))
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, lw=1.8, label=f"moving mean ({window})")
    for epoch_end in range(iterations_per_epoch, len(losses) + 1, iterations_per_epoch):
        ax.axvline(epoch_end, color="grey", lw=0.5, alpha=0.4)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    ax.legend()
    fig.tight_layout()
    return fig


def sample_grid_figure(images: np.ndarray, captions: Sequence[str], columns: int = 4,
                       max_lines: int = 4) -> Figure:
    """Images (n, H, W, 3) uint8 in a grid, each titled with its caption.

    Captions are wrapped and cut to ``max_lines`` lines (a caption that never ends would
    otherwise run into the row above); the layout engine leaves each row room for its titles.
    """
    n = len(images)
    rows = max(1, -(-n // columns))
    titles = [_wrap(caption, max_lines=max_lines) for caption in captions]
    lines = max((t.count("\n") + 1 for t in titles), default=1)
    fig = Figure(figsize=(3 * columns, (2.6 + 0.16 * lines) * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, title in zip(axes.ravel(), images, titles):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=8)
    return fig


def _wrap(text: str, width: int = 32, max_lines: int | None = None) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1] + "…"
    return "\n".join(lines)
