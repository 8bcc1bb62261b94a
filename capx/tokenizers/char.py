"""Character tokenizer: one symbol per character (space included), ``<UNK>`` literals kept whole."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from capx.registry import TOKENIZERS
from capx.tokenizers.base import (
    SPECIAL_TOKENS, UNK, UNK_ID, Tokenizer, clean_text, split_unk,
)

PUNCTUATION_MODES = ("keep", "strip")
_UNK_CODES = np.frombuffer(UNK.encode("utf-32-le"), dtype=np.uint32)


@TOKENIZERS.register("char")
class CharTokenizer(Tokenizer):
    """One symbol per character.

    Normalised text: lowercased (``lowercase=True``), ASCII punctuation kept
    (``punctuation="keep"``) or removed (``"strip"``, to read the same characters as the CS231n
    word preprocessing), whitespace runs collapsed to one space and the ends stripped. A literal
    ``<UNK>`` (CS231n caption files contain it) is left alone by all of this and is ONE symbol with
    the ``<UNK>`` id, so word and char models read the same string; decoding renders it as
    ``<UNK>``. Characters unseen in training (or seen fewer than ``min_count`` times) become
    ``<UNK>``.

    Encoding is vectorised: the normalised captions are joined, turned into one code-point array
    and mapped through a lookup table; ``<UNK>`` literals are found as a 5-code pattern.
    """

    default_max_length = 80

    def __init__(self, *, max_length: int | None = None, lowercase: bool = True,
                 punctuation: str = "keep", min_count: int = 1,
                 max_vocab: int | None = None) -> None:
        if not isinstance(lowercase, bool):
            raise ValueError(f"char tokenizer option 'lowercase' must be true or false, "
                             f"got {lowercase!r}")
        if punctuation not in PUNCTUATION_MODES:
            raise ValueError(f"char tokenizer option 'punctuation' must be one of "
                             f"{list(PUNCTUATION_MODES)}, got {punctuation!r}")
        self.lowercase = lowercase
        self.punctuation = punctuation
        self._code_table = np.zeros(0, dtype=np.int32)
        super().__init__(max_length=max_length, min_count=min_count, max_vocab=max_vocab)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "lowercase": self.lowercase, "punctuation": self.punctuation}

    # ----- text -> symbols ---------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        return clean_text(text, self.lowercase, self.punctuation == "strip")

    def tokenize(self, text: str) -> list[str]:
        text = self.normalize(text)
        if UNK not in text:
            return list(text)
        symbols: list[str] = []
        for i, piece in enumerate(split_unk(text)):
            if i % 2:
                symbols.append(UNK)
            else:
                symbols.extend(piece)
        return symbols

    def join(self, symbols: Sequence[str]) -> str:
        return "".join(symbols)

    # ----- fast batch lookup -------------------------------------------------------------------
    def _on_vocabulary_set(self) -> None:
        symbols = self.idx_to_word[len(SPECIAL_TOKENS):]
        bad = [s for s in symbols if len(s) != 1]
        if bad:
            raise ValueError(f"a char vocabulary holds single characters, got {bad[:5]}")
        codes = np.array([ord(s) for s in symbols], dtype=np.int64)
        table = np.full(int(codes.max()) + 1 if len(codes) else 1, UNK_ID, dtype=np.int32)
        table[codes] = np.arange(len(SPECIAL_TOKENS), len(SPECIAL_TOKENS) + len(codes))
        self._code_table = table

    def _symbol_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        normalized = [self.normalize(text) for text in texts]
        lengths = np.fromiter(map(len, normalized), dtype=np.int64, count=len(normalized))
        codes = np.frombuffer("".join(normalized).encode("utf-32-le", "surrogatepass"),
                              dtype=np.uint32)
        table = self._code_table
        ids = table[np.minimum(codes, len(table) - 1)]
        ids[codes >= len(table)] = UNK_ID
        if len(codes) < len(_UNK_CODES):
            return ids, lengths
        unk_start = _find_pattern(codes, _UNK_CODES)
        if len(unk_start) == 0:
            return ids, lengths
        # a match may span two captions (the texts are joined without a separator): drop those
        ends = np.cumsum(lengths)
        row = np.searchsorted(ends, unk_start, side="right")
        unk_start = unk_start[row == np.searchsorted(ends, unk_start + len(_UNK_CODES) - 1,
                                                     side="right")]
        ids[unk_start] = UNK_ID
        drop = np.zeros(len(codes), dtype=bool)
        for offset in range(1, len(_UNK_CODES)):
            drop[unk_start + offset] = True
        row = np.searchsorted(ends, unk_start, side="right")
        lengths = lengths - (len(_UNK_CODES) - 1) * np.bincount(row, minlength=len(lengths))
        return ids[~drop], lengths


def _find_pattern(codes: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """Start positions where ``pattern`` occurs in ``codes`` (it must not overlap itself)."""
    n = len(codes) - len(pattern) + 1
    match = codes[:n] == pattern[0]
    for k in range(1, len(pattern)):
        match &= codes[k : k + n] == pattern[k]
    return np.flatnonzero(match)
