"""The CS231n assignment-3 layers, written to be read: the reference the fast captioner must equal.

Functional and NumPy-only. Every forward returns ``(out, cache)``; every backward takes the
upstream gradient and that cache and returns the gradients of the forward's inputs, in order. The
sequence layers loop over time, calling the step functions. Every function keeps the dtype it is
given (float64 in gradient checks, float32 in training).

Shapes: N captions, T timesteps, D input size, H hidden size, V vocabulary size, M output size.
:mod:`capx.reference` composes these layers into the captioning loss; :mod:`capx.captioner`
computes the same loss with packed, in-place kernels, and the tests check that the two agree.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "affine_forward", "affine_backward",
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
    "word_embedding_forward", "word_embedding_backward",
    "temporal_affine_forward", "temporal_affine_backward",
    "temporal_softmax_loss", "sigmoid",
]


def sigmoid(x):
    """The logistic function 1 / (1 + exp(-x)), computed without overflow for large |x|."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


# -- affine -------------------------------------------------------------------------------------

def affine_forward(x, w, b):
    """x (N, d_1, ..., d_k) flattened to rows (N, D), w (D, M), b (M,) -> out (N, M)."""
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """dout (N, M) -> (dx like x, dw (D, M), db (M,))."""
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


# -- vanilla RNN --------------------------------------------------------------------------------

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """next_h = tanh(x Wx + prev_h Wh + b): x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,).

    Returns (next_h (N, H), cache).
    """
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    """dnext_h (N, H) -> (dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,))."""
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h**2)  # through tanh
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    """The RNN over a whole sequence: x (N, T, D), h0 (N, H) -> h (N, T, H), cache (per step)."""
    prev_h, hs, caches = h0, [], []
    for t in range(x.shape[1]):
        prev_h, cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        hs.append(prev_h)
        caches.append(cache)
    return np.stack(hs, axis=1), caches


def rnn_backward(dh, cache):
    """dh (N, T, H), the upstream gradient of every hidden state -> (dx, dh0, dWx, dWh, db)."""
    x, h0, Wx, Wh, _ = cache[0]
    dxs = [None] * len(cache)
    dprev_h = np.zeros_like(h0)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[1], dtype=Wh.dtype)
    for t in reversed(range(len(cache))):
        dxs[t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev_h, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return np.stack(dxs, axis=1), dprev_h, dWx, dWh, db


# -- LSTM ---------------------------------------------------------------------------------------

def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step: x (N, D), prev_h and prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).

    The pre-activation a = x Wx + prev_h Wh + b (N, 4H) holds, in this order, the input gate i,
    the forget gate f, the output gate o and the candidate g. Returns (next_h, next_c, cache).
    """
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    o = sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    """dnext_h, dnext_c (N, H) -> (dx, dprev_h, dprev_c, dWx (D, 4H), dWh (H, 4H), db (4H,))."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)  # next_c reaches the loss directly and via next_h
    di = dc * g * i * (1 - i)
    df = dc * prev_c * f * (1 - f)
    do = dnext_h * tanh_c * o * (1 - o)
    dg = dc * i * (1 - g**2)
    da = np.hstack((di, df, do, dg))
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dprev_c = dc * f
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    """The LSTM over a whole sequence, cell state starting at zero: x (N, T, D), h0 (N, H).

    Returns h (N, T, H) and the cache (one per step).
    """
    prev_h, prev_c, hs, caches = h0, np.zeros_like(h0), [], []
    for t in range(x.shape[1]):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        hs.append(prev_h)
        caches.append(cache)
    return np.stack(hs, axis=1), caches


def lstm_backward(dh, cache):
    """dh (N, T, H), the upstream gradient of every hidden state -> (dx, dh0, dWx, dWh, db)."""
    x, h0, _, Wx, Wh = cache[0][:5]
    dxs = [None] * len(cache)
    dprev_h, dprev_c = np.zeros_like(h0), np.zeros_like(h0)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[1], dtype=Wh.dtype)
    for t in reversed(range(len(cache))):
        dxs[t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t] + dprev_h, dprev_c, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return np.stack(dxs, axis=1), dprev_h, dWx, dWh, db


# -- word embedding, temporal affine, temporal softmax loss ------------------------------------

def word_embedding_forward(x, W):
    """Integer ids x (N, T), embeddings W (V, D) -> out (N, T, D) with out[n, t] = W[x[n, t]]."""
    out = W[x]
    return out, (x, W)


def word_embedding_backward(dout, cache):
    """dout (N, T, D) -> dW (V, D): each id's row sums the upstream rows of all its occurrences."""
    x, W = cache
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)
    return dW


def temporal_affine_forward(x, w, b):
    """The same affine layer at every timestep: x (N, T, D), w (D, M), b (M,) -> out (N, T, M)."""
    N, T, D = x.shape
    out = (x.reshape(N * T, D) @ w + b).reshape(N, T, -1)
    return out, (x, w, b)


def temporal_affine_backward(dout, cache):
    """dout (N, T, M) -> (dx (N, T, D), dw (D, M), db (M,))."""
    x, w, b = cache
    N, T, D = x.shape
    dout_rows = dout.reshape(N * T, -1)
    dx = (dout_rows @ w.T).reshape(N, T, D)
    dw = x.reshape(N * T, D).T @ dout_rows
    db = dout_rows.sum(axis=0)
    return dx, dw, db


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Softmax loss summed over time and averaged over the batch; masked positions add nothing.

    x (N, T, V) scores, y (N, T) target ids, mask (N, T) booleans (False where the target is
    padding). Returns (loss, dx (N, T, V)).
    """
    N, T, V = x.shape
    x_flat, y_flat, mask_flat = x.reshape(N * T, V), y.reshape(N * T), mask.reshape(N * T)
    rows = np.arange(N * T)
    shifted = x_flat - x_flat.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -np.sum(mask_flat * log_probs[rows, y_flat]) / N
    dx_flat = np.exp(log_probs)
    dx_flat[rows, y_flat] -= 1
    dx_flat /= N
    dx_flat *= mask_flat[:, None]
    if verbose:
        print("dx_flat: ", dx_flat.shape)
    return float(loss), dx_flat.reshape(N, T, V)
