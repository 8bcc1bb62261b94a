"""Packed sequences: run each timestep only over the captions that still have tokens.

Captions are sorted by length (longest first), so at step t the active captions are the first
``batch_sizes[t]`` rows; all per-token arrays are stored time-major and concatenated over steps
(the layout of PyTorch's PackedSequence). A caption's length is the position of its last
non-``<NULL>`` target plus one, so ``<NULL>`` in odd places inside a caption is still masked but
never changes the recurrence: packed and dense results agree exactly.

Dense mode (``pack=False``) uses the same layout with every step full, which is the plain
computation the packed one is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Packing:
    """Index arrays that map an (N, T) batch to packed rows and back."""

    order: np.ndarray  # (N,) batch row of each sorted position, longest caption first
    batch_sizes: np.ndarray  # (T,) active captions at each step (non-increasing)
    offsets: np.ndarray  # (T + 1,) first packed row of each step
    rows: np.ndarray  # (P,) original batch row of each packed row
    steps: np.ndarray  # (P,) timestep of each packed row
    prev_rows: np.ndarray  # (P,) row of h_{t-1} in the stacked array [h0 (N rows); h (P rows)]

    @property
    def num_steps(self) -> int:
        return int(self.batch_sizes.shape[0])

    @property
    def num_rows(self) -> int:
        return int(self.offsets[-1])

    def previous(self, first: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The value at step t-1 of every packed row: ``first`` (N, ...) for step 0, else ``rows``.

        Equals ``np.concatenate([first, rows])[prev_rows]``, built as one block copy per step (the
        rows a step needs are the first ``batch_sizes[t]`` rows of the step before).
        """
        out = np.empty((self.num_rows,) + rows.shape[1:], dtype=rows.dtype)
        sizes, offsets = self.batch_sizes, self.offsets
        if len(sizes):
            out[: sizes[0]] = first[: sizes[0]]
        for t in range(1, len(sizes)):
            out[offsets[t] : offsets[t] + sizes[t]] = rows[offsets[t - 1] : offsets[t - 1] + sizes[t]]
        return out


def make_packing(mask: np.ndarray, pack: bool = True) -> Packing:
    """Build the packing for a (N, T) boolean mask of real target tokens.

    With ``pack=False`` every caption keeps all T steps (the dense computation).
    """
    n, t = mask.shape
    if pack:
        any_token = mask.any(axis=1)
        last = t - np.argmax(mask[:, ::-1], axis=1)
        lengths = np.where(any_token, last, 0)
        order = np.argsort(-lengths, kind="stable")
        steps_used = int(lengths.max()) if n else 0
        batch_sizes = (lengths[None, :] > np.arange(steps_used)[:, None]).sum(axis=1)
    else:
        order = np.arange(n)
        batch_sizes = np.full(t, n)
    offsets = np.zeros(len(batch_sizes) + 1, dtype=np.int64)
    np.cumsum(batch_sizes, out=offsets[1:])
    steps = np.repeat(np.arange(len(batch_sizes)), batch_sizes)
    sorted_pos = np.arange(offsets[-1]) - offsets[steps]
    rows = order[sorted_pos]
    # h_{t-1} of sorted position j at step t: row j of step t-1, or row j of h0 (stored first).
    prev_rows = np.where(steps == 0, sorted_pos, n + offsets[np.maximum(steps - 1, 0)] + sorted_pos)
    return Packing(order, batch_sizes, offsets, rows, steps, prev_rows)
