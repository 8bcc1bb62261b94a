"""Subword tokenizer: BPE pieces learned by sentencepiece, ``<UNK>`` literals kept whole.

Between char (a few dozen symbols, ~50 per caption) and word (thousands of symbols, ~10 per
caption): ``vocab_size`` sets where. The pieces are learned from the training captions by
`sentencepiece <https://github.com/google/sentencepiece>`_ (``model_type="bpe"``), trained in
memory; the trained model is the tokenizer's learned state, stored in checkpoints with it. The
sentencepiece calls and the text it is given are :mod:`capx.tokenizers.spm_model`.
"""

from __future__ import annotations

import logging
from itertools import chain
from typing import Any, Iterable, Sequence

import numpy as np

from capx.registry import TOKENIZERS
from capx.tokenizers.base import SPECIAL_TOKENS, Tokenizer, check_int, check_text, clean_text
from capx.tokenizers.spm_model import (  # noqa: F401  (SPACE_MARK: the word-start mark)
    SPACE_MARK, decode_model, encode_model, keep_characters, load_processor, lookup_tables,
    model_pieces, piece_surface, to_sentencepiece, train_model,
)

logger = logging.getLogger(__name__)

PUNCTUATION_MODES = ("keep", "strip")


@TOKENIZERS.register("bpe")
class BPETokenizer(Tokenizer):
    """Subword symbols: sentencepiece BPE pieces over the canonical caption text.

    Normalised text: exactly as the char tokenizer's (lowercased with ``lowercase=True``, ASCII
    punctuation removed with ``punctuation="strip"`` or kept with ``"keep"``, whitespace runs
    collapsed to one space, ends stripped), so ``decode(encode(text)) == normalize(text)`` for
    text whose characters were all seen in training.

    Symbols are sentencepiece pieces: a word's first piece carries the ``▁`` word-start marker
    (``"a dog"`` -> ``▁a ▁dog``; ``"dogs"`` -> ``▁dog s``). A literal ``<UNK>`` (CS231n caption
    files contain it) is ONE symbol with the ``<UNK>`` id wherever it stands; a word-start mark
    before it is a ``▁`` symbol of its own (``"a <UNK> dog"`` -> ``▁a ▁ <UNK> ▁dog``,
    ``"<UNK>s"`` -> ``▁ <UNK> s``), so spacing round-trips. A run of characters unseen in training
    becomes one ``<UNK>`` (``"a ü dog"`` -> ``▁a ▁ <UNK> ▁dog``).

    Options (keyword only):

    - ``vocab_size``: how many pieces to learn; the vocabulary is the four special tokens plus at
      most this many pieces (fewer when the training text has fewer to merge). Every character
      kept (see ``min_count``) is a piece, the rest are merges.
    - ``max_length``: symbols per caption (longer captions are cut).
    - ``lowercase``, ``punctuation``: as for the char tokenizer.
    - ``min_count``: characters seen fewer times in training are not learned and become ``<UNK>``
      (so ``<UNK>`` is a trained symbol); merges are sentencepiece's, by pair frequency.
    - ``max_vocab``: caps the whole vocabulary, special tokens included, like the other tokenizers:
      at most ``min(vocab_size, max_vocab - 4)`` pieces are learned.

    The ``vocab_size`` option is kept as ``target_vocab_size``; the ``vocab_size`` property is the
    size of the vocabulary learned, as for every tokenizer (at most ``4 + vocab_size``).

    When there are more distinct characters than pieces allowed, the rarest characters (ties in
    code-point order) are dropped and become ``<UNK>``. Training is deterministic (one thread, no
    sampling): the same captions give the same vocabulary, ordered as sentencepiece ranks it.
    """

    default_max_length = 40

    def __init__(self, *, vocab_size: int = 1000, max_length: int | None = None,
                 lowercase: bool = True, punctuation: str = "strip", min_count: int = 1,
                 max_vocab: int | None = None) -> None:
        if not isinstance(lowercase, bool):
            raise ValueError(f"bpe tokenizer option 'lowercase' must be true or false, "
                             f"got {lowercase!r}")
        if punctuation not in PUNCTUATION_MODES:
            raise ValueError(f"bpe tokenizer option 'punctuation' must be one of "
                             f"{list(PUNCTUATION_MODES)}, got {punctuation!r}")
        self.target_vocab_size = check_int("vocab_size", vocab_size, minimum=2)
        self.lowercase = lowercase
        self.punctuation = punctuation
        super().__init__(max_length=max_length, min_count=min_count, max_vocab=max_vocab)
        if self.num_pieces < 2:
            raise ValueError(f"bpe tokenizer option 'max_vocab' must leave room for at least 2 "
                             f"pieces besides the {len(SPECIAL_TOKENS)} special tokens, got "
                             f"max_vocab={self.max_vocab}")
        self._model: bytes | None = None
        self._sp: Any = None
        self._id_table = np.zeros(0, dtype=np.int32)  # sentencepiece id -> capx id
        self._surface: dict[str, str] = {}            # capx symbol -> the text it stands for

    @property
    def num_pieces(self) -> int:
        """The most pieces :meth:`fit` learns: ``vocab_size``, capped by ``max_vocab - 4``."""
        if self.max_vocab is None:
            return self.target_vocab_size
        return min(self.target_vocab_size, self.max_vocab - len(SPECIAL_TOKENS))

    def options(self) -> dict[str, Any]:
        return {**super().options(), "vocab_size": self.target_vocab_size,
                "lowercase": self.lowercase, "punctuation": self.punctuation}

    # ----- text -> symbols ---------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        return clean_text(text, self.lowercase, self.punctuation == "strip")

    def tokenize(self, text: str) -> list[str]:
        idx_to_word = self.idx_to_word
        ids = self._sp.encode(to_sentencepiece(self.normalize(text)))
        return [idx_to_word[i] for i in self._id_table[ids].tolist()] if ids else []

    def join(self, symbols: Sequence[str]) -> str:
        surface = self._surface
        text = "".join([surface[s] if s in surface else piece_surface(s) for s in symbols])
        return text[1:] if text.startswith(" ") else text  # the word-start mark of the first word

    def _symbol_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        id_lists = self._sp.encode([to_sentencepiece(self.normalize(t)) for t in texts])
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
        flat = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64,
                           count=int(lengths.sum()))
        return self._id_table[flat], lengths

    # ----- learning ----------------------------------------------------------------------------
    def fit(self, train_texts: Iterable[str]) -> "BPETokenizer":
        """Learn the pieces from the training captions with sentencepiece; returns ``self``."""
        if isinstance(train_texts, str):
            raise TypeError("fit() takes a list of caption strings, not one string")
        sentences = [to_sentencepiece(self.normalize(check_text(t))) for t in train_texts]
        sentences, counts, kept = keep_characters(sentences, self.min_count, self.num_pieces)
        if not any(s.strip() for s in sentences):
            raise ValueError(f"the bpe tokenizer has nothing to learn from: the training text "
                             f"holds no characters seen at least min_count={self.min_count} "
                             f"times (besides <UNK> literals)")
        self._load_model(train_model(sentences, self.num_pieces))
        self._set_vocabulary(self._vocabulary_from_model())
        logger.info("%s tokenizer: %d characters seen, %d kept, vocabulary of %d "
                    "(vocab_size=%d, min_count=%d, max_vocab=%s)", self.name, len(counts),
                    len(kept), self.vocab_size, self.target_vocab_size, self.min_count,
                    self.max_vocab)
        return self

    def _load_model(self, model: bytes) -> None:
        self._model, self._sp = model, load_processor(model)
        self._idx_to_word = self._word_to_idx = None  # a vocabulary must match this model

    def _vocabulary_from_model(self) -> list[str]:
        return list(SPECIAL_TOKENS) + [piece for _, piece in model_pieces(self._sp)]

    def _on_vocabulary_set(self) -> None:
        if self._sp is None:
            self._idx_to_word = self._word_to_idx = None
            raise ValueError("a bpe vocabulary comes with its sentencepiece model: call fit() "
                             "or from_dict() with the state saved by to_dict()")
        expected = self._vocabulary_from_model()
        if self.idx_to_word != expected:
            self._idx_to_word = self._word_to_idx = None
            raise ValueError(f"the bpe vocabulary does not match its sentencepiece model "
                             f"({len(expected)} symbols expected): were the vocabulary and the "
                             f"state saved together?")
        self._id_table, self._surface = lookup_tables(self._sp)

    # ----- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"model": base64 of the serialized sentencepiece model}``."""
        self._require_fitted()
        return {"model": encode_model(self._model)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_model(decode_model(state))
