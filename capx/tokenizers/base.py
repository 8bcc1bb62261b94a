"""The tokenizer interface shared by every tokenizer plugin, and the text helpers they share.

A tokenizer turns caption text into fixed-width int32 id rows for the captioner and back:

    <START> s1 s2 ... sn <END> <NULL> ... <NULL>        (width max_length + 2)

Ids 0..3 are the CS231n special tokens ``<NULL> <START> <END> <UNK>``; the symbols seen in the
training text follow by descending count, ties in code-point ("alphabetical") order (the rows:
:mod:`capx.tokenizers.layout`; the vocabulary: :mod:`capx.tokenizers.vocabulary`). Subclasses
say what a symbol is (:meth:`Tokenizer.tokenize`), what canonical text a caption reads as
(:meth:`Tokenizer.normalize`) and how symbols are joined back (:meth:`Tokenizer.join`).

The width is fixed (not the longest caption of the batch) so every batch, split and dataset encoded
with one tokenizer has the same shape, as the CS231n captioner expects.
"""

from __future__ import annotations

import logging
import re
import string
from itertools import chain, repeat
from typing import Any, ClassVar, Sequence

import numpy as np

from capx.registry import TOKENIZERS
from capx.tokenizers.layout import (
    END, END_ID, NULL, NULL_ID, SPECIAL_TOKENS, START, START_ID, UNK, UNK_ID, pack_rows, read_rows,
)
from capx.tokenizers.vocabulary import NotFittedError, VocabularyMixin, check_text

__all__ = [
    "END", "END_ID", "NULL", "NULL_ID", "SPECIAL_TOKENS", "START", "START_ID", "UNK", "UNK_ID",
    "NotFittedError", "Tokenizer", "clean_text", "split_unk", "strip_punctuation",
    "tokenizer_from_dict",
]

logger = logging.getLogger(__name__)

# Splits text around the literal <UNK> token (kept by the capturing group), which CS231n caption
# files contain for rare words; every tokenizer keeps it as one symbol.
UNK_SPLIT = re.compile(f"({re.escape(UNK)})")
_PUNCTUATION_BYTES = string.punctuation.encode("ascii")
_STRIP_PUNCTUATION = str.maketrans("", "", string.punctuation)


class Tokenizer(VocabularyMixin):
    """Base class: vocabulary, fixed-width encoding, decoding and (de)serialisation.

    Options (keyword only): ``max_length`` symbols per caption, not counting ``<START>``/``<END>``;
    ``min_count``: train symbols seen fewer times become ``<UNK>``; ``max_vocab``: the most entries
    the vocabulary may hold, the four special tokens included (so ``vocab_size <= max_vocab``).

    Subclasses implement :meth:`normalize`, :meth:`tokenize` and :meth:`join`, and may override
    :meth:`_symbol_ids` with a faster batch lookup. A tokenizer whose :meth:`fit` learns more than
    the vocabulary (a BPE model, merges) overrides :meth:`state_dict` / :meth:`load_state_dict`:
    that state travels in checkpoints through :meth:`to_dict` / :meth:`from_dict`, so resume and
    load restore the tokenizer instead of fitting it again. ``name`` is set by the registry.
    """

    name: ClassVar[str] = ""
    default_max_length: ClassVar[int] = 16

    def __init__(self, *, max_length: int | None = None, min_count: int = 1,
                 max_vocab: int | None = None) -> None:
        self.max_length = check_int("max_length", self.default_max_length
                                    if max_length is None else max_length, minimum=1)
        self.min_count = check_int("min_count", min_count, minimum=1)
        self.max_vocab = (None if max_vocab is None
                          else check_int("max_vocab", max_vocab, minimum=len(SPECIAL_TOKENS)))
        self._idx_to_word: list[str] | None = None
        self._word_to_idx: dict[str, int] | None = None
        self.last_truncated_fraction: float = 0.0

    # ----- text -> symbols (subclasses) -------------------------------------------------------
    def normalize(self, text: str) -> str:
        """The canonical text ``decode(encode(text))`` returns when every symbol is known."""
        raise NotImplementedError

    def tokenize(self, text: str) -> list[str]:
        """The symbols of ``text`` (of its normalised form), ``<UNK>`` literals kept as one."""
        raise NotImplementedError

    def join(self, symbols: Sequence[str]) -> str:
        """Symbols back to text (the inverse of :meth:`tokenize` on normalised text)."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The constructor keyword options, as stored by :meth:`to_dict`."""
        return {"max_length": self.max_length, "min_count": self.min_count,
                "max_vocab": self.max_vocab}

    # ----- encode / decode ---------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Captions -> int32 array (N, max_length + 2): ``<START> ids <END>``, then ``<NULL>``s.

        Captions longer than ``max_length`` symbols are cut to ``max_length`` symbols and still end
        with ``<END>``; the share cut is kept in ``last_truncated_fraction`` and logged.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of caption strings; "
                            "wrap one caption in a list")
        self._require_fitted()
        texts = [check_text(text) for text in texts]
        flat_ids, lengths = self._symbol_ids(texts)
        return self._pack(flat_ids, lengths)

    def _symbol_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """All captions' symbol ids, concatenated, and the number of symbols of each caption."""
        token_lists = list(map(self.tokenize, texts))
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        flat_ids = np.fromiter(
            map(self.word_to_idx.get, chain.from_iterable(token_lists), repeat(UNK_ID)),
            dtype=np.int32, count=int(lengths.sum()))
        return flat_ids, lengths

    def _pack(self, flat_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Lay concatenated symbol ids out as fixed-width ``<START> .. <END> <NULL>..`` rows."""
        out, truncated = pack_rows(flat_ids, lengths, self.max_length)
        n = len(lengths)
        self.last_truncated_fraction = truncated / n if n else 0.0
        if truncated:
            logger.info("%s tokenizer: truncated %d of %d captions (%.2f%%) to max_length=%d",
                        self.name, truncated, n, 100 * self.last_truncated_fraction,
                        self.max_length)
        return out

    def decode(self, ids: np.ndarray | Sequence[int] | Sequence[Sequence[int]]) -> list[str]:
        """Id rows -> caption strings; stops at ``<END>``, skips ``<NULL>`` and ``<START>``.

        A 2-D array gives one string per row; a 1-D array is read as one row and gives a list
        holding one string. ``<UNK>`` is rendered as the literal text ``<UNK>``.
        """
        return [self.join(symbols) for symbols in read_rows(ids, self.idx_to_word)]

    # ----- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What :meth:`fit` learned besides the vocabulary, JSON-ready (none by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; called by :meth:`from_dict` before the vocabulary."""
        if state:
            raise ValueError(f"the {self.name!r} tokenizer keeps no learned state, got keys "
                             f"{sorted(state)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (name, options, learned state, vocabulary) for checkpoints."""
        return {"name": self.name, "options": self.options(), "state": self.state_dict(),
                "idx_to_word": list(self.idx_to_word)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Tokenizer":
        """Rebuild a fitted tokenizer from :meth:`to_dict` output.

        Called on :class:`Tokenizer` itself it picks the class registered under ``d["name"]``.
        """
        return tokenizer_from_dict(cls, d)

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        vocab = f"vocab_size={self.vocab_size}" if self.is_fitted else "not fitted"
        return f"{type(self).__name__}({options}; {vocab})"


def tokenizer_from_dict(cls: type[Tokenizer], d: dict[str, Any]) -> Tokenizer:
    """:meth:`Tokenizer.from_dict` of ``cls``: check ``d``, pick the class (by ``d["name"]`` when
    ``cls`` is :class:`Tokenizer`), construct it, restore its learned state, then its vocabulary."""
    missing = [key for key in ("name", "options", "idx_to_word") if key not in d]
    if missing:
        raise ValueError(f"tokenizer dict is missing key(s) {missing}; expected the output of "
                         "Tokenizer.to_dict()")
    target = cls
    if not cls.name:
        target = TOKENIZERS.get(d["name"])
    elif d["name"] != cls.name:
        raise ValueError(f"tokenizer dict is for {d['name']!r}, not {cls.name!r}; "
                         "use Tokenizer.from_dict to pick the class by name")
    tokenizer = target(**d["options"])
    tokenizer.load_state_dict(d.get("state") or {})
    tokenizer._set_vocabulary([str(word) for word in d["idx_to_word"]])
    return tokenizer


def split_unk(text: str) -> list[str]:
    """``"a <UNK> b"`` -> ``["a ", "<UNK>", " b"]``: odd items are the ``<UNK>`` literals."""
    return UNK_SPLIT.split(text)


def strip_punctuation(text: str) -> str:
    """``text`` without ASCII punctuation (``string.punctuation``); fast for ASCII text."""
    if text.isascii():
        return text.encode("ascii").translate(None, _PUNCTUATION_BYTES).decode("ascii")
    return text.translate(_STRIP_PUNCTUATION)


def clean_text(text: str, lowercase: bool = True, strip_punct: bool = True) -> str:
    """Optionally lowercase and strip punctuation, collapse whitespace; ``<UNK>`` stays whole."""
    def clean(piece: str) -> str:
        piece = piece.lower() if lowercase else piece
        return strip_punctuation(piece) if strip_punct else piece

    if UNK in text:
        text = "".join(p if i % 2 else clean(p) for i, p in enumerate(split_unk(text)))
    else:
        text = clean(text)
    return " ".join(text.split())


def check_int(option: str, value: Any, *, minimum: int) -> int:
    """``value`` as an int if it is an integer >= ``minimum``; else a ValueError naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"tokenizer option {option!r} must be an integer >= {minimum}, "
                         f"got {value!r}")
    return int(value)
