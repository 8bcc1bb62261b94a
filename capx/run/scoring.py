"""Evaluation inside an experiment: cheap text metrics every epoch, the full set at the end.

The metrics themselves live in :mod:`capx.metrics`; this module picks what to score and when, and
names the results for MLflow:

- ``val/nll_per_caption`` and ``val/bits_per_char`` every epoch, on a fixed subset of the val
  captions in canonical text form (the same strings for every tokenizer);
- ``test/...`` once training ends, on the selected (best dev) parameters:
  :func:`capx.metrics.evaluate` on the test images (decoded with the configured decoder), an
  image-shuffle control (the same references scored with features permuted across images: how
  much the model uses the image), a beam-search comparison, the cost of a training step and the
  mean timing of the epochs.

Every likelihood is open-vocabulary: a symbol the tokenizer maps to ``<UNK>`` also pays for its
spelling under a character model of words fitted on the training text (the ``speller``), so
every model pays for every character; the closed number is kept as ``*_closed``. When the split
scheme made no test split (``split.scheme=given``) the end-of-run scores are on the val split
and the run is tagged ``capx.test_split=val``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np

from capx.tracking import names
from capx.datasets.base import CaptionSplit
from capx.decoding import decode, default_max_length
from capx.metrics import (caption_likelihood, caption_scores_per_image, canonical_words,
                          evaluate, invented_words, no_end_rate, peak_memory)
from capx.metrics.speller_sensitivity import speller_entries, study_spellers
from capx.metrics.word_list import load_word_list
from capx.run.config import plugin_choice
from capx.run.schemas import EvaluationConfig
from capx.tokenizers.base import END_ID, NULL_ID, UNK_ID

TEST_PREFIX = names.TEST
VAL_PREFIX = names.VAL


def evenly_spread_rows(count: int, limit: int | None) -> np.ndarray:
    """``limit`` caption rows spread evenly over ``count`` (all of them when ``limit`` is None).

    Deterministic and RNG-free, so every epoch (and every tokenizer) scores the same captions.
    """
    keep = count if limit is None else min(count, int(limit))
    if count == 0 or keep == 0:
        return np.zeros(0, dtype=np.int64)
    return np.linspace(0, count - 1, keep).round().astype(np.int64)


def text_validation(split: CaptionSplit, tokenizer: Any, max_captions: int | None,
                    batch_size: int = 500,
                    speller: Any = None) -> Callable[[Any], dict[str, float]]:
    """A function ``model -> {"nll_per_caption", "bits_per_char", "bits_per_char_closed"}`` on
    fixed val captions (open-vocabulary with ``speller``)."""
    rows = evenly_spread_rows(len(split.captions), max_captions)
    texts = [split.captions[i] for i in rows]
    features = split.features[split.image_idxs[rows]]

    def score(model: Any) -> dict[str, float]:
        if not texts:
            return {}
        summary = caption_likelihood(model, tokenizer, features, texts,
                                     batch_size=batch_size, speller=speller).summary()
        return {key: summary[key] for key in
                ("nll_per_caption", "bits_per_char", "bits_per_char_closed") if key in summary}

    return score


def data_statistics(solver_data: dict[str, Any]) -> dict[str, float]:
    """Sequence lengths and ``<UNK>`` share of the encoded training captions (``<END>`` counted
    as a token, ``<START>`` not: what the model predicts)."""
    captions = np.asarray(solver_data["train_captions"])
    if not len(captions):
        return {}
    body = captions[:, 1:]
    tokens = body != NULL_ID
    symbols = int(tokens.sum()) - len(captions)
    return {
        f"{names.DATA}train_tokens_per_caption": float(tokens.sum(axis=1).mean()),
        f"{names.DATA}train_unk_rate": float((body == UNK_ID).sum() / symbols) if symbols > 0 else 0.0,
    }


def train_step_peak_memory_mb(model: Any, solver_data: dict[str, Any], batch_size: int) -> float:
    """Peak memory (MiB, tracemalloc) of one forward/backward pass on a training batch."""
    captions = solver_data["train_captions"][:batch_size]
    features = solver_data["train_features"][solver_data["train_image_idxs"][:batch_size]]
    _, peak = peak_memory(model.loss, features, captions)
    return peak / 2**20


def final_evaluation(model: Any, tokenizer: Any, split: CaptionSplit, train_texts: list[str],
                     settings: EvaluationConfig, decoding: dict[str, Any], seed: int,
                     speller: Any = None) -> tuple[dict[str, float], Any]:
    """All end-of-run metrics on ``split`` as ``test/...`` names, and the raw Evaluation.

    ``settings`` and ``decoding`` are the config's sections of those names. Besides
    :func:`capx.metrics.evaluate`: ``shuffled_bits_per_char`` (features permuted across images)
    and ``image_gain_bits_per_char`` (shuffled minus real) unless
    ``evaluation.shuffled_control=false``, and, with
    ``evaluation.compare_beam``, the BLEU/CIDEr-D of beam search of that width; with
    ``evaluation.compare_spellers``, the open bits/char under other spellers
    (:mod:`capx.metrics.speller_sensitivity`); ``speller_entries``, the speller's size.
    """
    limit = settings.max_eval_images
    if limit is not None and limit < split.num_images:
        split = first_images(split, int(limit))
    name, options = plugin_choice(decoding)
    batch_size = settings.val_batch_size
    word_counts = Counter(w for text in train_texts for w in canonical_words(text))
    real_words = (load_word_list(settings.real_words_file)
                  if settings.real_words_file else None)
    spellers = study_spellers(train_texts) if settings.compare_spellers else None
    result = evaluate(model, tokenizer, split, set(word_counts), name, batch_size=batch_size,
                      java_metrics=settings.java_metrics,
                      measure_memory=bool(settings.measure_memory),
                      speller=speller, word_counts=word_counts, real_words=real_words,
                      spellers=spellers, **options)
    if real_words is not None:
        result.notes.extend(invented_word_examples(result.captions, set(word_counts),
                                                   real_words))
    metrics = {f"{TEST_PREFIX}{key}": value for key, value in result.items()}
    metrics[f"{TEST_PREFIX}images"] = float(split.num_images)
    if speller is not None:  # the open cost's side model, counted beside the parameters
        metrics[f"{TEST_PREFIX}speller_entries"] = float(speller_entries(speller))
    metrics[f"{TEST_PREFIX}references"] = float(len(split.captions))
    if settings.shuffled_control:
        shuffled = shuffled_image_likelihood(model, tokenizer, split, speller, batch_size,
                                             seed=seed)
        metrics[f"{TEST_PREFIX}shuffled_bits_per_char"] = shuffled
        metrics[f"{TEST_PREFIX}image_gain_bits_per_char"] = shuffled - result["bits_per_char"]
    beam_width = settings.compare_beam
    if beam_width and not (name == "beam" and options.get("beam_width") == beam_width):
        beam_metrics, beam_per_image = beam_scores_per_image(model, tokenizer, split,
                                                             int(beam_width), batch_size)
        metrics.update(beam_metrics)
        result.per_image.update(beam_per_image)
    return metrics, result


def invented_word_examples(captions: list[str], known_words: set[str], real_words: set[str],
                           limit: int = 50) -> list[str]:
    """Two sentences listing the invented words (most frequent first) that are real words
    (in the held-out word list) and that are not."""
    invented = invented_words(captions, known_words)
    real = [w for w in invented if w in real_words]
    non = [w for w in invented if w not in real_words]
    return [f"invented words that are real words ({len(real)} distinct): "
            + (" ".join(real[:limit]) or "none"),
            f"invented non-words ({len(non)} distinct): " + (" ".join(non[:limit]) or "none")]


def derangement(count: int, seed: int) -> np.ndarray:
    """A seeded permutation with no fixed point (every image gets another image's feature)."""
    if count < 2:
        return np.arange(count)
    rng = np.random.default_rng([seed, 31337])
    while True:  # about e tries on average
        order = rng.permutation(count)
        if not np.any(order == np.arange(count)):
            return order


def shuffled_image_likelihood(model: Any, tokenizer: Any, split: CaptionSplit, speller: Any,
                              batch_size: int, seed: int) -> float:
    """Bits per char of the split's references when each image's feature is another image's."""
    order = derangement(split.num_images, seed)
    features = split.features[order][split.image_idxs]
    return caption_likelihood(model, tokenizer, features, split.captions,
                              batch_size=batch_size, speller=speller).summary()["bits_per_char"]


def beam_scores(model: Any, tokenizer: Any, split: CaptionSplit, beam_width: int,
                batch_size: int) -> dict[str, float]:
    """BLEU-4 and CIDEr-D (and no-<END> rate) of beam search, for the greedy-vs-beam diagnostic."""
    return beam_scores_per_image(model, tokenizer, split, beam_width, batch_size)[0]


def beam_scores_per_image(model: Any, tokenizer: Any, split: CaptionSplit, beam_width: int,
                          batch_size: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """:func:`beam_scores`, and per image (``beam_`` before the names of
    :func:`capx.metrics.caption_scores_per_image`'s columns, and ``beam_no_end``), so the
    report can give beam CIDEr-D and BLEU-4 intervals and paired differences."""
    ids = decode(model, split.features, default_max_length(tokenizer), "beam",
                 batch_size=batch_size, beam_width=beam_width)
    scores, per_image, _ = caption_scores_per_image(tokenizer.decode(ids), split.references(),
                                                    False)
    metrics = {f"{TEST_PREFIX}beam_bleu4": scores["bleu4"],
               f"{TEST_PREFIX}beam_cider": scores["cider"],
               f"{TEST_PREFIX}beam_no_end_rate": no_end_rate(ids),
               f"{TEST_PREFIX}beam_width": float(beam_width)}
    columns = {f"beam_{name}": values for name, values in per_image.items()}
    columns["beam_no_end"] = (~(ids == END_ID).any(axis=1)).astype(np.int64)
    return metrics, columns


def per_image_json(result: Any, split: CaptionSplit) -> str:
    """The per-image scores of an Evaluation as JSON (the unit a paired bootstrap resamples)."""
    import json

    per_image = getattr(result, "per_image", None) or {}
    columns = {name: [None if v != v else v for v in np.asarray(values, dtype=float).tolist()]
               for name, values in per_image.items()}  # NaN (no reference) as null: strict JSON
    if split.image_ids is not None:
        columns["image_id"] = np.asarray(split.image_ids).astype(int).tolist()
    return json.dumps(columns, separators=(",", ":"))


def first_images(split: CaptionSplit, count: int) -> CaptionSplit:
    """The first ``count`` images of ``split`` with all of their captions."""
    keep = split.image_idxs < count
    return CaptionSplit(
        features=split.features[:count],
        captions=[c for c, k in zip(split.captions, keep) if k],
        image_idxs=split.image_idxs[keep],
        image_ids=None if split.image_ids is None else split.image_ids[:count],
        urls=None if split.urls is None else split.urls[:count],
    )


def timing_summary(epoch_seconds: list[float], iterations_per_epoch: int, batch_size: int,
                   tokens_per_caption: float) -> dict[str, float]:
    """Mean seconds per epoch, total training seconds and training tokens per second."""
    if not epoch_seconds:
        return {}
    mean = float(np.mean(epoch_seconds))
    tokens = iterations_per_epoch * batch_size * tokens_per_caption
    return {
        f"{TEST_PREFIX}seconds_per_epoch": mean,
        f"{TEST_PREFIX}train_seconds": float(np.sum(epoch_seconds)),
        f"{TEST_PREFIX}train_tokens_per_second": tokens / mean if mean > 0 else 0.0,
    }


def evaluation_text(result: Any, split: CaptionSplit, known_words: set[str],
                    limit: int = 50) -> str:
    """Decoded captions beside a reference, the invented words and the notes, for an artifact."""
    lines = [f"# {len(result.captions)} decoded captions; first {limit} with one reference", ""]
    references = split.references()
    for i, caption in enumerate(result.captions[:limit]):
        reference = references[i][0] if i < len(references) and references[i] else ""
        lines.append(f"image {i}: {caption}  |  reference: {reference}")
    invented = invented_words(result.captions, known_words)
    lines += ["", f"# invented words ({len(invented)} distinct): " + " ".join(invented[:200])]
    if result.notes:
        lines += ["", "# notes"] + [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"
