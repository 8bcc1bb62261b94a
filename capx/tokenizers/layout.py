"""The fixed-width id rows every tokenizer writes and reads, and the special tokens they use.

A caption of n symbols is one int32 row of width ``max_length + 2``::

    <START> s1 s2 ... sn <END> <NULL> ... <NULL>

Ids 0..3 are the CS231n special tokens ``<NULL> <START> <END> <UNK>``. :func:`pack_rows` lays
concatenated symbol ids out as such rows (cutting long captions), :func:`read_rows` reads rows
back into symbol lists.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

NULL, START, END, UNK = "<NULL>", "<START>", "<END>", "<UNK>"
SPECIAL_TOKENS: tuple[str, ...] = (NULL, START, END, UNK)
NULL_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3


def pack_rows(flat_ids: np.ndarray, lengths: np.ndarray, max_length: int
              ) -> tuple[np.ndarray, int]:
    """(rows (N, max_length + 2), how many captions were cut) from all captions' symbol ids,
    concatenated, and each caption's number of symbols; a caption longer than ``max_length``
    keeps its first ``max_length`` symbols and still ends with ``<END>``."""
    n, width = len(lengths), max_length + 2
    out = np.full((n, width), NULL_ID, dtype=np.int32)
    out[:, 0] = START_ID
    too_long = lengths > max_length
    truncated = int(np.count_nonzero(too_long))
    kept_lengths = np.minimum(lengths, max_length)
    if truncated:  # drop each long caption's symbols past max_length
        ends = np.cumsum(lengths)
        cut_from = (ends - lengths + max_length)[too_long]
        change = np.zeros(len(flat_ids) + 1, dtype=np.int32)
        np.add.at(change, cut_from, 1)
        np.add.at(change, ends[too_long], -1)
        flat_ids = flat_ids[np.cumsum(change[:-1]) == 0]
    body = out[:, 1 : width - 1]
    body[np.arange(max_length) < kept_lengths[:, None]] = flat_ids
    out[np.arange(n), kept_lengths + 1] = END_ID
    return out, truncated


def read_rows(ids: np.ndarray | Sequence[int] | Sequence[Sequence[int]],
              idx_to_word: Sequence[str]) -> list[list[str]]:
    """Id rows -> each row's symbols: up to ``<END>``, without ``<NULL>`` and ``<START>``.

    A 1-D array is read as one row. Ids outside the vocabulary are an error.
    """
    array = np.asarray(ids)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"decode() takes a 2-D integer id array (or one 1-D row), got "
                         f"shape {array.shape} dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= len(idx_to_word)):
        raise ValueError(f"ids span [{array.min()}, {array.max()}] but the vocabulary has "
                         f"{len(idx_to_word)} entries: were they made by another tokenizer?")
    rows = []
    for row in array.tolist():
        symbols = []
        for idx in row:
            if idx == END_ID:
                break
            if idx != NULL_ID and idx != START_ID:
                symbols.append(idx_to_word[idx])
        rows.append(symbols)
    return rows
