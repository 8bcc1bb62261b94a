"""The sentencepiece side of the bpe tokenizer: what text it is given, training, the model.

:func:`keep_characters` picks the characters sentencepiece may learn (the rest become
``<UNK>``), :func:`train_model` trains a BPE model in memory, deterministically, and returns it
serialised; :func:`load_processor` checks and loads one, :func:`model_pieces` lists its pieces
that are capx symbols (:func:`lookup_tables`: how ids and text map to them), and
:func:`encode_model` / :func:`decode_model` carry it in the tokenizer's JSON state (base64).
Text reaches sentencepiece through :func:`to_sentencepiece`.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections import Counter
from typing import Any

import numpy as np

from capx.tokenizers.base import SPECIAL_TOKENS, UNK, UNK_ID, split_unk

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


def keep_characters(sentences: list[str], min_count: int, num_pieces: int
                    ) -> tuple[list[str], Counter, list[str]]:
    """(the sentences with characters not to learn turned to spaces, every character's count,
    the characters kept): those seen ``min_count`` times, the most frequent (ties in code-point
    order) while they fit in ``num_pieces`` with the word-start mark; ``<UNK>`` literals stay."""
    counts = Counter(" ".join(sentences).replace(UNK, "").replace(" ", ""))
    counts.pop(_NEVER_SEEN, None)
    kept = sorted((c for c, n in counts.items() if n >= min_count),
                  key=lambda c: (-counts[c], c))[: num_pieces - 1]  # and the ▁ mark
    dropped = set(counts) - set(kept)  # not learned: they become <UNK>
    table = str.maketrans(dict.fromkeys(dropped | {_NEVER_SEEN}, " "))
    sentences = [_translate_outside_unk(s, table) if dropped or _NEVER_SEEN in s else s
                 for s in sentences]
    return sentences, counts, kept


def train_model(sentences: list[str], num_pieces: int) -> bytes:
    """A sentencepiece BPE model of ``num_pieces`` pieces (and its own two) learned from
    ``sentences``, serialised; one thread, no sampling, so the same text gives the same model."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, model_type="bpe",
        vocab_size=num_pieces + _META_PIECES, hard_vocab_limit=False,
        character_coverage=1.0, byte_fallback=False, normalization_rule_name="identity",
        add_dummy_prefix=True, remove_extra_whitespaces=False, split_by_whitespace=True,
        split_by_unicode_script=True,  # "<" never joins letters: no piece spells "<END>"
        user_defined_symbols=[UNK], unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
        unk_piece=_NEVER_SEEN,  # not "<unk>": sentencepiece would drop that text as its own
        input_sentence_size=0, shuffle_input_sentence=False, max_sentence_length=1 << 20,
        num_threads=1, minloglevel=2)
    return model.getvalue()


def load_processor(model: bytes) -> Any:
    """A sentencepiece processor for the serialised ``model``, checked to be one this tokenizer
    trained (it keeps ``<UNK>`` literals whole)."""
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
    return processor


def model_pieces(sp: Any) -> list[tuple[int, str]]:
    """The model's (id, piece) pairs that are capx symbols: all but unknown/control/<UNK>."""
    unk_literal = sp.piece_to_id(UNK)
    return [(i, sp.id_to_piece(i)) for i in range(sp.get_piece_size())
            if i != unk_literal and not (sp.is_unknown(i) or sp.is_control(i))]


def lookup_tables(sp: Any) -> tuple[np.ndarray, dict[str, str]]:
    """(sentencepiece id -> capx id, capx symbol -> the text it stands for) for the vocabulary
    the special tokens then :func:`model_pieces` make."""
    table = np.full(sp.get_piece_size(), UNK_ID, dtype=np.int32)
    surface = {UNK: UNK}
    for capx_id, (sp_id, piece) in enumerate(model_pieces(sp), start=len(SPECIAL_TOKENS)):
        table[sp_id] = capx_id
        surface[piece] = piece_surface(piece)
    return table, surface


def encode_model(model: bytes) -> str:
    """The serialised model as base64 text, for the tokenizer's JSON state."""
    return base64.b64encode(model).decode("ascii")


def decode_model(state: dict[str, Any]) -> bytes:
    """The serialised model from a bpe tokenizer state ``{"model": base64 text}``."""
    if set(state) != {"model"}:
        raise ValueError(f"the bpe tokenizer state must hold exactly the key 'model' (the "
                         f"sentencepiece model saved by to_dict()), got keys {sorted(state)}")
    try:
        return base64.b64decode(state["model"], validate=True)
    except (TypeError, ValueError, binascii.Error) as error:
        raise ValueError(f"the bpe tokenizer state 'model' is not base64 text: {error}") \
            from error


def to_sentencepiece(text: str) -> str:
    """Normalised text as sentencepiece must read it (unchanged for ASCII text, the usual case)."""
    if text.isascii():
        return text.replace("\x00", _NEVER_SEEN) if "\x00" in text else text
    return _UNREPRESENTABLE.sub(_NEVER_SEEN, text).replace(SPACE_MARK, _MARK_ESCAPE)


def _translate_outside_unk(text: str, table: dict[int, str]) -> str:
    """``text.translate(table)``, leaving the ``<UNK>`` literals in it alone."""
    if UNK not in text:
        return text.translate(table)
    return "".join(p if i % 2 else p.translate(table) for i, p in enumerate(split_unk(text)))


def piece_surface(piece: str) -> str:
    """The text a piece stands for: ``▁`` marks a space; the escaped mark is a literal ``▁``."""
    return piece.replace(SPACE_MARK, " ").replace(_MARK_ESCAPE, SPACE_MARK)
