"""Likelihood of reference captions, comparable across tokenizers.

Per-token losses are not comparable between a char and a word model, so the likelihood is of the
caption *text*: each caption is put in :func:`~capx.metrics.text.canonical_text` form, encoded by
the model's tokenizer (``<START> s1 .. sn <END>``, never truncated), and scored by teacher forcing
through the model's decoding API. The NLL of a caption is the sum over its n symbols and
``<END>`` in nats; bits per character divide the total by ln 2 and by the characters of the same
canonical strings (``<UNK>`` counted as one character), identical for every tokenizer.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from capx.metrics.text import canonical_text, char_count
from capx.tokenizers.base import NULL_ID, UNK_ID


@dataclass
class Likelihood:
    """Per-caption NLL (nats) and the counts the summary metrics are made of."""

    nll: np.ndarray            # (N,) nats per caption, <END> included
    tokens: np.ndarray         # (N,) tokens scored per caption, <END> included
    chars: np.ndarray          # (N,) characters of the canonical caption text
    unk_tokens: int            # scored tokens that are <UNK> (<END> excluded)
    tokenizer_name: str
    renormalized: int = 0      # captions the tokenizer does not keep in canonical form

    def summary(self) -> dict[str, float]:
        """Flat metrics: NLL per caption, bits per char, per-token perplexity, <UNK> rate."""
        total_nll, total_tokens = float(self.nll.sum()), int(self.tokens.sum())
        total_chars, n = int(self.chars.sum()), len(self.nll)
        symbols = total_tokens - n  # tokens without <END>
        return {
            "nll_per_caption": total_nll / n if n else math.nan,
            "bits_per_char": total_nll / math.log(2) / total_chars if total_chars else math.nan,
            f"{self.tokenizer_name}_token_perplexity":
                math.exp(total_nll / total_tokens) if total_tokens else math.nan,
            "tokens_per_reference": total_tokens / n if n else math.nan,
            "chars_per_reference": total_chars / n if n else math.nan,
            "unk_rate_reference": self.unk_tokens / symbols if symbols else 0.0,
        }


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
    captions = np.asarray(captions)
    lengths = (captions[:, 1:] != NULL_ID).sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    out = np.zeros(len(captions))
    for i in range(0, len(order), batch_size):
        rows = order[i:i + batch_size]
        out[rows] = _batch_nll(model, features[rows], captions[rows, : lengths[rows].max() + 1])
    return out


def _batch_nll(model: Any, features: np.ndarray, captions: np.ndarray) -> np.ndarray:
    n, steps = captions.shape[0], captions.shape[1] - 1
    table = model.input_table() if model.vocab_size <= n * steps else None
    state = model.initial_state(features)
    nll = np.zeros(n)
    for t in range(steps):
        scores, state = model.step_scores(captions[:, t].astype(np.intp), state, table)
        target = captions[:, t + 1]
        nll -= np.where(target != NULL_ID, _target_log_prob(scores, target), 0.0)
    return nll


def _target_log_prob(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``log softmax(scores)[row, target[row]]`` per row, in the scores' precision."""
    top = scores.max(axis=1)
    shifted = scores - top[:, None]
    np.exp(shifted, out=shifted)
    log_norm = np.log(shifted.sum(axis=1, dtype=np.float64))
    return scores[np.arange(len(target)), target].astype(np.float64) - top - log_norm


def caption_likelihood(model: Any, tokenizer: Any, features: np.ndarray,
                       texts: Sequence[str], batch_size: int = 512) -> Likelihood:
    """Score ``texts`` (one feature row each) in canonical form; see the module docstring."""
    features = np.asarray(features)
    if len(features) != len(texts):
        raise ValueError(f"{len(texts)} captions but {len(features)} feature rows: pass one "
                         "feature row per caption (e.g. split.features[split.image_idxs])")
    canonical = [canonical_text(t) for t in texts]
    renormalized = sum(tokenizer.normalize(t) != t for t in canonical)
    ids = encode_whole(tokenizer, canonical)
    nll = sequence_nll(model, features, ids, batch_size=batch_size)
    body = ids[:, 1:]
    return Likelihood(
        nll=nll,
        tokens=(body != NULL_ID).sum(axis=1),
        chars=np.array([char_count(t) for t in canonical], dtype=np.int64),
        unk_tokens=int((body == UNK_ID).sum()),
        tokenizer_name=str(getattr(tokenizer, "name", "") or "model"),
        renormalized=int(renormalized),
    )


def caption_nll(model: Any, tokenizer: Any, features: np.ndarray, texts: Sequence[str],
                batch_size: int = 512) -> np.ndarray:
    """Per-caption NLL in nats of the canonical caption text (symbols and ``<END>``)."""
    return caption_likelihood(model, tokenizer, features, texts, batch_size).nll


def bits_per_char(model: Any, tokenizer: Any, features: np.ndarray, texts: Sequence[str],
                  batch_size: int = 512) -> float:
    """Total NLL / ln 2 / total characters of the canonical caption texts."""
    return caption_likelihood(model, tokenizer, features, texts, batch_size).summary()[
        "bits_per_char"]
