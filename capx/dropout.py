"""Inverted dropout masks for training the captioner (as in neuraltalk2 and Zaremba et al. 2014).

Dropout zeroes a random share ``rate`` of the word vectors' entries (the embedding output) and of
the hidden states' entries before the vocabulary projection, and scales the kept ones by
``1 / (1 - rate)``, so nothing changes at decoding or scoring time, where no mask is applied.
The masks are drawn for the whole (N, T) caption batch, ``<NULL>`` padding included, so the fast
packed captioner and the readable reference receive the same mask and compute the same numbers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class DropoutMasks(NamedTuple):
    """Per-entry scales, 0 (dropped) or ``1 / (1 - rate)`` (kept), for a batch of N captions of
    T input positions."""

    embed: np.ndarray  # (N, T, wordvec_dim): multiplies each word vector
    hidden: np.ndarray  # (N, T, hidden_dim): multiplies each hidden state before the scores


def check_rate(rate: float) -> float:
    """``rate`` as a float, or a ValueError when it is not in [0, 1)."""
    value = float(rate)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"dropout must be in [0, 1) (the share of entries dropped), got {rate!r}")
    return value


def inverted_mask(rng: Any, shape: tuple[int, ...], rate: float, dtype: Any) -> np.ndarray:
    """A mask of ``shape``: each entry 0 with probability ``rate``, else ``1 / (1 - rate)``.

    ``rng`` is a ``np.random.RandomState`` (or the ``np.random`` module)."""
    keep = rng.random_sample(shape) >= rate
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - rate), dtype=dtype)


def draw_masks(rng: Any, captions: np.ndarray, wordvec_dim: int, hidden_dim: int, rate: float,
               dtype: Any) -> DropoutMasks:
    """The masks of one training batch of ``captions`` (N, T + 1): embedding, then hidden."""
    n, t = captions.shape[0], captions.shape[1] - 1
    return DropoutMasks(inverted_mask(rng, (n, t, wordvec_dim), rate, dtype),
                        inverted_mask(rng, (n, t, hidden_dim), rate, dtype))
