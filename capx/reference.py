"""The captioning loss of CS231n's ``CaptioningRNN.loss``, composed from :mod:`capx.layers`.

The readable reference for :meth:`capx.captioner.CaptioningRNN.loss`, which computes the same
numbers with packed, in-place kernels (the tests check that they agree). Every position of every
caption is computed, ``<NULL>`` padding included, and the padding is then masked out of the loss.
With dropout masks (:mod:`capx.dropout`), the word vectors and the hidden states are multiplied
by them on the way to the scores, and the gradients on the way back.
"""

from __future__ import annotations

import numpy as np

from capx.layers import (
    lstm_backward, lstm_forward, rnn_backward, rnn_forward, temporal_affine_backward,
    temporal_affine_forward, temporal_softmax_loss, word_embedding_backward,
    word_embedding_forward,
)

#: the forward and backward sequence layers of each cell type
SEQUENCE_LAYERS = {"rnn": (rnn_forward, rnn_backward), "lstm": (lstm_forward, lstm_backward)}

Params = dict[str, np.ndarray]


def captioning_loss(params: Params, features: np.ndarray, captions: np.ndarray,
                    cell_type: str = "rnn", null_id: int = 0,
                    dropout: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> tuple[float, Params]:
    """Softmax loss summed over time and averaged over the batch, and its gradients.

    ``params``: ``W_proj`` (D, H), ``b_proj`` (H,), ``W_embed`` (V, W), ``Wx`` (W, gH), ``Wh``
    (H, gH), ``b`` (gH,), ``W_vocab`` (H, V), ``b_vocab`` (V,), with g = 1 for rnn, 4 for lstm.
    ``features`` (N, D); ``captions`` (N, T + 1) integer ids. The model reads ``captions[:, :-1]``
    and predicts ``captions[:, 1:]``; targets equal to ``null_id`` are masked.
    ``dropout``: masks (N, T, W) and (N, T, H) for the word vectors and the hidden states
    (training; a :class:`capx.dropout.DropoutMasks`); None applies none.
    Returns (loss, grads) with one gradient per parameter name.
    """
    if cell_type not in SEQUENCE_LAYERS:
        raise ValueError(f"cell_type must be one of {sorted(SEQUENCE_LAYERS)}, got {cell_type!r}")
    sequence_forward, sequence_backward = SEQUENCE_LAYERS[cell_type]
    p = params
    captions_in, captions_out = captions[:, :-1], captions[:, 1:]
    mask = captions_out != null_id
    embed_mask, hidden_mask = dropout if dropout is not None else (None, None)

    # Forward: image -> initial hidden state; words -> vectors -> hidden states -> scores.
    h0 = features @ p["W_proj"] + p["b_proj"]
    x, embed_cache = word_embedding_forward(captions_in, p["W_embed"])
    if dropout is not None:
        x = x * embed_mask
    h, sequence_cache = sequence_forward(x, h0, p["Wx"], p["Wh"], p["b"])
    if dropout is not None:
        h = h * hidden_mask
    scores, vocab_cache = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
    loss, dscores = temporal_softmax_loss(scores, captions_out, mask)

    # Backward, layer by layer in reverse.
    grads = {}
    dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, vocab_cache)
    if dropout is not None:
        dh = dh * hidden_mask
    dx, dh0, grads["Wx"], grads["Wh"], grads["b"] = sequence_backward(dh, sequence_cache)
    if dropout is not None:
        dx = dx * embed_mask
    grads["W_embed"] = word_embedding_backward(dx, embed_cache)
    grads["W_proj"] = features.T @ dh0
    grads["b_proj"] = dh0.sum(axis=0)
    return loss, grads
