"""How much a word model's open-vocabulary cost rests on the speller: the same references,
their unknown words priced by other spellers, with no re-training and no second forward pass.

The open NLL of a caption is its closed NLL plus the spelling of its out-of-vocabulary symbols
(:mod:`capx.metrics.likelihood`), so re-pricing only the spelling gives the open NLL under any
speller. :func:`study_spellers` makes the ones the study compares: interpolated Kneser-Ney
character n-grams of orders 3, 5 (the study's own) and 7, and a uniform-character speller
(every character of the training alphabet, and the end of the word, equally likely: what a
speller that learnt nothing charges, the upper end of the range). :func:`speller_entries` counts
a speller's size (its n-gram probabilities and back-off weights), to set beside the model's
parameters.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from capx.metrics.likelihood import Likelihood, encode_whole, spelling_nll
from capx.metrics.spelling import BOW, EOW, CharNgramSpeller, ngram_counts
from capx.metrics.text import word_counts

#: the spellers of the sensitivity analysis, by the name their metrics carry
ORDERS = {"kn3": 3, "kn5": 5, "kn7": 7}


class UniformCharSpeller(CharNgramSpeller):
    """Every symbol drawn from the base distribution only: uniform over the training alphabet,
    the end of word and an escape to unseen code points (a proper distribution over words, like
    its parent's)."""

    def __init__(self, unit: str = "types") -> None:
        super().__init__(order=1, unit=unit)

    def fit_counts(self, counts: Mapping[str, int]) -> "UniformCharSpeller":
        _, alphabet = ngram_counts(counts, 1, self.unit)
        self._tables, self._alphabet, self._cache, self._fitted = {}, frozenset(alphabet), {}, True
        self._log_first_char_mass = math.log1p(-self._prob(BOW[:0], EOW))
        return self


def study_spellers(train_texts: Iterable[str]) -> dict[str, CharNgramSpeller]:
    """The sensitivity analysis's spellers, fitted on the word types of ``train_texts``."""
    counts = word_counts(train_texts)
    spellers: dict[str, CharNgramSpeller] = {
        name: CharNgramSpeller(order=order).fit_counts(counts) for name, order in ORDERS.items()}
    spellers["uniform"] = UniformCharSpeller().fit_counts(counts)
    return spellers


def speller_entries(speller: Any) -> int:
    """A fitted speller's stored numbers: one per n-gram probability and one back-off weight per
    context (0 for the uniform speller, whose only state is its alphabet)."""
    tables = getattr(speller, "_tables", {})
    return int(sum(len(probs) + 1 for probs, _ in tables.values()))


def open_nll_under(likelihood: Likelihood, tokenizer: Any, speller: Any) -> np.ndarray:
    """Each caption's open NLL (nats) with its unknown symbols priced by ``speller``."""
    if likelihood.texts is None or likelihood.nll_closed is None:
        raise ValueError("this Likelihood has no texts: make it with "
                         "capx.metrics.caption_likelihood")
    ids = encode_whole(tokenizer, likelihood.texts)
    spelling, _ = spelling_nll(tokenizer, likelihood.texts, ids, speller)
    return likelihood.nll_closed + spelling.sum(axis=1)
