"""Small NumPy building blocks of the fast path, shared by the cells and the captioner."""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function without branching on masks: 0.5 * tanh(0.5 x) + 0.5."""
    out = np.multiply(x, 0.5)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """In-place :func:`sigmoid` (``x`` may be a strided view); returns ``x``."""
    x *= 0.5
    np.tanh(x, out=x)
    x *= 0.5
    x += 0.5
    return x


#: an id that occurs more often than this is summed in one reduction over its rows rather than
#: in that many rounds (benchmarks/README.md: 8 was fastest of 2, 4, 8 and 16)
HEAVY_ID_COUNT = 8


def scatter_add_rows(indices: np.ndarray, values: np.ndarray, num_rows: int) -> np.ndarray:
    """``out[indices[k]] += values[k]`` for 1-D ``indices`` in ``[0, num_rows)``:
    ``np.add.at(zeros, indices, values)``, bit for bit, without its per-element loop
    (benchmarks/README.md: 1.2-10x faster than the sorted ``reduceat`` or, for a character
    vocabulary, the one-hot matrix product used before).

    Rows are added in rounds: round r adds the r-th occurrence of every id that has one, with
    one fancy-indexed ``+=`` (the ids within a round are distinct, so nothing collides). An id
    occurring more than :data:`HEAVY_ID_COUNT` times (``<START>``, "a") is instead summed in
    one reduction over its rows: NumPy reduces over an axis that is not the innermost one row
    after row, in order, as ``add.at`` does (pairwise summation applies only along the
    innermost, contiguous axis; ``tests/test_layers.py`` pins this).
    """
    indices = np.asarray(indices)
    if indices.ndim != 1 or indices.shape[0] != values.shape[0]:
        raise ValueError(f"scatter_add_rows: indices must be 1-D with one id per row of values, "
                         f"got indices {indices.shape} and values {values.shape}")
    out = np.zeros((num_rows,) + values.shape[1:], dtype=values.dtype)
    if indices.size == 0:
        return out
    if indices.min() < 0 or indices.max() >= num_rows:
        raise ValueError(f"scatter_add_rows: ids must be in [0, {num_rows}), got "
                         f"{indices.min()}..{indices.max()}")
    if int(np.prod(values.shape[1:])) < 2:  # one number per row: add.at is fast there, and a
        np.add.at(out, indices, values)  # reduction over contiguous numbers would be pairwise
        return out
    order = np.argsort(indices, kind="stable")  # each id's rows together, in their order
    sorted_ids = indices[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    counts = np.diff(np.r_[starts, indices.size])
    for first, count in zip(starts[counts > HEAVY_ID_COUNT], counts[counts > HEAVY_ID_COUNT]):
        out[sorted_ids[first]] += np.add.reduce(values[order[first : first + count]], axis=0)
    light = np.repeat(counts <= HEAVY_ID_COUNT, counts)
    occurrence = (np.arange(indices.size) - np.repeat(starts, counts))[light]
    rows = order[light][np.argsort(occurrence, kind="stable")]  # round 0 first
    bounds = np.r_[0, np.cumsum(np.bincount(occurrence))] if occurrence.size else [0]
    ids, rows_values = indices[rows], values[rows]
    for begin, end in zip(bounds[:-1], bounds[1:]):
        out[ids[begin:end]] += rows_values[begin:end]
    return out


def softmax_cross_entropy_(scores: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> float:
    """Weighted softmax cross-entropy over rows; overwrites ``scores`` with d(loss)/d(scores).

    ``weights`` (one per row) multiplies each row's loss: it carries the ``<NULL>`` mask and the
    1/N batch averaging, so masked rows add nothing to the loss or the gradient.
    """
    rows = np.arange(scores.shape[0])
    scores -= scores.max(axis=1, keepdims=True)
    target_scores = scores[rows, targets]
    np.exp(scores, out=scores)
    sums = scores.sum(axis=1)
    loss = float(np.dot(weights, np.log(sums) - target_scores))
    scores *= (weights / sums)[:, None]
    scores[rows, targets] -= weights
    return loss
