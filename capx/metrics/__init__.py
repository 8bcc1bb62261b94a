"""Metrics that compare captioners fairly whatever their tokenizer, computed on caption text.

- :mod:`~capx.metrics.text`: the canonical text form every metric reads;
- :mod:`~capx.metrics.likelihood`: NLL per caption and bits per character of the references;
- :mod:`~capx.metrics.caption_scores`: BLEU-1..4, CIDEr-D (METEOR/SPICE with Java);
- :mod:`~capx.metrics.failure_modes`: invented words, captions without ``<END>``, ``<UNK>``;
- :mod:`~capx.metrics.cost`: parameters, lengths, speed, peak memory;
- :func:`evaluate`: all of them for one model on one split, as flat MLflow metric names.
"""

from capx.metrics.caption_scores import caption_scores
from capx.metrics.cost import mean_length_tokens, parameter_counts, peak_memory, per_second, timed
from capx.metrics.evaluate import Evaluation, evaluate
from capx.metrics.failure_modes import invented_word_rate, invented_words, no_end_rate, unk_rate
from capx.metrics.likelihood import (
    Likelihood, bits_per_char, caption_likelihood, caption_nll, sequence_nll,
)
from capx.metrics.text import canonical_text, canonical_words, char_count, vocabulary

__all__ = [
    "Evaluation", "Likelihood", "bits_per_char", "canonical_text", "canonical_words",
    "caption_likelihood", "caption_nll", "caption_scores", "char_count", "evaluate",
    "invented_word_rate", "invented_words", "mean_length_tokens", "no_end_rate",
    "parameter_counts", "peak_memory", "per_second", "sequence_nll", "timed", "unk_rate",
    "vocabulary",
]
