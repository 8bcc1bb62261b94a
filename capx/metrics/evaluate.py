"""One call that evaluates a captioner on a split with the tokenizer-independent metrics."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from capx.decoding import decode, default_max_length
from capx.metrics.caption_scores import caption_scores
from capx.metrics.cost import mean_length_tokens, peak_memory, per_second, timed
from capx.metrics.failure_modes import invented_word_rate, no_end_rate, unk_rate
from capx.metrics.likelihood import caption_likelihood
from capx.metrics.text import canonical_words, vocabulary


class Evaluation(dict):
    """Flat ``{metric name: float}`` (ready for ``mlflow.log_metrics``), plus what was decoded.

    Attributes: ``captions`` (one decoded string per image), ``ids`` (the decoder's id rows),
    ``notes`` (metrics skipped or caveats, as sentences).
    """

    def __init__(self, metrics: dict[str, float], captions: list[str], ids: np.ndarray,
                 notes: list[str]):
        super().__init__(metrics)
        self.captions, self.ids, self.notes = captions, ids, notes


def evaluate(model: Any, tokenizer: Any, split: Any, train_texts: Iterable[str] | set[str],
             decoder: str = "greedy", *, max_length: int | None = None,
             batch_size: int = 500, java_metrics: bool | str = "auto",
             measure_memory: bool = False, **decoder_options: Any) -> Evaluation:
    """Decode one caption per image of ``split`` (a CaptionSplit) and score it.

    ``train_texts``: the training captions, or a set of known words already made from them with
    :func:`capx.metrics.text.vocabulary` (for the invented-word rate). ``max_length`` defaults to
    ``tokenizer.max_length + 1`` tokens (``<END>`` included). ``decoder_options`` go to the
    decoder (e.g. ``beam_width``, ``temperature``, ``seed``). ``measure_memory`` decodes a second
    time under tracemalloc for ``decode_peak_memory_mb``.

    Metric names: ``bleu1``..``bleu4``, ``cider`` (``meteor``/``spice`` with Java), the
    likelihood of the references (``nll_per_caption``, ``bits_per_char``,
    ``<tokenizer>_token_perplexity``, ``unk_rate_reference``, ...), failure modes
    (``invented_word_rate``, ``no_end_rate``, ``unk_rate_output``), and cost
    (``output_tokens_per_caption``, ``captions_per_second``, ...).
    """
    max_length = default_max_length(tokenizer) if max_length is None else max_length
    features = split.features
    known = train_texts if isinstance(train_texts, (set, frozenset)) else vocabulary(train_texts)

    def run_decoder() -> np.ndarray:
        return decode(model, features, max_length, decoder, batch_size=batch_size,
                      **dict(decoder_options))

    ids, seconds = timed(run_decoder)
    captions = tokenizer.decode(ids)
    metrics, notes = caption_scores(captions, split.references(), java_metrics)

    likelihood = caption_likelihood(model, tokenizer, features[split.image_idxs],
                                    split.captions, batch_size=batch_size)
    metrics.update(likelihood.summary())
    if likelihood.renormalized:
        notes.append(f"{likelihood.renormalized} reference(s) change under the tokenizer's "
                     "normalisation: they are scored in the tokenizer's form, while characters "
                     "are counted in canonical form")

    n = len(captions)
    metrics.update({
        "invented_word_rate": invented_word_rate(captions, known),
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
    return Evaluation({k: float(v) for k, v in metrics.items()}, captions, ids, notes)
