"""Metrics that compare captioners fairly whatever their tokenizer, computed on caption text.

- :mod:`~capx.metrics.text`: the canonical text form every metric reads;
- :mod:`~capx.metrics.likelihood`: NLL per caption and bits per character of the references
  (open vocabulary with :mod:`~capx.metrics.spelling`'s character model of unknown words);
- :mod:`~capx.metrics.frequency_bins`: bits per character by training frequency of the word;
- :mod:`~capx.metrics.caption_scores`: BLEU-1..4, CIDEr-D (METEOR/SPICE with Java);
- :mod:`~capx.metrics.failure_modes`: invented words, captions without ``<END>``, ``<UNK>``;
- :mod:`~capx.metrics.cost`: parameters, lengths, speed, peak memory;
- :func:`evaluate`: all of them for one model on one split, as flat MLflow metric names.
"""

from capx.metrics.caption_scores import (
    caption_scores, caption_scores_per_image, corpus_bleu,
)
from capx.metrics.cost import mean_length_tokens, parameter_counts, peak_memory, per_second, timed
from capx.metrics.evaluate import Evaluation, evaluate
from capx.metrics.failure_modes import (
    invented_word_counts, invented_word_rate, invented_words, no_end_rate, unk_rate,
)
from capx.metrics.frequency_bins import bits_per_char_by_frequency, frequency_bins
from capx.metrics.likelihood import (
    Likelihood, bits_per_char, caption_likelihood, caption_nll, position_nll, sequence_nll,
    spelling_nll,
)
from capx.metrics.spelling import CharNgramSpeller
from capx.metrics.surfaces import symbol_surfaces
from capx.metrics.text import canonical_text, canonical_words, char_count, vocabulary, word_counts

__all__ = [
    "CharNgramSpeller", "Evaluation", "Likelihood", "bits_per_char", "bits_per_char_by_frequency",
    "canonical_text", "canonical_words", "caption_likelihood", "caption_nll", "caption_scores",
    "caption_scores_per_image", "char_count", "corpus_bleu", "evaluate", "frequency_bins",
    "invented_word_counts", "invented_word_rate", "invented_words",
    "mean_length_tokens", "no_end_rate", "parameter_counts", "peak_memory", "per_second",
    "position_nll", "sequence_nll", "spelling_nll", "symbol_surfaces", "timed", "unk_rate",
    "vocabulary", "word_counts",
]
