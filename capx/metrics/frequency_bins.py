"""Bits per character by how often each reference word was seen in training.

Where a model's bits go: words never seen in training (``unseen``, count 0), rare ones (``rare``,
1..``rare_max`` times) and the rest (``frequent``). The NLL of every scored symbol (open
vocabulary: spelling included) goes to the word it belongs to:

- a symbol belongs to the word of its first character that is not a space (a char model's
  characters, a subword model's pieces, a word model's word); a symbol that is only a space
  belongs to the word before it (for a char model the space is where it says the word is
  finished, which a word model says by its choice of word);
- a word's characters are its own plus the space after it (the last word of a caption has none),
  with ``<UNK>`` counted as one character, so the bins' characters add up to the caption's;
- ``<END>`` goes to a bin of its own, ``end``, which has no characters.

So ``(sum of the bins' NLL + end NLL) / ln 2 / total characters`` is the headline bits/char.
The literal ``<UNK>`` is a word like any other (its count is that of the literal in training).
Words are those of the tokenizer's normal form of the canonical text (the same for the built-in
tokenizers); what text each symbol stands for is read by
:func:`~capx.metrics.surfaces.symbol_surfaces`.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from capx.metrics.likelihood import Likelihood, caption_likelihood
from capx.metrics.surfaces import symbol_surfaces
from capx.metrics.text import char_count

BINS = ("unseen", "rare", "frequent")


def frequency_bins(likelihood: Likelihood, tokenizer: Any, word_counts: Mapping[str, int],
                   rare_max: int = 4) -> dict[str, float]:
    """``bpc_<bin>`` and ``chars_<bin>`` for unseen / rare / frequent words, and ``end_bits``
    per caption, from a :class:`~capx.metrics.likelihood.Likelihood` and the training word
    counts (e.g. a Counter of :func:`~capx.metrics.text.canonical_words` of the train captions).
    """
    nll, chars = dict.fromkeys(BINS, 0.0), dict.fromkeys(BINS, 0)
    end_nll = 0.0
    for caption_chars, costs, end_cost in _word_costs(likelihood, tokenizer, word_counts,
                                                      rare_max):
        for b, count in caption_chars.items():
            chars[b] += count
        for b, cost in costs:
            nll[b] += cost
        end_nll += end_cost
    out: dict[str, float] = {}
    for b in BINS:
        out[f"bpc_{b}"] = nll[b] / math.log(2) / chars[b] if chars[b] else math.nan
        out[f"chars_{b}"] = float(chars[b])
    n = len(likelihood.texts)
    out["end_bits_per_caption"] = end_nll / math.log(2) / n if n else math.nan
    return out


def frequency_bin_columns(likelihood: Likelihood, tokenizer: Any,
                          word_counts: Mapping[str, int], rare_max: int = 4
                          ) -> dict[str, np.ndarray]:
    """Per caption: ``nll_<bin>`` (nats) and ``chars_<bin>`` for each bin, so that per-image
    sums give intervals over images and runs (``bpc_<bin>`` = sum of nll / ln 2 / sum of chars,
    the same as :func:`frequency_bins` up to summation order)."""
    n = len(likelihood.texts or [])
    columns = {f"{kind}_{b}": np.zeros(n) for b in BINS for kind in ("nll", "chars")}
    for i, (caption_chars, costs, _) in enumerate(
            _word_costs(likelihood, tokenizer, word_counts, rare_max)):
        for b, count in caption_chars.items():
            columns[f"chars_{b}"][i] = count
        for b, cost in costs:
            columns[f"nll_{b}"][i] += cost
    return columns


def _word_costs(likelihood: Likelihood, tokenizer: Any, word_counts: Mapping[str, int],
                rare_max: int) -> Iterator[tuple[dict[str, int], list[tuple[str, float]], float]]:
    """For each caption: its characters per bin, (bin, NLL) of each scored symbol but
    ``<END>``, and the NLL of ``<END>``."""
    if likelihood.symbol_nll is None or likelihood.texts is None:
        raise ValueError("this Likelihood has no per-symbol NLL: make it with "
                         "capx.metrics.caption_likelihood")
    offset = 0
    for text, count in zip(likelihood.texts, likelihood.tokens.tolist()):
        costs = likelihood.symbol_nll[offset:offset + count]
        offset += count
        text = tokenizer.normalize(text)
        words = text.split(" ") if text else []
        bins = [_bin(word_counts.get(w, 0), rare_max) for w in words]
        chars = dict.fromkeys(BINS, 0)
        for i, (word, b) in enumerate(zip(words, bins)):
            chars[b] += char_count(word) + (i < len(words) - 1)
        surfaces = symbol_surfaces(tokenizer, text)
        if len(surfaces) != count - 1:
            raise RuntimeError(f"{len(surfaces)} symbols in {text!r} but {count - 1} were "
                               "scored: was the Likelihood made with this tokenizer?")
        symbol_bins = [(bins[word_index], cost) for word_index, cost
                       in zip(surface_words(surfaces), costs[:-1].tolist())]
        yield chars, symbol_bins, float(costs[-1])


def bits_per_char_by_frequency(model: Any, tokenizer: Any, features: np.ndarray,
                               texts: Sequence[str], word_counts: Mapping[str, int], *,
                               rare_max: int = 4, speller: Any = None,
                               batch_size: int = 512) -> dict[str, float]:
    """Score ``texts`` (one feature row each) and split their bits by word frequency; see
    :func:`frequency_bins`."""
    likelihood = caption_likelihood(model, tokenizer, features, texts, batch_size, speller)
    return frequency_bins(likelihood, tokenizer, word_counts, rare_max)


def surface_words(surfaces: Sequence[str]) -> list[int]:
    """The index of the word each symbol belongs to, from the symbols' texts (which concatenate
    to the caption): the word of its first character that is not a space; a symbol that is all
    spaces (or empty) belongs to the word before it."""
    out, spaces = [], 0  # spaces: how many spaces come before the symbol
    for surface in surfaces:
        body = surface.lstrip(" ")
        out.append(spaces + (len(surface) - len(body) if body else 0))
        spaces += surface.count(" ")
    return out


def _bin(count: int, rare_max: int) -> str:
    if count <= 0:
        return "unseen"
    return "rare" if count <= rare_max else "frequent"
