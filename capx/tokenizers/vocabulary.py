"""The vocabulary of a tokenizer: fitting it on training captions, and looking symbols up.

The four special tokens (:mod:`capx.tokenizers.layout`) come first; the symbols seen in the
training text follow by descending count, ties in code-point ("alphabetical") order, those seen
fewer than ``min_count`` times left out and the list cut at ``max_vocab`` entries.
:class:`VocabularyMixin` holds this bookkeeping for :class:`capx.tokenizers.base.Tokenizer`.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Iterable

from capx.tokenizers.layout import SPECIAL_TOKENS

logger = logging.getLogger(__name__)


class NotFittedError(RuntimeError):
    """The tokenizer has no vocabulary yet."""


class VocabularyMixin:
    """``fit``, ``idx_to_word``, ``word_to_idx``, ``vocab_size`` of a tokenizer; the tokenizer
    gives ``tokenize``, ``name``, ``min_count`` and ``max_vocab``."""

    def fit(self, train_texts: Iterable[str]) -> "VocabularyMixin":
        """Build the vocabulary from the training captions; returns ``self``."""
        if isinstance(train_texts, str):
            raise TypeError("fit() takes a list of caption strings, not one string")
        counts: Counter[str] = Counter()
        for text in train_texts:
            counts.update(self.tokenize(check_text(text)))
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        ranked = sorted((s for s, c in counts.items() if c >= self.min_count),
                        key=lambda s: (-counts[s], s))
        if self.max_vocab is not None:
            ranked = ranked[: self.max_vocab - len(SPECIAL_TOKENS)]
        self._set_vocabulary(list(SPECIAL_TOKENS) + ranked)
        logger.info("%s tokenizer: %d symbols seen, vocabulary of %d (min_count=%d, max_vocab=%s)",
                    self.name, len(counts), self.vocab_size, self.min_count, self.max_vocab)
        return self

    def _set_vocabulary(self, idx_to_word: list[str]) -> None:
        if tuple(idx_to_word[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary must start with {list(SPECIAL_TOKENS)}, "
                             f"got {idx_to_word[: len(SPECIAL_TOKENS)]}")
        word_to_idx = {word: idx for idx, word in enumerate(idx_to_word)}
        if len(word_to_idx) != len(idx_to_word):
            duplicates = sorted(w for w, c in Counter(idx_to_word).items() if c > 1)
            raise ValueError(f"the vocabulary repeats symbols: {duplicates[:10]}")
        self._idx_to_word = idx_to_word
        self._word_to_idx = word_to_idx
        self._on_vocabulary_set()

    def _on_vocabulary_set(self) -> None:
        """Hook for subclasses that precompute lookup tables."""

    @property
    def is_fitted(self) -> bool:
        return self._idx_to_word is not None

    @property
    def idx_to_word(self) -> list[str]:
        return self._require_fitted()[0]

    @property
    def word_to_idx(self) -> dict[str, int]:
        return self._require_fitted()[1]

    @property
    def vocab_size(self) -> int:
        return len(self.idx_to_word)

    def _require_fitted(self) -> tuple[list[str], dict[str, int]]:
        if self._idx_to_word is None or self._word_to_idx is None:
            raise NotFittedError(f"the {self.name!r} tokenizer has no vocabulary yet: "
                                 "call fit(train_texts) first (or load one with from_dict)")
        return self._idx_to_word, self._word_to_idx


def check_text(text: Any) -> str:
    """``text`` if it is a string; else a TypeError naming what was given."""
    if not isinstance(text, str):
        raise TypeError(f"captions must be strings, got {type(text).__name__}: {text!r:.80}")
    return text
