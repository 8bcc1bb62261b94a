"""LSTM cell, gates ordered i, f, o, g in one 4H matrix; the cell state starts at zero."""

from __future__ import annotations

import numpy as np

from capx.cells.base import Cell
from capx.ops import sigmoid_
from capx.packing import Packing
from capx.registry import CELLS


def lstm_activate_(a: np.ndarray, prev_c: np.ndarray, c_out: np.ndarray, tanh_c_out: np.ndarray,
                   h_out: np.ndarray) -> None:
    """Turn pre-activations ``a`` (n, 4H) into gates in place and write c, tanh(c) and h."""
    hidden = a.shape[1] // 4
    sigmoid_(a[:, : 3 * hidden])
    np.tanh(a[:, 3 * hidden :], out=a[:, 3 * hidden :])
    i, f, o, g = (a[:, k * hidden : (k + 1) * hidden] for k in range(4))
    np.multiply(f, prev_c, out=c_out)
    c_out += i * g
    np.tanh(c_out, out=tanh_c_out)
    np.multiply(o, tanh_c_out, out=h_out)


def lstm_packed_forward(xw: np.ndarray, h0: np.ndarray, Wh: np.ndarray, packing: Packing):
    """Run the recurrence; ``xw`` (P, 4H) is overwritten with the activated gates."""
    rows, hidden = xw.shape[0], h0.shape[1]
    gates = xw
    h = np.empty((rows, hidden), dtype=xw.dtype)
    c = np.empty_like(h)
    tanh_c = np.empty_like(h)
    prev_h, prev_c = h0, np.zeros_like(h0)
    scratch = np.empty((h0.shape[0], 4 * hidden), dtype=xw.dtype)
    for t in range(packing.num_steps):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        sl = slice(start, start + n)
        a = gates[sl]
        np.matmul(prev_h[:n], Wh, out=scratch[:n])
        a += scratch[:n]
        lstm_activate_(a, prev_c[:n], c[sl], tanh_c[sl], h[sl])
        prev_h, prev_c = h[sl], c[sl]
    return h, (gates, c, tanh_c, h, h0, Wh, packing)


def lstm_packed_backward(dh: np.ndarray, cache):
    """Backward through :func:`lstm_packed_forward`; the cached gates become dxw (no copy)."""
    gates, c, tanh_c, h, h0, Wh, packing = cache
    hidden = h0.shape[1]
    dnext_h = np.zeros_like(h0)
    dnext_c = np.zeros_like(h0)
    zeros_c = np.zeros_like(h0)
    WhT = Wh.T
    for t in range(packing.num_steps - 1, -1, -1):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        sl = slice(start, start + n)
        if t > 0:
            prev_start = packing.offsets[t - 1]
            prev_c = c[prev_start : prev_start + n]
        else:
            prev_c = zeros_c[:n]
        a = gates[sl]
        i, f, o, g = (a[:, k * hidden : (k + 1) * hidden] for k in range(4))
        tc = tanh_c[sl]
        dh_t = dh[sl]
        dh_t += dnext_h[:n]
        dc = dnext_c[:n]
        dc += dh_t * o * (1.0 - tc * tc)
        # Gate gradients, written over the gates once each gate is no longer needed.
        do = dh_t * tc * o * (1.0 - o)
        di = dc * g * i * (1.0 - i)
        dg = dc * i * (1.0 - g * g)
        df = dc * prev_c * f * (1.0 - f)
        dc *= f  # becomes d(prev_c)
        i[...] = di
        f[...] = df
        o[...] = do
        g[...] = dg
        np.matmul(a, WhT, out=dnext_h[:n])
    h_prev = np.concatenate([h0, h])[packing.prev_rows]
    dWh = h_prev.T @ gates
    return gates, dnext_h, dWh


@CELLS.register("lstm")
class LSTMCell(Cell):
    """Long short-term memory with the CS231n gate layout."""

    gates = 4

    def forward(self, xw, h0, Wh, packing):
        return lstm_packed_forward(xw, h0, Wh, packing)

    def backward(self, dh, cache):
        return lstm_packed_backward(dh, cache)

    def initial_state(self, h0):
        return (h0, np.zeros_like(h0))

    def step(self, xw, state, Wh):
        prev_h, prev_c = state
        a = xw + prev_h @ Wh
        c = np.empty_like(prev_h)
        tanh_c = np.empty_like(prev_h)
        h = np.empty_like(prev_h)
        lstm_activate_(a, prev_c, c, tanh_c, h)
        return (h, c)
