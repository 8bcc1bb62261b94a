"""Likelihood of reference captions, comparable across tokenizers.

Per-token losses are not comparable between a char and a word model, so the likelihood is of the
caption *text*: each caption is put in :func:`~capx.metrics.text.canonical_text` form, encoded by
the model's tokenizer (``<START> s1 .. sn <END>``, never truncated), and scored by teacher forcing
through the model's decoding API. The NLL of a caption is the sum over its n symbols and
``<END>`` in nats; bits per character divide the total by ln 2 and by the characters of the same
canonical strings (``<UNK>`` counted as one character), identical for every tokenizer.

Open vocabulary: a symbol of the reference that the tokenizer maps to ``<UNK>`` (an unknown word
for a word model, an unseen character for a char model) has only been priced as "some unknown
symbol". With a ``speller`` (:class:`~capx.metrics.spelling.CharNgramSpeller` fitted on the
training text) it also pays for which one: ``-log P_spell(symbol)``, so every model pays for
every character and the open NLL is the headline. The literal ``<UNK>`` that CS231n caption files
contain is a known one-character symbol for every tokenizer and pays no spelling. How a symbol is
spelled depends on what the tokenizer's ``<UNK>`` stands for:

- character-level tokenizers (every vocabulary entry is one character): one character,
  :meth:`~capx.metrics.spelling.CharNgramSpeller.char_nll`;
- any other (word, subword): a string, :meth:`~capx.metrics.spelling.CharNgramSpeller.nll`
  (its characters and the end of word). So is a run of several unseen characters that one
  ``<UNK>`` stands for (bpe), whatever the vocabulary.

Either is a proper distribution over what ``<UNK>`` can stand for; it also gives mass to symbols
the vocabulary knows (which the model never spells), so the open likelihood is a slightly
deficient, never a flattering, code. Without a speller the open NLL equals the closed one.

A caption is scored on at most :data:`MAX_SCORED_CHARS` characters of its canonical text (a
longer one is cut there, with a warning), so scoring time is linear in the captions' lengths and
bounded per caption.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from capx.metrics.surfaces import symbol_surfaces
from capx.metrics.text import canonical_text, char_count
from capx.tokenizers.base import NULL_ID, SPECIAL_TOKENS, UNK, UNK_ID

log = logging.getLogger(__name__)

#: captions are scored on at most this many characters of their canonical text: scoring is
#: linear in a caption's length, and a caption this long is not a caption (a stray 100,000-char
#: line stalled every epoch's validation); the longest COCO caption has a few hundred
MAX_SCORED_CHARS = 1000


@dataclass
class Likelihood:
    """Per-caption NLL (nats) and the counts the summary metrics are made of.

    ``nll`` is open-vocabulary (spelling of unknown symbols included; equal to ``nll_closed``
    when no speller was given). ``symbol_nll`` holds the open NLL of every scored token, the
    captions one after another, each caption's ``tokens[i]`` values ending with its ``<END>``;
    ``texts`` are the scored canonical strings (for :mod:`~capx.metrics.frequency_bins`).
    """

    nll: np.ndarray            # (N,) open NLL, nats per caption, <END> included
    tokens: np.ndarray         # (N,) tokens scored per caption, <END> included
    chars: np.ndarray          # (N,) characters of the canonical caption text
    unk_tokens: int            # scored tokens that are <UNK> (<END> excluded), literals included
    tokenizer_name: str
    renormalized: int = 0      # captions the tokenizer does not keep in canonical form
    nll_closed: np.ndarray | None = None  # (N,) closed NLL: an unknown symbol costs P(<UNK>)
    oov_symbols: int = 0       # symbols mapped to <UNK> that are not the literal "<UNK>"
    symbol_nll: np.ndarray | None = None  # (sum(tokens),) open NLL per scored token
    texts: list[str] | None = None        # the canonical caption strings scored

    def __post_init__(self) -> None:
        if self.nll_closed is None:
            self.nll_closed = self.nll

    def summary(self) -> dict[str, float]:
        """Flat metrics: open and closed NLL per caption and bits per char (open is the
        headline), per-token perplexity (closed: the model's own loss), <UNK> and OOV rates."""
        total_tokens, total_chars, n = int(self.tokens.sum()), int(self.chars.sum()), len(self.nll)
        symbols = total_tokens - n  # tokens without <END>
        out = {}
        for suffix, nll in (("", self.nll), ("_closed", self.nll_closed)):
            total = float(nll.sum())
            out[f"nll_per_caption{suffix}"] = total / n if n else math.nan
            out[f"bits_per_char{suffix}"] = (total / math.log(2) / total_chars if total_chars
                                             else math.nan)
        closed = float(self.nll_closed.sum())
        out.update({
            f"{self.tokenizer_name}_token_perplexity":
                perplexity(closed / total_tokens) if total_tokens else math.nan,
            "tokens_per_reference": total_tokens / n if n else math.nan,
            "chars_per_reference": total_chars / n if n else math.nan,
            "unk_rate_reference": self.unk_tokens / symbols if symbols else 0.0,
            "oov_rate_reference": self.oov_symbols / symbols if symbols else 0.0,
        })
        return out


def perplexity(nll_per_token: float) -> float:
    """``exp(nll_per_token)``; inf, not an OverflowError, for a diverged model (over ~709 nats)."""
    with np.errstate(over="ignore"):
        return float(np.exp(np.float64(nll_per_token)))


def encode_whole(tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
    """Encode ``texts`` with a copy of ``tokenizer`` wide enough that no caption is cut."""
    wide = copy.copy(tokenizer)
    wide.max_length = max([len(t) for t in texts] + [1]) + 1
    while True:
        ids = wide.encode(list(texts))
        if wide.last_truncated_fraction == 0:
            return ids
        wide.max_length *= 2


def sequence_nll(model: Any, features: np.ndarray, captions: np.ndarray,
                 batch_size: int = 512) -> np.ndarray:
    """NLL (nats) of each id row ``<START> .. <END> <NULL>..`` given its image feature row.

    Teacher forcing with ``model.initial_state`` / ``model.step_scores``; ``<NULL>`` targets are
    masked, so the sum matches ``model.loss`` times the batch size. Rows are scored in batches
    of similar length.
    """
    return position_nll(model, features, captions, batch_size).sum(axis=1)


def position_nll(model: Any, features: np.ndarray, captions: np.ndarray,
                 batch_size: int = 512) -> np.ndarray:
    """Per-target NLL (nats), shape ``(N, width - 1)``: column t is ``-log p(captions[:, t+1])``
    given the tokens up to t (0 where the target is ``<NULL>``); see :func:`sequence_nll`."""
    captions = np.asarray(captions)
    lengths = (captions[:, 1:] != NULL_ID).sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(captions), max(captions.shape[1] - 1, 0)))
    for i in range(0, len(order), batch_size):
        rows = order[i:i + batch_size]
        steps = int(lengths[rows].max())
        out[rows, :steps] = _batch_nll(model, features[rows], captions[rows, : steps + 1])
    return out


def _batch_nll(model: Any, features: np.ndarray, captions: np.ndarray) -> np.ndarray:
    """(n, steps) NLL of each target of a batch by teacher forcing, 0 at ``<NULL>`` targets."""
    n, steps = captions.shape[0], captions.shape[1] - 1
    table = model.input_table() if model.vocab_size <= n * steps else None
    state = model.initial_state(features)
    nll = np.zeros((n, steps))
    for t in range(steps):
        scores, state = model.step_scores(captions[:, t].astype(np.intp), state, table)
        target = captions[:, t + 1]
        nll[:, t] = -np.where(target != NULL_ID, _target_log_prob(scores, target), 0.0)
    return nll


def _target_log_prob(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``log softmax(scores)[row, target[row]]`` per row, in the scores' precision."""
    top = scores.max(axis=1)
    shifted = scores - top[:, None]
    np.exp(shifted, out=shifted)
    log_norm = np.log(shifted.sum(axis=1, dtype=np.float64))
    return scores[np.arange(len(target)), target].astype(np.float64) - top - log_norm


def caption_likelihood(model: Any, tokenizer: Any, features: np.ndarray,
                       texts: Sequence[str], batch_size: int = 512,
                       speller: Any = None) -> Likelihood:
    """Score ``texts`` (one feature row each) in canonical form; see the module docstring.

    ``speller``: a fitted :class:`~capx.metrics.spelling.CharNgramSpeller` (its ``nll`` and
    ``char_nll``) for the open-vocabulary NLL; without one, ``nll`` is the closed NLL.
    """
    features = np.asarray(features)
    if len(features) != len(texts):
        raise ValueError(f"{len(texts)} captions but {len(features)} feature rows: pass one "
                         "feature row per caption (e.g. split.features[split.image_idxs])")
    canonical = [canonical_text(t) for t in texts]
    cut = sum(len(t) > MAX_SCORED_CHARS for t in canonical)
    if cut:
        log.warning("%d caption(s) longer than %d characters are scored on their first %d "
                    "(the longest has %d)", cut, MAX_SCORED_CHARS, MAX_SCORED_CHARS,
                    max(map(len, canonical)))
        canonical = [canonical_text(t[:MAX_SCORED_CHARS]) if len(t) > MAX_SCORED_CHARS else t
                     for t in canonical]
    renormalized = sum(tokenizer.normalize(t) != t for t in canonical)
    ids = encode_whole(tokenizer, canonical)
    body = ids[:, 1:]
    per_position = position_nll(model, features, ids, batch_size=batch_size)
    closed = per_position.sum(axis=1)
    spelling, oov = spelling_nll(tokenizer, canonical, ids, speller)
    if speller is not None:
        per_position += spelling
    return Likelihood(
        nll=per_position.sum(axis=1) if speller is not None else closed,
        tokens=(body != NULL_ID).sum(axis=1),
        chars=np.array([char_count(t) for t in canonical], dtype=np.int64),
        unk_tokens=int((body == UNK_ID).sum()),
        tokenizer_name=str(getattr(tokenizer, "name", "") or "model"),
        renormalized=int(renormalized),
        nll_closed=closed,
        oov_symbols=oov,
        symbol_nll=per_position[body != NULL_ID],
        texts=canonical,
    )


def spelling_nll(tokenizer: Any, texts: Sequence[str], ids: np.ndarray,
                 speller: Any = None) -> tuple[np.ndarray, int]:
    """Spelling cost (nats) of each out-of-vocabulary symbol at its target column, and their count.

    ``ids`` are ``texts`` encoded whole; the result is shaped like :func:`position_nll`'s
    (zeros without a ``speller``: only the count is made). An OOV symbol is one encoded as
    ``<UNK>`` whose text (:func:`symbol_surfaces`, without the space before it) is not the
    literal ``<UNK>``; it is priced as that text.
    """
    ids = np.asarray(ids)
    costs = np.zeros((len(ids), max(ids.shape[1] - 1, 0)))
    count, char_level = 0, is_char_level(tokenizer)
    for row in np.flatnonzero((ids == UNK_ID).any(axis=1)):
        surfaces = symbol_surfaces(tokenizer, texts[row])
        targets = ids[row, 1:]
        if len(surfaces) != int((targets != NULL_ID).sum()) - 1:
            raise RuntimeError(f"the {tokenizer.name!r} tokenizer makes {len(surfaces)} symbols "
                               f"of {texts[row]!r} but encodes it as {targets.tolist()}: its "
                               "tokenize() and encode() disagree")
        for j in np.flatnonzero(targets[: len(surfaces)] == UNK_ID):
            spelled = surfaces[j].lstrip(" ")
            if spelled != UNK:
                count += 1
                if speller is not None:  # a run of several characters is spelled as a string
                    one_char = char_level and len(spelled) == 1
                    costs[row, j] = (speller.char_nll if one_char else speller.nll)(spelled)
    return costs, count


def is_char_level(tokenizer: Any) -> bool:
    """Whether every vocabulary entry besides the special tokens is one character (so the
    tokenizer's ``<UNK>`` stands for one character)."""
    symbols = tokenizer.idx_to_word[len(SPECIAL_TOKENS):]
    return bool(symbols) and all(len(s) == 1 for s in symbols)


def caption_nll(model: Any, tokenizer: Any, features: np.ndarray, texts: Sequence[str],
                batch_size: int = 512, speller: Any = None) -> np.ndarray:
    """Per-caption NLL in nats of the canonical caption text (symbols and ``<END>``; open
    vocabulary with a ``speller``, closed without)."""
    return caption_likelihood(model, tokenizer, features, texts, batch_size, speller).nll


def bits_per_char(model: Any, tokenizer: Any, features: np.ndarray, texts: Sequence[str],
                  batch_size: int = 512, speller: Any = None) -> float:
    """Total NLL / ln 2 / total characters of the canonical caption texts (open vocabulary
    with a ``speller``, closed without)."""
    return caption_likelihood(model, tokenizer, features, texts, batch_size, speller).summary()[
        "bits_per_char"]
