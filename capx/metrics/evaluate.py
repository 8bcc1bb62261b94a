"""One call that evaluates a captioner on a split with the tokenizer-independent metrics."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from capx.decoding import decode, default_max_length
from capx.metrics.caption_scores import caption_scores_per_image
from capx.metrics.cost import mean_length_tokens, peak_memory, per_second, timed
from capx.metrics.failure_modes import (
    invented_word_counts, invented_word_kinds, no_end_rate, unk_rate,
)
from capx.metrics.frequency_bins import frequency_bin_columns, frequency_bins
from capx.metrics.likelihood import Likelihood, caption_likelihood
from capx.metrics.speller_sensitivity import open_nll_under, speller_entries
from capx.metrics.text import canonical_words, vocabulary
from capx.tokenizers.base import END_ID


class Evaluation(dict):
    """Flat ``{metric name: float}`` (ready for ``mlflow.log_metrics``), plus what was decoded.

    Attributes: ``captions`` (one decoded string per image), ``ids`` (the decoder's id rows),
    ``notes`` (metrics skipped or caveats, as sentences), ``per_image`` (equal-length arrays
    indexed by image row of the split, for a paired bootstrap over images; see
    :func:`evaluate`).
    """

    def __init__(self, metrics: dict[str, float], captions: list[str], ids: np.ndarray,
                 notes: list[str], per_image: dict[str, np.ndarray] | None = None):
        super().__init__(metrics)
        self.captions, self.ids, self.notes = captions, ids, notes
        self.per_image = per_image if per_image is not None else {}


def evaluate(model: Any, tokenizer: Any, split: Any, train_texts: Iterable[str] | set[str],
             decoder: str = "greedy", *, max_length: int | None = None,
             batch_size: int = 500, java_metrics: bool | str = "auto",
             measure_memory: bool = False, speller: Any = None,
             word_counts: Mapping[str, int] | None = None, rare_max: int = 4,
             real_words: set[str] | None = None, spellers: Mapping[str, Any] | None = None,
             **decoder_options: Any) -> Evaluation:
    """Decode one caption per image of ``split`` (a CaptionSplit) and score it.

    ``train_texts``: the training captions, or a set of known words already made from them with
    :func:`capx.metrics.text.vocabulary` (for the invented-word rate). ``max_length`` defaults to
    ``tokenizer.max_length + 1`` tokens (``<END>`` included). ``decoder_options`` go to the
    decoder (e.g. ``beam_width``, ``temperature``, ``seed``). ``measure_memory`` decodes a second
    time under tracemalloc for ``decode_peak_memory_mb``. ``speller``: a fitted
    :class:`~capx.metrics.spelling.CharNgramSpeller` for the open-vocabulary likelihood (without
    it ``bits_per_char`` is the closed one). ``word_counts``: training word counts, for bits/char
    by word frequency (``bpc_unseen``, ``bpc_rare`` with counts 1..``rare_max``,
    ``bpc_frequent``, ...; see :mod:`~capx.metrics.frequency_bins`). ``real_words``: a word
    list held out from training; invented words are then split into real words and non-words
    (``invented_real_word_rate``, ``invented_non_word_rate``). ``spellers``: other fitted
    spellers by name; the references' open bits/char with each (``bits_per_char_speller_<name>``,
    per image ``nll_open_<name>``) and its size (``speller_entries_<name>``).

    Metric names: ``bleu1``..``bleu4``, ``cider`` (``meteor``/``spice`` with Java), the
    likelihood of the references (``nll_per_caption``, ``bits_per_char`` and their ``_closed``
    versions, ``<tokenizer>_token_perplexity``, ``unk_rate_reference``, ``oov_rate_reference``,
    ...), failure modes (``invented_word_rate``, ``no_end_rate``, ``unk_rate_output``), and cost
    (``output_tokens_per_caption``, ``captions_per_second``, ...).

    ``per_image`` of the result, one value per image row (summed over its references where it
    has several): ``nll_open``, ``nll_closed`` (nats), ``chars``, ``references``; ``cider``,
    ``bleu1``..``bleu4`` and the corpus-BLEU counts of
    :func:`~capx.metrics.caption_scores.caption_scores_per_image` (NaN for images without
    references); ``no_end`` (0/1), ``invented_words``, ``words`` of the decoded caption
    (with ``real_words``: ``invented_real_words``, ``invented_non_words``); with
    ``word_counts``: ``nll_<bin>`` and ``chars_<bin>`` for the frequency bins. The
    corpus metrics are aggregates of them: ``bits_per_char = sum(nll_open) / ln 2 /
    sum(chars)``, ``cider`` = the mean of ``cider`` over images with references.
    """
    max_length = default_max_length(tokenizer) if max_length is None else max_length
    features = split.features
    known = train_texts if isinstance(train_texts, (set, frozenset)) else vocabulary(train_texts)

    def run_decoder() -> np.ndarray:
        return decode(model, features, max_length, decoder, batch_size=batch_size,
                      **dict(decoder_options))

    ids, seconds = timed(run_decoder)
    captions = tokenizer.decode(ids)
    metrics, per_image, notes = caption_scores_per_image(captions, split.references(),
                                                         java_metrics)

    likelihood = caption_likelihood(model, tokenizer, features[split.image_idxs],
                                    split.captions, batch_size=batch_size, speller=speller)
    metrics.update(likelihood.summary())
    if word_counts is not None:
        metrics.update(frequency_bins(likelihood, tokenizer, word_counts, rare_max))
        per_image.update(_per_image_sums(
            frequency_bin_columns(likelihood, tokenizer, word_counts, rare_max), split))
    notes.extend(_likelihood_notes(likelihood, speller))
    for name, other in (spellers or {}).items():
        nll = open_nll_under(likelihood, tokenizer, other)
        metrics[f"bits_per_char_speller_{name}"] = (
            float(nll.sum() / likelihood.chars.sum() / np.log(2)) if likelihood.chars.sum()
            else float("nan"))
        metrics[f"speller_entries_{name}"] = speller_entries(other)
        per_image.update(_per_image_sums({f"nll_open_{name}": nll}, split))

    invented, words = invented_word_counts(captions, known)
    per_image.update(_likelihood_per_image(likelihood, split))
    per_image.update({"no_end": (~(ids == END_ID).any(axis=1)).astype(np.int64),
                      "invented_words": invented, "words": words})
    if real_words is not None:
        real, non = invented_word_kinds(captions, known, real_words)
        per_image.update({"invented_real_words": real, "invented_non_words": non})
        metrics["invented_real_word_rate"] = float(real.sum() / words.sum()) if words.sum() else 0.0
        metrics["invented_non_word_rate"] = float(non.sum() / words.sum()) if words.sum() else 0.0
    n = len(captions)
    metrics.update({
        "invented_word_rate": float(invented.sum() / words.sum()) if words.sum() else 0.0,
        "no_end_rate": no_end_rate(ids),
        "unk_rate_output": unk_rate(ids),
        "output_tokens_per_caption": mean_length_tokens(ids),
        "output_words_per_caption":
            float(np.mean([len(canonical_words(c)) for c in captions])) if n else 0.0,
        "decode_seconds": seconds,
        "captions_per_second": per_second(n, seconds),
    })
    if measure_memory:
        _, peak = peak_memory(run_decoder)
        metrics["decode_peak_memory_mb"] = peak / 2**20
    return Evaluation({k: float(v) for k, v in metrics.items()}, captions, ids, notes,
                      per_image)


def _likelihood_per_image(likelihood: Likelihood, split: Any) -> dict[str, np.ndarray]:
    """Reference NLL (open and closed), characters and references summed per image row."""
    def per_image(values: np.ndarray | None) -> np.ndarray:
        return np.bincount(split.image_idxs, weights=values, minlength=split.num_images)

    return {"nll_open": per_image(likelihood.nll), "nll_closed": per_image(likelihood.nll_closed),
            "chars": per_image(likelihood.chars).astype(np.int64),
            "references": per_image(None).astype(np.int64)}


def _per_image_sums(columns: Mapping[str, np.ndarray], split: Any) -> dict[str, np.ndarray]:
    """Per-caption columns summed per image row of ``split``."""
    return {name: np.bincount(split.image_idxs, weights=values, minlength=split.num_images)
            for name, values in columns.items()}


def _likelihood_notes(likelihood: Likelihood, speller: Any) -> list[str]:
    notes = []
    if likelihood.renormalized:
        notes.append(f"{likelihood.renormalized} reference(s) change under the tokenizer's "
                     "normalisation: they are scored in the tokenizer's form, while characters "
                     "are counted in canonical form")
    if speller is None and likelihood.oov_symbols:
        notes.append(f"no speller: bits_per_char is closed-vocabulary ({likelihood.oov_symbols} "
                     "unknown reference symbol(s) cost only P(<UNK>))")
    return notes
