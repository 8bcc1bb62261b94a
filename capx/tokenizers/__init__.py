"""Tokenizer plugins: caption text <-> fixed-width int32 id rows, registered in ``TOKENIZERS``.

Built in: ``word`` (CS231n-style words), ``char`` (one symbol per character) and ``bpe``
(sentencepiece subword pieces, between the two). Build one by name with :func:`make_tokenizer`
(or ``TOKENIZERS.get(name)(**options)``).
"""

from __future__ import annotations

import inspect
from typing import Any

from capx.registry import TOKENIZERS
from capx.tokenizers.base import (
    END, END_ID, NULL, NULL_ID, SPECIAL_TOKENS, START, START_ID, UNK, UNK_ID, NotFittedError,
    Tokenizer,
)
from capx.tokenizers import bpe, char, word  # noqa: F401  (register the built-in tokenizers)
from capx.tokenizers.bpe import BPETokenizer
from capx.tokenizers.char import CharTokenizer
from capx.tokenizers.word import WordTokenizer

__all__ = [
    "BPETokenizer", "CharTokenizer", "END", "END_ID", "NULL", "NULL_ID", "NotFittedError",
    "SPECIAL_TOKENS", "START", "START_ID", "Tokenizer", "UNK", "UNK_ID", "WordTokenizer",
    "make_tokenizer",
]


def make_tokenizer(name: str, **options: Any) -> Tokenizer:
    """The tokenizer registered as ``name``, built with keyword ``options`` (e.g. from a config).

    An option the tokenizer does not take is an error that lists the options it does take.
    """
    cls = TOKENIZERS.get(name)
    accepted = [p for p in inspect.signature(cls).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - {p.name for p in accepted})
    if unknown:
        raise ValueError(f"tokenizer {name!r} has no option(s) {unknown}; its options are "
                         f"{[p.name for p in accepted]}")
    return cls(**options)
