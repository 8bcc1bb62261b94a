"""LSTM cell, gates ordered i, f, o, g in one 4H matrix; the cell state starts at zero.

The gate math works gate by gate in a contiguous gate-major buffer (4, n, H), read from and
written back to the (n, 4H) gate rows once: NumPy's loops over the strided column blocks of a
gate row cost more than the two copies (benchmarks/README.md). In training, each step's backward
factors (everything the backward needs that does not depend on the incoming gradient) are
computed right after its gates, while they are in cache, and the cache keeps only the factors.
"""

from __future__ import annotations

import numpy as np

from capx.cells.base import CarriedGradient, Cell
from capx.packing import Packing
from capx.registry import CELLS


def by_gate(a: np.ndarray) -> np.ndarray:
    """The gate-major view (4, n, H) of a gate array ``a`` (n, 4H): ``by_gate(a)[k, r]`` is
    gate k (i, f, o, g) of row r. A view for any strides of ``a``; writes go to ``a``."""
    n, width = a.shape
    if width % 4:
        raise ValueError(f"an LSTM gate array has 4H columns (i, f, o, g), got {width}")
    hidden = width // 4
    if a.flags.c_contiguous:  # the usual case, and the cheap one
        return a.reshape(n, 4, hidden).transpose(1, 0, 2)
    row, col = a.strides
    return np.lib.stride_tricks.as_strided(a, shape=(4, n, hidden),
                                           strides=(hidden * col, row, col))


def _activate_into(a_by_gate: np.ndarray, gates: np.ndarray, prev_c: np.ndarray,
                   c_out: np.ndarray, tanh_c_out: np.ndarray, h_out: np.ndarray) -> None:
    """Gates (4, n, H) from the pre-activations' gate-major view ``a_by_gate`` (4, n, H);
    writes c, tanh(c) and h.

    The sigmoid is ``0.5 * tanh(0.5 x) + 0.5``, as :func:`capx.ops.sigmoid_`.
    """
    ifo = gates[:3]
    np.multiply(a_by_gate[:3], 0.5, out=ifo)
    np.tanh(ifo, out=ifo)
    ifo *= 0.5
    ifo += 0.5
    np.tanh(a_by_gate[3], out=gates[3])
    i, f, o, g = gates
    np.multiply(f, prev_c, out=c_out)
    np.multiply(i, g, out=tanh_c_out)  # scratch until it holds tanh(c)
    c_out += tanh_c_out
    np.tanh(c_out, out=tanh_c_out)
    np.multiply(o, tanh_c_out, out=h_out)


def _factors_(gates: np.ndarray, tanh_c: np.ndarray, prev_c: np.ndarray, dc_dh_out: np.ndarray,
              forget_out: np.ndarray) -> None:
    """The backward factors that do not depend on the incoming gradient, from activated gates
    (4, n, H), in place.

    Writes ``dc_dh = o * (1 - tanh(c)^2)`` (d(c)/d(h) through ``h = o * tanh(c)``) and
    ``forget = f``, and overwrites the gates ``i, f, o, g`` with d(c)/d(i pre-act.),
    d(c)/d(f pre-act.), d(h)/d(o pre-act.) and d(c)/d(g pre-act.).
    """
    i, f, o, g = gates
    one_minus, dg = np.empty_like(tanh_c), np.empty_like(tanh_c)
    np.multiply(tanh_c, tanh_c, out=dc_dh_out)
    np.subtract(1.0, dc_dh_out, out=dc_dh_out)
    dc_dh_out *= o
    forget_out[...] = f
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


def lstm_activate_(a: np.ndarray, prev_c: np.ndarray, c_out: np.ndarray, tanh_c_out: np.ndarray,
                   h_out: np.ndarray) -> None:
    """Turn pre-activations ``a`` (n, 4H) into gates in place and write c, tanh(c) and h."""
    a_by_gate = by_gate(a)
    gates = np.empty(a_by_gate.shape, dtype=a.dtype)
    _activate_into(a_by_gate, gates, prev_c, c_out, tanh_c_out, h_out)
    a_by_gate[...] = gates


def lstm_activate_for_backward_(a: np.ndarray, prev_c: np.ndarray, c_out: np.ndarray,
                                h_out: np.ndarray, dc_dh_out: np.ndarray,
                                forget_out: np.ndarray) -> None:
    """:func:`lstm_activate_`, then the backward factors of the same rows (:func:`_factors_`)
    while they are in cache: ``a`` ends up holding the gate factors, not the gates, and
    ``dc_dh_out`` and ``forget_out`` the rest of what the backward needs."""
    a_by_gate = by_gate(a)
    gates = np.empty(a_by_gate.shape, dtype=a.dtype)
    tanh_c = np.empty_like(c_out)
    _activate_into(a_by_gate, gates, prev_c, c_out, tanh_c, h_out)
    _factors_(gates, tanh_c, prev_c, dc_dh_out, forget_out)
    a_by_gate[...] = gates


def lstm_packed_forward(xw: np.ndarray, h0: np.ndarray, Wh: np.ndarray, packing: Packing):
    """Run the recurrence; ``xw`` (P, 4H) is overwritten with the gate factors."""
    rows, hidden = xw.shape[0], h0.shape[1]
    factors = xw
    h = np.empty((rows, hidden), dtype=xw.dtype)
    dc_dh, forget = np.empty_like(h), np.empty_like(h)
    # the cell states of steps t and t-1, in turn (the backward needs none of them)
    cell_states = (np.empty(h0.shape, dtype=xw.dtype), np.empty(h0.shape, dtype=xw.dtype))
    prev_h, prev_c = h0, np.zeros_like(h0)
    scratch = np.empty((h0.shape[0], 4 * hidden), dtype=xw.dtype)
    for t in range(packing.num_steps):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        sl = slice(start, start + n)
        a, c = factors[sl], cell_states[t % 2][:n]
        np.matmul(prev_h[:n], Wh, out=scratch[:n])
        a += scratch[:n]
        lstm_activate_for_backward_(a, prev_c[:n], c, h[sl], dc_dh[sl], forget[sl])
        prev_h, prev_c = h[sl], c
    return h, (factors, dc_dh, forget, h, h0, Wh, packing)


def lstm_packed_backward(dh: np.ndarray, cache):
    """Backward through :func:`lstm_packed_forward`; the cached factors become dxw (no copy).

    The forward left every factor that does not depend on the incoming gradient, so the
    sequential loop only does a handful of in-place products per step.
    """
    factors, dc_dh, forget, h, h0, Wh, packing = cache
    hidden = h0.shape[1]
    i, f, o, g = (factors[:, k * hidden : (k + 1) * hidden] for k in range(4))
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
        carried.propagate(factors[sl], Wh)
    h_prev = packing.previous(h0, h)
    dWh = h_prev.T @ factors
    return factors, carried.dh0(), dWh


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
