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


#: up to this many output rows, :func:`scatter_add_rows` multiplies by a one-hot matrix: for a
#: small output (a character vocabulary) one matrix product beats sorting and copying every row
ONE_HOT_MAX_ROWS = 128


def scatter_add_rows(indices: np.ndarray, values: np.ndarray, num_rows: int) -> np.ndarray:
    """``out[indices[k]] += values[k]`` for all k (``np.add.at``'s result, without its loop).

    Small outputs use a one-hot matrix product; larger ones a sorted segment sum.
    """
    if num_rows <= ONE_HOT_MAX_ROWS and values.ndim == 2:
        one_hot = np.zeros((num_rows, indices.size), dtype=values.dtype)
        one_hot[indices, np.arange(indices.size)] = 1
        return one_hot @ values
    out = np.zeros((num_rows,) + values.shape[1:], dtype=values.dtype)
    if indices.size == 0:
        return out
    order = np.argsort(indices, kind="stable")
    sorted_indices = indices[order]
    starts = np.flatnonzero(np.r_[True, sorted_indices[1:] != sorted_indices[:-1]])
    out[sorted_indices[starts]] = np.add.reduceat(values[order], starts, axis=0)
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
