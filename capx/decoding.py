"""Decoders: turn image features into caption ids with a trained captioner.

Every decoder is registered in :data:`capx.registry.DECODERS` and has one signature::

    decoder(model, features, max_length, **options) -> int32 array (N, max_length)

holding generated ids, ``<END>`` included, ``<NULL>`` after it (the :meth:`CaptioningRNN.sample`
convention); a row that never emits ``<END>`` is ``max_length`` tokens long. ``max_length`` counts
tokens with ``<END>``, so a tokenizer whose captions hold at most ``max_length`` symbols needs
``tokenizer.max_length + 1`` (see :func:`default_max_length`).

Decoders use only the model's decoding API: ``initial_state``, ``step_scores``, ``input_table``
and ``generate``.
:func:`decode` picks a decoder by name and runs it over batches of images.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from capx.cells.base import select_state
from capx.registry import DECODERS

Decoder = Callable[..., np.ndarray]


def default_max_length(tokenizer: Any) -> int:
    """Tokens a decoder may emit for ``tokenizer``: its caption length plus one for ``<END>``."""
    return int(tokenizer.max_length) + 1


def decoder_settings(plain: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The decoder's name and options from a (validated or saved) config's ``decoding`` section."""
    section = dict(plain.get("decoding") or {"name": "greedy"})
    return str(section.pop("name")), section


def decode(model: Any, features: np.ndarray, max_length: int, decoder: str = "greedy",
           batch_size: int | None = 500, **options: Any) -> np.ndarray:
    """Run the decoder registered as ``decoder`` over ``features`` in batches of images.

    ``seed`` is turned into one ``rng`` shared by all batches when the decoder takes ``rng``, so
    a seeded run does not repeat the same draws in every batch. Unknown options are an error
    that lists the ones the decoder takes.
    """
    fn = DECODERS.get(decoder)
    accepted = _option_names(fn)
    if "seed" in options and "rng" in accepted and options.get("rng") is None:
        options["rng"] = np.random.default_rng(options.pop("seed"))
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"decoder {decoder!r} does not take option(s) {unknown}; "
                         f"it takes: {sorted(accepted) or '(none)'}")
    features = np.asarray(features)
    n = features.shape[0]
    if batch_size is None or n <= batch_size:
        return fn(model, features, max_length, **options)
    parts = [fn(model, features[i:i + batch_size], max_length, **options)
             for i in range(0, n, batch_size)]
    return np.concatenate(parts, axis=0)


def _option_names(fn: Decoder) -> set[str]:
    params = list(inspect.signature(fn).parameters.values())[3:]  # after model, features, max_length
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _special_ids(model: Any) -> tuple[int, int, int]:
    w2i = model.word_to_idx
    missing = [t for t in ("<NULL>", "<START>", "<END>") if t not in w2i]
    if missing:
        raise ValueError(f"decoding needs {missing} in the model's word_to_idx")
    return w2i["<NULL>"], w2i["<START>"], w2i["<END>"]


def _check_length(max_length: int) -> int:
    if isinstance(max_length, bool) or int(max_length) != max_length or max_length < 1:
        raise ValueError(f"max_length must be a positive integer (tokens incl. <END>), "
                         f"got {max_length!r}")
    return int(max_length)


def _table(model: Any, rows: int, max_length: int) -> np.ndarray | None:
    """The folded input table, when the vocabulary is small next to the tokens to decode."""
    return model.input_table() if model.vocab_size <= rows * max_length else None


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities, computed in float64."""
    x = np.asarray(scores, dtype=np.float64)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


# -- greedy and sampling ---------------------------------------------------------------------


@DECODERS.register("greedy")
def greedy(model: Any, features: np.ndarray, max_length: int) -> np.ndarray:
    """The most likely token at every step (exactly :meth:`CaptioningRNN.sample`)."""
    return model.sample(features, max_length=_check_length(max_length))


@DECODERS.register("sample")
def sample(model: Any, features: np.ndarray, max_length: int, temperature: float = 1.0,
           top_k: int | None = None, seed: int | None = None,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """Draw each token from ``softmax(scores / temperature)``, optionally over the ``top_k`` best.

    ``temperature=0`` is greedy; ``top_k=1`` is greedy at any temperature. Draws come from ``rng``
    (a NumPy Generator) or a new one seeded with ``seed``; the Gumbel-max trick keeps them
    vectorised.
    """
    max_length = _check_length(max_length)
    if not temperature >= 0:
        raise ValueError(f"sample decoder: temperature must be >= 0, got {temperature!r}")
    if top_k is not None and (int(top_k) != top_k or top_k < 1):
        raise ValueError(f"sample decoder: top_k must be a positive integer or None, got {top_k!r}")
    rng = rng if rng is not None else np.random.default_rng(seed)
    _special_ids(model)
    return model.generate(features, max_length, lambda scores: _draw(scores, temperature, top_k, rng))


def _draw(scores: np.ndarray, temperature: float, top_k: int | None,
          rng: np.random.Generator) -> np.ndarray:
    logits = np.asarray(scores, dtype=np.float64)
    if top_k is not None and top_k < logits.shape[1]:
        cut = np.partition(logits, -top_k, axis=1)[:, -top_k][:, None]
        logits = np.where(logits >= cut, logits, -np.inf)
    if temperature == 0 or top_k == 1:
        return logits.argmax(axis=1)
    logits = logits / temperature
    return (logits + rng.gumbel(size=logits.shape)).argmax(axis=1)


# -- beam search -----------------------------------------------------------------------------


@DECODERS.register("beam")
def beam(model: Any, features: np.ndarray, max_length: int, beam_width: int = 5,
         length_penalty: float = 0.0) -> np.ndarray:
    """Beam search, batched over images: N*K rows of decoding state.

    A hypothesis is finished when ``<END>`` is among the step's ``beam_width`` best candidates;
    finished ones are ranked by ``log p / length ** length_penalty`` (length in tokens with
    ``<END>``; 0 ranks by total log-probability, 1 by mean log-probability per token). An image
    stops once no live hypothesis can still beat its best finished one (live log-probabilities
    only fall, so the bound is ``log p / max_length ** length_penalty``). Returns the best
    finished hypothesis per image, or its best live one if none finished within ``max_length``.
    With ``beam_width=1`` and ``length_penalty=0`` this is greedy decoding.
    """
    max_length = _check_length(max_length)
    k = int(beam_width)
    if k != beam_width or k < 1:
        raise ValueError(f"beam decoder: beam_width must be a positive integer, got {beam_width!r}")
    if not length_penalty >= 0:
        raise ValueError(f"beam decoder: length_penalty must be >= 0, got {length_penalty!r}")
    null, start, end = _special_ids(model)
    n, vocab = features.shape[0], model.vocab_size
    table = _table(model, n * k, max_length)

    best = np.full((n, max_length), null, dtype=np.int32)
    best_score = np.full(n, -np.inf)
    active = np.arange(n)                                   # images still searching
    tokens = np.full((n, k, max_length), null, dtype=np.int32)
    beam_logp = np.full((n, k), -np.inf)
    beam_logp[:, 0] = 0.0                                   # one live hypothesis to start
    state = select_state(model.initial_state(features), np.repeat(np.arange(n), k))
    words = np.full(n * k, start, dtype=np.intp)
    for t in range(max_length):
        scores, state = model.step_scores(words, state, table)
        a = active.size
        cand = (beam_logp[:, :, None] + log_softmax(scores).reshape(a, k, vocab)).reshape(a, -1)
        flat, values = _top_candidates(cand, min(2 * k, cand.shape[1]))
        src, tok = flat // vocab, (flat % vocab).astype(np.int32)
        ranks = np.arange(flat.shape[1])
        ends = (tok == end) & np.isfinite(values)

        # finished: <END> among the k best candidates
        finished = ends & (ranks < k)
        if finished.any():
            final = np.where(finished, values / float(t + 1) ** length_penalty, -np.inf)
            j = final.argmax(axis=1)
            rows = np.arange(a)
            better = final[rows, j] > best_score[active]
            if better.any():
                img, r = rows[better], j[better]
                hyp = tokens[img, src[img, r]].copy()
                hyp[:, t] = end
                best[active[img]] = hyp
                best_score[active[img]] = final[img, r]

        # live: the k best candidates that are not <END>
        pos = np.argsort(tok == end, axis=1, kind="stable")[:, :k]
        rows = np.arange(a)[:, None]
        src_k, tok_k = src[rows, pos], tok[rows, pos]
        beam_logp = values[rows, pos]
        tokens = tokens[rows, src_k]
        tokens[:, :, t] = tok_k
        state = select_state(state, (rows * k + src_k).ravel())
        words = tok_k.ravel().astype(np.intp)

        bound = beam_logp.max(axis=1) / float(max_length) ** length_penalty
        going = ~(best_score[active] >= bound)
        if not going.all():
            active, tokens, beam_logp = active[going], tokens[going], beam_logp[going]
            keep_rows = (np.flatnonzero(going)[:, None] * k + np.arange(k)).ravel()
            state, words = select_state(state, keep_rows), words[keep_rows]
            if active.size == 0:
                break
    unfinished = active[~np.isfinite(best_score[active])]
    if unfinished.size:
        where = np.searchsorted(active, unfinished)
        best[unfinished] = tokens[where, beam_logp[where].argmax(axis=1)]
    return best


def _top_candidates(cand: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``m`` largest entries' indices and values, best first (ties: lower index)."""
    if m < cand.shape[1]:
        idx = np.argpartition(-cand, m - 1, axis=1)[:, :m]
    else:
        idx = np.broadcast_to(np.arange(cand.shape[1]), cand.shape)
    vals = np.take_along_axis(cand, idx, axis=1)
    order = np.lexsort((idx, -vals), axis=-1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)
