"""Functional layers with the CS231n assignment-3 names and signatures.

Every function keeps the dtype it is given (float64 in gradient checks, float32 in training).
The sequence layers (``rnn_forward``, ``lstm_forward``) run on the same packed kernels as the
captioner's cells, with every timestep full; the step functions are the plain per-step reference.
"""

from __future__ import annotations

import numpy as np

from capx.cells.lstm import lstm_activate_, lstm_packed_backward, lstm_packed_forward
from capx.cells.rnn import rnn_packed_backward, rnn_packed_forward
from capx.ops import scatter_add_rows, sigmoid, softmax_cross_entropy_
from capx.packing import make_packing

__all__ = [
    "affine_forward", "affine_backward",
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
    "word_embedding_forward", "word_embedding_backward",
    "temporal_affine_forward", "temporal_affine_backward",
    "temporal_softmax_loss", "sigmoid",
]


# -- affine -------------------------------------------------------------------------------------

def affine_forward(x, w, b):
    """out = x (reshaped to rows) @ w + b."""
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w)


def affine_backward(dout, cache):
    """Returns (dx, dw, db)."""
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    return dx, dw, dout.sum(axis=0)


# -- vanilla RNN --------------------------------------------------------------------------------

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One tanh RNN step: (next_h, cache)."""
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Returns (dx, dprev_h, dWx, dWh, db)."""
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1.0 - next_h * next_h)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def _sequence_forward(kernel, x, h0, Wx, Wh, b):
    """Run a packed kernel over a full (N, T, D) batch: the input projection as one product
    over time-major rows, every step full. Returns h (N, T, H) and the cache."""
    n, t, d = x.shape
    x_tm = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(t * n, d)
    packing = make_packing(np.ones((n, t), dtype=bool), pack=False)
    h_tm, kernel_cache = kernel(x_tm @ Wx + b, h0, Wh, packing)
    return h_tm.reshape(t, n, -1).transpose(1, 0, 2), (x_tm, Wx, kernel_cache, (n, t))


def _sequence_backward(kernel_backward, dh, cache):
    """(dx, dh0, dWx, dWh, db) through a packed kernel for upstream dh (N, T, H)."""
    x_tm, Wx, kernel_cache, (n, t) = cache
    dh_tm = dh.transpose(1, 0, 2).copy().reshape(t * n, -1)  # the kernel works in place
    da, dh0, dWh = kernel_backward(dh_tm, kernel_cache)
    dx = (da @ Wx.T).reshape(t, n, -1).transpose(1, 0, 2)
    return dx, dh0, x_tm.T @ da, dWh, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """Vanilla RNN over a whole sequence: x (N, T, D), h0 (N, H) -> h (N, T, H), cache."""
    return _sequence_forward(rnn_packed_forward, x, h0, Wx, Wh, b)


def rnn_backward(dh, cache):
    """Returns (dx, dh0, dWx, dWh, db) for upstream dh (N, T, H)."""
    return _sequence_backward(rnn_packed_backward, dh, cache)


# -- LSTM ---------------------------------------------------------------------------------------

def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step (gates i, f, o, g): (next_h, next_c, cache)."""
    a = x @ Wx + prev_h @ Wh + b
    next_c = np.empty_like(prev_c)
    tanh_c = np.empty_like(prev_c)
    next_h = np.empty_like(prev_h)
    lstm_activate_(a, prev_c, next_c, tanh_c, next_h)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, a, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Returns (dx, dprev_h, dprev_c, dWx, dWh, db)."""
    x, prev_h, prev_c, Wx, Wh, gates, tanh_c = cache
    hidden = prev_h.shape[1]
    i, f, o, g = (gates[:, k * hidden : (k + 1) * hidden] for k in range(4))
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c * tanh_c)
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * prev_c * f * (1 - f),
         dnext_h * tanh_c * o * (1 - o), dc * i * (1 - g * g)],
        axis=1,
    )
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    """LSTM over a whole sequence (cell state starts at zero): h (N, T, H), cache."""
    return _sequence_forward(lstm_packed_forward, x, h0, Wx, Wh, b)


def lstm_backward(dh, cache):
    """Returns (dx, dh0, dWx, dWh, db) for upstream dh (N, T, H)."""
    x_tm, Wx, kernel_cache, shape = cache
    kernel_cache = (kernel_cache[0].copy(),) + kernel_cache[1:]  # the kernel reuses its gates
    return _sequence_backward(lstm_packed_backward, dh, (x_tm, Wx, kernel_cache, shape))


# -- embeddings, temporal affine, loss ----------------------------------------------------------

def word_embedding_forward(x, W):
    """Look up rows of W (V, D) for integer ids x (N, T): out (N, T, D)."""
    return W[x], (x, W.shape[0])


def word_embedding_backward(dout, cache):
    """dW (V, D): sums the upstream rows of every occurrence of each id."""
    x, vocab_size = cache
    return scatter_add_rows(x.reshape(-1), dout.reshape(x.size, -1), vocab_size)


def temporal_affine_forward(x, w, b):
    """x (N, T, D) @ w (D, M) + b -> (N, T, M)."""
    n, t, d = x.shape
    out = (x.reshape(n * t, d) @ w + b).reshape(n, t, -1)
    return out, (x, w)


def temporal_affine_backward(dout, cache):
    """Returns (dx, dw, db)."""
    x, w = cache
    n, t, d = x.shape
    dout_rows = dout.reshape(n * t, -1)
    dx = (dout_rows @ w.T).reshape(n, t, d)
    return dx, x.reshape(n * t, d).T @ dout_rows, dout_rows.sum(axis=0)


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Softmax loss summed over time and averaged over the batch; masked positions add nothing.

    x (N, T, V) scores, y (N, T) targets, mask (N, T) booleans. Returns (loss, dx).
    """
    n, t, v = x.shape
    dx = np.array(x, dtype=x.dtype, copy=True).reshape(n * t, v)
    weights = mask.reshape(n * t).astype(x.dtype) / n
    loss = softmax_cross_entropy_(dx, y.reshape(n * t), weights)
    if verbose:
        print("dx:", dx.shape)
    return loss, dx.reshape(n, t, v)
