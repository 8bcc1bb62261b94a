"""The one text form every metric reads, whatever tokenizer made a caption.

``canonical_text``: lowercase, ASCII punctuation removed, whitespace runs collapsed to one space,
ends stripped; a literal ``<UNK>`` is kept whole. This is the CS231n word preprocessing, and every
built-in tokenizer normalises it to itself (the char tokenizer keeps it character for character,
the word tokenizer splits it on spaces), so char and word models are scored on the same string.
It stands in for COCO's PTBTokenizer, which needs Java.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from capx.tokenizers.base import UNK, clean_text


def canonical_text(text: str) -> str:
    """Lowercase, no ASCII punctuation, single spaces; ``<UNK>`` literals left whole."""
    return clean_text(text, lowercase=True, strip_punct=True)


def canonical_words(text: str) -> list[str]:
    """The words of :func:`canonical_text` (``<UNK>`` is one word)."""
    return canonical_text(text).split()


def char_count(text: str) -> int:
    """Characters of a canonical string, counting each ``<UNK>`` literal as one character.

    ``<UNK>`` is one symbol for every tokenizer (one word, one char-vocabulary entry), so it
    counts as one character of the text being predicted.
    """
    return len(text) - (len(UNK) - 1) * text.count(UNK)


def vocabulary(texts: Iterable[str]) -> set[str]:
    """Every word of the canonical form of ``texts`` (e.g. the training captions)."""
    words: set[str] = set()
    for text in texts:
        words.update(canonical_words(text))
    return words


def word_counts(texts: Iterable[str]) -> Counter[str]:
    """How often each word of the canonical form of ``texts`` occurs (e.g. in training)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(canonical_words(text))
    return counts
