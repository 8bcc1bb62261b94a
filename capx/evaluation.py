"""Evaluation inside an experiment: cheap text metrics every epoch, the full set at the end.

The metrics themselves live in :mod:`capx.metrics`; this module picks what to score and when, and
names the results for MLflow:

- ``val/nll_per_caption`` and ``val/bits_per_char`` every epoch, on a fixed subset of the val
  captions in canonical text form (the same strings for every tokenizer);
- ``test/...`` once training ends: :func:`capx.metrics.evaluate` on the val images (decoded with
  the configured decoder) plus the cost of a training step and the mean timing of the epochs.

The datasets have two splits; the end-of-run scores are on the val split, which training never
reads (it only feeds the per-epoch monitoring and the choice of ``best.npz``; the scores are of
the last-epoch model).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from capx.datasets.base import CaptionSplit
from capx.metrics import caption_likelihood, evaluate, peak_memory, vocabulary
from capx.tokenizers.base import NULL_ID, UNK_ID

TEST_PREFIX = "test/"
VAL_PREFIX = "val/"


def evenly_spread_rows(count: int, limit: int | None) -> np.ndarray:
    """``limit`` caption rows spread evenly over ``count`` (all of them when ``limit`` is None).

    Deterministic and RNG-free, so every epoch (and every tokenizer) scores the same captions.
    """
    keep = count if limit is None else min(count, int(limit))
    if count == 0 or keep == 0:
        return np.zeros(0, dtype=np.int64)
    return np.linspace(0, count - 1, keep).round().astype(np.int64)


def text_validation(split: CaptionSplit, tokenizer: Any, max_captions: int | None,
                    batch_size: int = 500) -> Callable[[Any], dict[str, float]]:
    """A function ``model -> {"nll_per_caption", "bits_per_char"}`` on fixed val captions."""
    rows = evenly_spread_rows(len(split.captions), max_captions)
    texts = [split.captions[i] for i in rows]
    features = split.features[split.image_idxs[rows]]

    def score(model: Any) -> dict[str, float]:
        if not texts:
            return {}
        summary = caption_likelihood(model, tokenizer, features, texts,
                                     batch_size=batch_size).summary()
        return {"nll_per_caption": summary["nll_per_caption"],
                "bits_per_char": summary["bits_per_char"]}

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
        "data/train_tokens_per_caption": float(tokens.sum(axis=1).mean()),
        "data/train_unk_rate": float((body == UNK_ID).sum() / symbols) if symbols > 0 else 0.0,
    }


def train_step_peak_memory_mb(model: Any, solver_data: dict[str, Any], batch_size: int) -> float:
    """Peak memory (MiB, tracemalloc) of one forward/backward pass on a training batch."""
    captions = solver_data["train_captions"][:batch_size]
    features = solver_data["train_features"][solver_data["train_image_idxs"][:batch_size]]
    _, peak = peak_memory(model.loss, features, captions)
    return peak / 2**20


def decoder_settings(plain: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The decoder's name and options from the validated config's ``decoding`` section."""
    section = dict(plain.get("decoding") or {"name": "greedy"})
    return str(section.pop("name")), section


def final_evaluation(model: Any, tokenizer: Any, split: CaptionSplit, train_texts: list[str],
                     plain: dict[str, Any]) -> tuple[dict[str, float], Any]:
    """All end-of-run metrics on ``split`` as ``test/...`` names, and the raw Evaluation.

    ``plain`` is the validated config (its ``evaluation`` and ``decoding`` sections).
    """
    settings = plain["evaluation"]
    limit = settings.get("max_eval_images")
    if limit is not None and limit < split.num_images:
        split = first_images(split, int(limit))
    name, options = decoder_settings(plain)
    result = evaluate(model, tokenizer, split, vocabulary(train_texts), name,
                      batch_size=settings.get("val_batch_size", 500),
                      java_metrics=settings.get("java_metrics", False),
                      measure_memory=bool(settings.get("measure_memory", True)), **options)
    metrics = {f"{TEST_PREFIX}{key}": value for key, value in result.items()}
    metrics[f"{TEST_PREFIX}images"] = float(split.num_images)
    metrics[f"{TEST_PREFIX}references"] = float(len(split.captions))
    return metrics, result


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
    from capx.metrics import invented_words

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
