"""How generated captions go wrong: invented words, no ``<END>``, ``<UNK>`` tokens.

Word rates are computed on canonical text (:mod:`capx.metrics.text`) for every tokenizer, so a
char model's misspellings and a word model's output are counted the same way (a word model can
only invent words when its training text differs from its vocabulary, so its rate is a check).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from capx.metrics.text import canonical_words
from capx.tokenizers.base import END_ID, NULL_ID, UNK, UNK_ID


def invented_word_rate(captions: Sequence[str], known_words: set[str]) -> float:
    """Share of the words of ``captions`` that are not in ``known_words`` (0 with no words).

    ``known_words``: e.g. :func:`capx.metrics.text.vocabulary` of the training captions. A
    ``<UNK>`` output is never an invented word: it is counted apart, by :func:`unk_rate`.
    """
    invented, words = invented_word_counts(captions, known_words)
    return float(invented.sum() / words.sum()) if words.sum() else 0.0


def invented_word_counts(captions: Sequence[str], known_words: set[str]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Per caption: (words not in ``known_words``, words), as int arrays."""
    invented = np.zeros(len(captions), dtype=np.int64)
    words = np.zeros(len(captions), dtype=np.int64)
    for i, caption in enumerate(captions):
        caption_words = canonical_words(caption)
        words[i] = len(caption_words)
        invented[i] = sum(w not in known_words and w != UNK for w in caption_words)
    return invented, words


def invented_word_kinds(captions: Sequence[str], known_words: set[str], real_words: set[str]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per caption: (invented words that are real words, invented words that are not).

    An invented word (not in ``known_words``, not ``<UNK>``) is *real* when ``real_words`` (a
    word list held out from training, e.g. :func:`capx.metrics.word_list.load_word_list`)
    has it, else a non-word."""
    real = np.zeros(len(captions), dtype=np.int64)
    non = np.zeros(len(captions), dtype=np.int64)
    for i, caption in enumerate(captions):
        for word in canonical_words(caption):
            if word not in known_words and word != UNK:
                if word in real_words:
                    real[i] += 1
                else:
                    non[i] += 1
    return real, non


def invented_words(captions: Iterable[str], known_words: set[str]) -> list[str]:
    """The distinct invented words, most frequent first (for reports)."""
    counts: dict[str, int] = {}
    for caption in captions:
        for word in canonical_words(caption):
            if word not in known_words and word != UNK:
                counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: (-counts[w], w))


def no_end_rate(ids: np.ndarray, end_id: int = END_ID) -> float:
    """Share of decoded id rows that never emit ``<END>`` (they ran to the maximum length)."""
    ids = np.asarray(ids)
    return float(np.mean(~(ids == end_id).any(axis=1))) if len(ids) else 0.0


def generated_mask(ids: np.ndarray, end_id: int = END_ID) -> np.ndarray:
    """True at the symbols of decoded rows: before the first ``<END>``, ``<NULL>`` excluded."""
    ids = np.asarray(ids)
    before_end = np.cumsum(ids == end_id, axis=1) == 0
    return before_end & (ids != NULL_ID)


def unk_rate(ids: np.ndarray, unk_id: int = UNK_ID, end_id: int = END_ID) -> float:
    """Share of generated symbols (``<END>`` and padding excluded) that are ``<UNK>``."""
    ids = np.asarray(ids)
    mask = generated_mask(ids, end_id)
    total = int(mask.sum())
    return float(((ids == unk_id) & mask).sum() / total) if total else 0.0

