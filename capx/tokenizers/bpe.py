"""Subword tokenizer: BPE pieces learned by sentencepiece, ``<UNK>`` literals kept whole.

Between char (a few dozen symbols, ~50 per caption) and word (thousands of symbols, ~10 per
caption): ``vocab_size`` sets where. The pieces are learned from the training captions by
`sentencepiece <https://github.com/google/sentencepiece>`_ (``model_type="bpe"``), trained in
memory; the trained model is the tokenizer's learned state, stored in checkpoints with it.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
from collections import Counter
from itertools import chain
from typing import Any, Iterable, Sequence

import numpy as np

from capx.registry import TOKENIZERS
from capx.tokenizers.base import (
    SPECIAL_TOKENS, UNK, UNK_ID, Tokenizer, _check_int, _check_text, clean_text, split_unk,
)

logger = logging.getLogger(__name__)

PUNCTUATION_MODES = ("keep", "strip")

# sentencepiece writes a space as this marker and starts every word with it; the capx symbols are
# the pieces as sentencepiece spells them ("▁dog", "s"), so a vocabulary reads as usual.
SPACE_MARK = "\u2581"
# A literal SPACE_MARK in a caption would read as a space: it reaches sentencepiece as this
# private-use character instead (learned like any other) and comes back as itself.
_MARK_ESCAPE = "\U0010fffd"
# Characters sentencepiece cannot be given or learn (lone surrogates, NUL), and the escape above
# when it is literally in the text, reach sentencepiece as this noncharacter, which fit() never
# lets it learn: they always become <UNK>.
_NEVER_SEEN = "\uffff"
_UNREPRESENTABLE = re.compile("[\x00\ud800-\udfff\uffff\U0010fffd]")
_META_PIECES = 2  # sentencepiece's own <unk> and the user-defined <UNK> literal


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
        self.target_vocab_size = _check_int("vocab_size", vocab_size, minimum=2)
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
        ids = self._sp.encode(_to_sentencepiece(self.normalize(text)))
        return [idx_to_word[i] for i in self._id_table[ids].tolist()] if ids else []

    def join(self, symbols: Sequence[str]) -> str:
        surface = self._surface
        text = "".join([surface[s] if s in surface else _piece_surface(s) for s in symbols])
        return text[1:] if text.startswith(" ") else text  # the word-start mark of the first word

    def _symbol_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        id_lists = self._sp.encode([_to_sentencepiece(self.normalize(t)) for t in texts])
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
        flat = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64,
                           count=int(lengths.sum()))
        return self._id_table[flat], lengths

    # ----- learning ----------------------------------------------------------------------------
    def fit(self, train_texts: Iterable[str]) -> "BPETokenizer":
        """Learn the pieces from the training captions with sentencepiece; returns ``self``."""
        import sentencepiece as spm

        if isinstance(train_texts, str):
            raise TypeError("fit() takes a list of caption strings, not one string")
        sentences = [_to_sentencepiece(self.normalize(_check_text(t))) for t in train_texts]
        counts = Counter(" ".join(sentences).replace(UNK, "").replace(" ", ""))
        counts.pop(_NEVER_SEEN, None)
        kept = sorted((c for c, n in counts.items() if n >= self.min_count),
                      key=lambda c: (-counts[c], c))[: self.num_pieces - 1]  # and the ▁ mark
        dropped = set(counts) - set(kept)  # not learned: they become <UNK>
        table = str.maketrans(dict.fromkeys(dropped | {_NEVER_SEEN}, " "))
        sentences = [_translate_outside_unk(s, table) if dropped or _NEVER_SEEN in s else s
                     for s in sentences]
        if not any(s.strip() for s in sentences):
            raise ValueError(f"the bpe tokenizer has nothing to learn from: the training text "
                             f"holds no characters seen at least min_count={self.min_count} "
                             f"times (besides <UNK> literals)")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, model_type="bpe",
            vocab_size=self.num_pieces + _META_PIECES, hard_vocab_limit=False,
            character_coverage=1.0, byte_fallback=False, normalization_rule_name="identity",
            add_dummy_prefix=True, remove_extra_whitespaces=False, split_by_whitespace=True,
            split_by_unicode_script=True,  # "<" never joins letters: no piece spells "<END>"
            user_defined_symbols=[UNK], unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
            unk_piece=_NEVER_SEEN,  # not "<unk>": sentencepiece would drop that text as its own
            input_sentence_size=0, shuffle_input_sentence=False, max_sentence_length=1 << 20,
            num_threads=1, minloglevel=2)
        self._load_model(model.getvalue())
        self._set_vocabulary(self._vocabulary_from_model())
        logger.info("%s tokenizer: %d characters seen, %d kept, vocabulary of %d "
                    "(vocab_size=%d, min_count=%d, max_vocab=%s)", self.name, len(counts),
                    len(kept), self.vocab_size, self.target_vocab_size, self.min_count,
                    self.max_vocab)
        return self

    def _load_model(self, model: bytes) -> None:
        import sentencepiece as spm

        if not model:
            raise ValueError("the bpe tokenizer state holds an empty sentencepiece model")
        try:  # one encoding thread: the machine's cores are the experiments'
            processor = spm.SentencePieceProcessor(model_proto=model, num_threads=1)
        except (RuntimeError, OSError) as error:
            raise ValueError(f"the bpe tokenizer state holds no valid sentencepiece model: "
                             f"{error}") from error
        if processor.get_piece_size() == 0 or processor.piece_to_id(UNK) == processor.unk_id():
            raise ValueError("the sentencepiece model in the bpe tokenizer state does not keep "
                             f"{UNK} literals whole: was it trained by this tokenizer?")
        self._model, self._sp = model, processor
        self._idx_to_word = self._word_to_idx = None  # a vocabulary must match this model

    def _pieces(self) -> list[tuple[int, str]]:
        """The model's (id, piece) pairs that are capx symbols: all but unknown/control/<UNK>."""
        sp = self._sp
        unk_literal = sp.piece_to_id(UNK)
        return [(i, sp.id_to_piece(i)) for i in range(sp.get_piece_size())
                if i != unk_literal and not (sp.is_unknown(i) or sp.is_control(i))]

    def _vocabulary_from_model(self) -> list[str]:
        return list(SPECIAL_TOKENS) + [piece for _, piece in self._pieces()]

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
        table = np.full(self._sp.get_piece_size(), UNK_ID, dtype=np.int32)
        surface = {UNK: UNK}
        for capx_id, (sp_id, piece) in enumerate(self._pieces(), start=len(SPECIAL_TOKENS)):
            table[sp_id] = capx_id
            surface[piece] = _piece_surface(piece)
        self._id_table, self._surface = table, surface

    # ----- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"model": base64 of the serialized sentencepiece model}``."""
        self._require_fitted()
        return {"model": base64.b64encode(self._model).decode("ascii")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"model"}:
            raise ValueError(f"the bpe tokenizer state must hold exactly the key 'model' (the "
                             f"sentencepiece model saved by to_dict()), got keys {sorted(state)}")
        try:
            model = base64.b64decode(state["model"], validate=True)
        except (TypeError, ValueError, binascii.Error) as error:
            raise ValueError(f"the bpe tokenizer state 'model' is not base64 text: {error}") \
                from error
        self._load_model(model)


def _to_sentencepiece(text: str) -> str:
    """Normalised text as sentencepiece must read it (unchanged for ASCII text, the usual case)."""
    if text.isascii():
        return text.replace("\x00", _NEVER_SEEN) if "\x00" in text else text
    return _UNREPRESENTABLE.sub(_NEVER_SEEN, text).replace(SPACE_MARK, _MARK_ESCAPE)


def _translate_outside_unk(text: str, table: dict[int, str]) -> str:
    """``text.translate(table)``, leaving the ``<UNK>`` literals in it alone."""
    if UNK not in text:
        return text.translate(table)
    return "".join(p if i % 2 else p.translate(table) for i, p in enumerate(split_unk(text)))


def _piece_surface(piece: str) -> str:
    """The text a piece stands for: ``▁`` marks a space; the escaped mark is a literal ``▁``."""
    return piece.replace(SPACE_MARK, " ").replace(_MARK_ESCAPE, SPACE_MARK)
