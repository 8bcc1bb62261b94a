"""The tokenizer interface shared by every tokenizer plugin, and the vocabulary bookkeeping.

A tokenizer turns caption text into fixed-width int32 id rows for the captioner and back:

    <START> s1 s2 ... sn <END> <NULL> ... <NULL>        (width max_length + 2)

Ids 0..3 are the CS231n special tokens ``<NULL> <START> <END> <UNK>``; the symbols seen in the
training text follow by descending count, ties in code-point ("alphabetical") order. Subclasses
say what a symbol is (:meth:`Tokenizer.tokenize`), what canonical text a caption reads as
(:meth:`Tokenizer.normalize`) and how symbols are joined back (:meth:`Tokenizer.join`).

The width is fixed (not the longest caption of the batch) so every batch, split and dataset encoded
with one tokenizer has the same shape, as the CS231n captioner expects.
"""

from __future__ import annotations

import logging
import re
import string
from collections import Counter
from itertools import chain, repeat
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

NULL, START, END, UNK = "<NULL>", "<START>", "<END>", "<UNK>"
SPECIAL_TOKENS: tuple[str, ...] = (NULL, START, END, UNK)
NULL_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3

# Splits text around the literal <UNK> token (kept by the capturing group), which CS231n caption
# files contain for rare words; every tokenizer keeps it as one symbol.
UNK_SPLIT = re.compile(f"({re.escape(UNK)})")
_PUNCTUATION_BYTES = string.punctuation.encode("ascii")
_STRIP_PUNCTUATION = str.maketrans("", "", string.punctuation)


class NotFittedError(RuntimeError):
    """The tokenizer has no vocabulary yet."""


class Tokenizer:
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
        self.max_length = _check_int("max_length", self.default_max_length
                                     if max_length is None else max_length, minimum=1)
        self.min_count = _check_int("min_count", min_count, minimum=1)
        self.max_vocab = (None if max_vocab is None
                          else _check_int("max_vocab", max_vocab, minimum=len(SPECIAL_TOKENS)))
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

    # ----- vocabulary --------------------------------------------------------------------------
    def fit(self, train_texts: Iterable[str]) -> "Tokenizer":
        """Build the vocabulary from the training captions; returns ``self``."""
        if isinstance(train_texts, str):
            raise TypeError("fit() takes a list of caption strings, not one string")
        counts: Counter[str] = Counter()
        for text in train_texts:
            counts.update(self.tokenize(_check_text(text)))
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
        texts = [_check_text(text) for text in texts]
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
        n, width = len(lengths), self.max_length + 2
        out = np.full((n, width), NULL_ID, dtype=np.int32)
        out[:, 0] = START_ID
        too_long = lengths > self.max_length
        truncated = int(np.count_nonzero(too_long))
        kept_lengths = np.minimum(lengths, self.max_length)
        if truncated:  # drop each long caption's symbols past max_length
            ends = np.cumsum(lengths)
            cut_from = (ends - lengths + self.max_length)[too_long]
            change = np.zeros(len(flat_ids) + 1, dtype=np.int32)
            np.add.at(change, cut_from, 1)
            np.add.at(change, ends[too_long], -1)
            flat_ids = flat_ids[np.cumsum(change[:-1]) == 0]
        body = out[:, 1 : width - 1]
        body[np.arange(self.max_length) < kept_lengths[:, None]] = flat_ids
        out[np.arange(n), kept_lengths + 1] = END_ID
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
        idx_to_word = self.idx_to_word
        array = np.asarray(ids)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"decode() takes a 2-D integer id array (or one 1-D row), got "
                             f"shape {array.shape} dtype {array.dtype}")
        if array.size and (array.min() < 0 or array.max() >= len(idx_to_word)):
            raise ValueError(f"ids span [{array.min()}, {array.max()}] but the vocabulary has "
                             f"{len(idx_to_word)} entries: were they made by another tokenizer?")
        captions = []
        for row in array.tolist():
            symbols = []
            for idx in row:
                if idx == END_ID:
                    break
                if idx != NULL_ID and idx != START_ID:
                    symbols.append(idx_to_word[idx])
            captions.append(self.join(symbols))
        return captions

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
        missing = [key for key in ("name", "options", "idx_to_word") if key not in d]
        if missing:
            raise ValueError(f"tokenizer dict is missing key(s) {missing}; expected the output of "
                             "Tokenizer.to_dict()")
        target = cls
        if not cls.name:
            from capx.registry import TOKENIZERS  # late import: the registry imports this package

            target = TOKENIZERS.get(d["name"])
        elif d["name"] != cls.name:
            raise ValueError(f"tokenizer dict is for {d['name']!r}, not {cls.name!r}; "
                             "use Tokenizer.from_dict to pick the class by name")
        tokenizer = target(**d["options"])
        tokenizer.load_state_dict(d.get("state") or {})
        tokenizer._set_vocabulary([str(word) for word in d["idx_to_word"]])
        return tokenizer

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        vocab = f"vocab_size={self.vocab_size}" if self.is_fitted else "not fitted"
        return f"{type(self).__name__}({options}; {vocab})"


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


def _check_int(option: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"tokenizer option {option!r} must be an integer >= {minimum}, "
                         f"got {value!r}")
    return int(value)


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise TypeError(f"captions must be strings, got {type(text).__name__}: {text!r:.80}")
    return text
