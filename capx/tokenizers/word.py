"""Word tokenizer: lowercase words split on whitespace, as in the CS231n caption preprocessing."""

from __future__ import annotations

import re
import string
from typing import Any, Sequence

from capx.registry import TOKENIZERS
from capx.tokenizers.base import UNK, Tokenizer, split_unk, strip_punctuation

PUNCTUATION_MODES = ("strip", "split")
_PUNCTUATION_MARK = re.compile(f"[{re.escape(string.punctuation)}]")


@TOKENIZERS.register("word")
class WordTokenizer(Tokenizer):
    """One symbol per word.

    Text is lowercased; ASCII punctuation (``string.punctuation``) is removed
    (``punctuation="strip"``, the CS231n preprocessing) or made into tokens of its own
    (``punctuation="split"``: ``"dog, cat"`` -> ``dog , cat``); then split on whitespace. A literal
    ``<UNK>`` in the text is one token with the ``<UNK>`` id. The normalised text is the tokens
    joined by single spaces. Train words seen fewer than ``min_count`` times, and those beyond the
    ``max_vocab`` most frequent entries (special tokens included), become ``<UNK>``.
    """

    default_max_length = 16

    def __init__(self, *, max_length: int | None = None, punctuation: str = "strip",
                 min_count: int = 1, max_vocab: int | None = None) -> None:
        if punctuation not in PUNCTUATION_MODES:
            raise ValueError(f"word tokenizer option 'punctuation' must be one of "
                             f"{list(PUNCTUATION_MODES)}, got {punctuation!r}")
        self.punctuation = punctuation
        super().__init__(max_length=max_length, min_count=min_count, max_vocab=max_vocab)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "punctuation": self.punctuation}

    def _words(self, piece: str) -> list[str]:
        piece = piece.lower()
        if self.punctuation == "strip":
            return strip_punctuation(piece).split()
        return _PUNCTUATION_MARK.sub(r" \g<0> ", piece).split()

    def tokenize(self, text: str) -> list[str]:
        if UNK not in text:  # the common case, without the regex split
            return self._words(text)
        tokens: list[str] = []
        for i, piece in enumerate(split_unk(text)):
            if i % 2:
                tokens.append(UNK)
            else:
                tokens.extend(self._words(piece))
        return tokens

    def normalize(self, text: str) -> str:
        return " ".join(self.tokenize(text))

    def join(self, symbols: Sequence[str]) -> str:
        return " ".join(symbols)
