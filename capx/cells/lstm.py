"""LSTM cell, gates ordered i, f, o, g in one 4H matrix; the cell state starts at zero."""

from __future__ import annotations

import numpy as np

from capx.cells.base import CarriedGradient, Cell
from capx.ops import sigmoid_
from capx.packing import Packing
from capx.registry import CELLS

#: elements of gates per block of :func:`lstm_gate_factors_` (its passes then stay in cache)
FACTOR_BLOCK_ITEMS = 1 << 18


def lstm_activate_(a: np.ndarray, prev_c: np.ndarray, c_out: np.ndarray, tanh_c_out: np.ndarray,
                   h_out: np.ndarray) -> None:
    """Turn pre-activations ``a`` (n, 4H) into gates in place and write c, tanh(c) and h."""
    hidden = a.shape[1] // 4
    sigmoid_(a[:, : 3 * hidden])
    np.tanh(a[:, 3 * hidden :], out=a[:, 3 * hidden :])
    i, f, o, g = (a[:, k * hidden : (k + 1) * hidden] for k in range(4))
    np.multiply(f, prev_c, out=c_out)
    np.multiply(i, g, out=tanh_c_out)  # scratch until it holds tanh(c)
    c_out += tanh_c_out
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


def lstm_gate_factors_(gates: np.ndarray, tanh_c: np.ndarray, prev_c: np.ndarray,
                       dc_dh: np.ndarray, forget: np.ndarray) -> None:
    """The backward factors that do not depend on the incoming gradient, for a block of rows.

    Writes ``dc_dh = o * (1 - tanh(c)^2)`` (d(c)/d(h) through ``h = o * tanh(c)``) and
    ``forget = f``, and overwrites the activated gates ``i, f, o, g`` with d(c)/d(i pre-act.),
    d(c)/d(f pre-act.), d(h)/d(o pre-act.) and d(c)/d(g pre-act.).
    """
    hidden = tanh_c.shape[1]
    i, f, o, g = (gates[:, k * hidden : (k + 1) * hidden] for k in range(4))
    one_minus, dg = np.empty_like(tanh_c), np.empty_like(tanh_c)
    np.multiply(tanh_c, tanh_c, out=dc_dh)
    np.subtract(1.0, dc_dh, out=dc_dh)
    dc_dh *= o
    forget[...] = f
    np.subtract(1.0, o, out=one_minus)
    o *= one_minus
    o *= tanh_c
    np.subtract(1.0, f, out=one_minus)
    f *= one_minus
    f *= prev_c
    np.multiply(g, g, out=dg)
    np.subtract(1.0, dg, out=dg)
    dg *= i  # (1 - g^2) * i, while i still holds the gate
    np.subtract(1.0, i, out=one_minus)
    i *= one_minus
    i *= g
    g[...] = dg


def lstm_packed_backward(dh: np.ndarray, cache):
    """Backward through :func:`lstm_packed_forward`; the cached gates become dxw (no copy).

    Every factor that does not depend on the incoming gradient is computed for all timesteps at
    once (:func:`lstm_gate_factors_`, block by block of rows, so that its passes stay in cache),
    so the sequential loop only does a handful of in-place products per step.
    """
    gates, c, tanh_c, h, h0, Wh, packing = cache
    hidden = h0.shape[1]
    prev_c = packing.previous(np.zeros_like(h0), c)
    dc_dh, forget = np.empty_like(c), np.empty_like(c)
    factors = (gates, tanh_c, prev_c, dc_dh, forget)
    block = max(1, FACTOR_BLOCK_ITEMS // (4 * hidden))
    for start in range(0, gates.shape[0], block):
        rows = slice(start, start + block)
        lstm_gate_factors_(*(x[rows] for x in factors))
    i, f, o, g = (gates[:, k * hidden : (k + 1) * hidden] for k in range(4))

    carried = CarriedGradient(h0)
    dnext_c = np.zeros_like(h0)
    scratch = np.empty_like(h0)
    for t in range(packing.num_steps - 1, -1, -1):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        sl = slice(start, start + n)
        dh_t = dh[sl]
        carried.add_to(dh_t)
        dc = dnext_c[:n]
        np.multiply(dh_t, dc_dh[sl], out=scratch[:n])
        dc += scratch[:n]
        o[sl] *= dh_t
        i[sl] *= dc
        f[sl] *= dc
        g[sl] *= dc
        dc *= forget[sl]  # becomes d(prev_c)
        carried.propagate(gates[sl], Wh)
    h_prev = packing.previous(h0, h)
    dWh = h_prev.T @ gates
    return gates, carried.dh0(), dWh


@CELLS.register("lstm")
class LSTMCell(Cell):
    """Long short-term memory with the CS231n gate layout."""

    gates = 4

    def forward(self, xw, h0, params, packing):
        return lstm_packed_forward(xw, h0, params["Wh"], packing)

    def backward(self, dh, cache):
        dxw, dh0, dWh = lstm_packed_backward(dh, cache)
        return dxw, dh0, {"Wh": dWh}

    def initial_state(self, h0):
        return (h0, np.zeros_like(h0))

    def step(self, xw, state, params):
        prev_h, prev_c = state
        a = prev_h @ params["Wh"]
        a += xw
        c = np.empty_like(prev_h)
        tanh_c = np.empty_like(prev_h)
        h = np.empty_like(prev_h)
        lstm_activate_(a, prev_c, c, tanh_c, h)
        return (h, c)
