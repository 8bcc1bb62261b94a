"""Vanilla RNN cell: h_t = tanh(x_t Wx + h_{t-1} Wh + b)."""

from __future__ import annotations

import numpy as np

from capx.cells.base import CarriedGradient, Cell
from capx.packing import Packing
from capx.registry import CELLS


def rnn_packed_forward(xw: np.ndarray, h0: np.ndarray, Wh: np.ndarray, packing: Packing):
    """Run the recurrence in place over ``xw``; returns hidden states (P, H) and the cache.

    Each step also leaves ``1 - h^2`` for the backward, computed while h is in cache.
    """
    h = xw
    dtanh = np.empty_like(h)
    prev = h0
    scratch = np.empty_like(h0)
    for t in range(packing.num_steps):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        a, d = h[start : start + n], dtanh[start : start + n]
        np.matmul(prev[:n], Wh, out=scratch[:n])
        a += scratch[:n]
        np.tanh(a, out=a)
        np.multiply(a, a, out=d)
        np.subtract(1.0, d, out=d)
        prev = a
    return h, (h, dtanh, h0, Wh, packing)


def rnn_packed_backward(dh: np.ndarray, cache):
    """Backward through :func:`rnn_packed_forward`; ``dh`` is overwritten with dxw."""
    h, dtanh, h0, Wh, packing = cache
    da_all = dh
    carried = CarriedGradient(h0)
    for t in range(packing.num_steps - 1, -1, -1):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        da = da_all[start : start + n]
        carried.add_to(da)
        da *= dtanh[start : start + n]
        carried.propagate(da, Wh)
    h_prev = packing.previous(h0, h)
    dWh = h_prev.T @ da_all
    return da_all, carried.dh0(), dWh


@CELLS.register("rnn")
class RNNCell(Cell):
    """The CS231n vanilla RNN."""

    gates = 1

    def forward(self, xw, h0, params, packing):
        return rnn_packed_forward(xw, h0, params["Wh"], packing)

    def backward(self, dh, cache):
        dxw, dh0, dWh = rnn_packed_backward(dh, cache)
        return dxw, dh0, {"Wh": dWh}

    def step(self, xw, state, params):
        (prev_h,) = state
        a = prev_h @ params["Wh"]
        a += xw
        return (np.tanh(a, out=a),)
