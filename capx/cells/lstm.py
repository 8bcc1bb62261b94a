"""LSTM cell, gates ordered i, f, o, g in one 4H matrix; the cell state starts at zero."""

from __future__ import annotations

import numpy as np

from capx.cells.base import CarriedGradient, Cell
from capx.packing import Packing
from capx.registry import CELLS

#: elements of gates per block of :func:`lstm_gate_factors_` (its passes then stay in cache)
FACTOR_BLOCK_ITEMS = 1 << 18


def by_gate(a: np.ndarray) -> np.ndarray:
    """The gate-major view (4, n, H) of a gate array ``a`` (n, 4H): ``by_gate(a)[k, r]`` is
    gate k (i, f, o, g) of row r. A view for any strides of ``a``; writes go to ``a``."""
    n, hidden = a.shape[0], a.shape[1] // 4
    if a.flags.c_contiguous:  # the usual case, and the cheap one
        return a.reshape(n, 4, hidden).transpose(1, 0, 2)
    row, col = a.strides
    return np.lib.stride_tricks.as_strided(a, shape=(4, n, hidden),
                                           strides=(hidden * col, row, col))


def lstm_activate_(a: np.ndarray, prev_c: np.ndarray, c_out: np.ndarray, tanh_c_out: np.ndarray,
                   h_out: np.ndarray) -> None:
    """Turn pre-activations ``a`` (n, 4H) into gates in place and write c, tanh(c) and h.

    The gates are computed in a contiguous gate-major buffer (4, n, H), read from and written
    back to ``a`` once: NumPy's loops over the strided column blocks of ``a`` cost more than the
    two copies (15-28% faster for 25-128 rows, benchmarks/README.md). The sigmoid is
    ``0.5 * tanh(0.5 x) + 0.5``, as :func:`capx.ops.sigmoid_`.
    """
    columns = by_gate(a)
    gates = np.empty(columns.shape, dtype=a.dtype)
    ifo = gates[:3]
    np.multiply(columns[:3], 0.5, out=ifo)
    np.tanh(ifo, out=ifo)
    ifo *= 0.5
    ifo += 0.5
    np.tanh(columns[3], out=gates[3])
    i, f, o, g = gates
    np.multiply(f, prev_c, out=c_out)
    np.multiply(i, g, out=tanh_c_out)  # scratch until it holds tanh(c)
    c_out += tanh_c_out
    np.tanh(c_out, out=tanh_c_out)
    np.multiply(o, tanh_c_out, out=h_out)
    columns[...] = gates


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
                       dc_dh: np.ndarray, forget: np.ndarray, work: np.ndarray | None = None
                       ) -> None:
    """The backward factors that do not depend on the incoming gradient, for a block of rows.

    Writes ``dc_dh = o * (1 - tanh(c)^2)`` (d(c)/d(h) through ``h = o * tanh(c)``) and
    ``forget = f``, and overwrites the activated gates ``i, f, o, g`` with d(c)/d(i pre-act.),
    d(c)/d(f pre-act.), d(h)/d(o pre-act.) and d(c)/d(g pre-act.). Like
    :func:`lstm_activate_`, it works gate by gate in a contiguous buffer, ``work`` (4, rows, H)
    when given.
    """
    columns = by_gate(gates)
    work = np.empty(columns.shape, dtype=gates.dtype) if work is None else work
    np.copyto(work, columns)
    i, f, o, g = work
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
    columns[...] = work


def lstm_backward_factors_(gates: np.ndarray, tanh_c: np.ndarray, prev_c: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`lstm_gate_factors_` for all packed rows, block by block of rows so that its passes
    stay in cache; returns (dc_dh, forget) and overwrites ``gates`` with the gate factors."""
    rows, hidden = tanh_c.shape
    dc_dh, forget = np.empty_like(tanh_c), np.empty_like(tanh_c)
    block = max(1, FACTOR_BLOCK_ITEMS // (4 * hidden))
    work = np.empty((4, min(block, rows), hidden), dtype=gates.dtype)
    for start in range(0, rows, block):
        part = slice(start, min(start + block, rows))
        lstm_gate_factors_(gates[part], tanh_c[part], prev_c[part], dc_dh[part], forget[part],
                           work=work[:, : part.stop - part.start])
    return dc_dh, forget


def lstm_packed_backward(dh: np.ndarray, cache):
    """Backward through :func:`lstm_packed_forward`; the cached gates become dxw (no copy).

    Every factor that does not depend on the incoming gradient is computed for all timesteps at
    once (:func:`lstm_gate_factors_`, block by block of rows, so that its passes stay in cache),
    so the sequential loop only does a handful of in-place products per step.
    """
    gates, c, tanh_c, h, h0, Wh, packing = cache
    hidden = h0.shape[1]
    prev_c = packing.previous(np.zeros_like(h0), c)
    dc_dh, forget = lstm_backward_factors_(gates, tanh_c, prev_c)
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
