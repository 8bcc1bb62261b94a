"""Vanilla RNN with a learned per-unit gain, registered as ``gain_rnn``: one file, no edit to capx.

The example of a cell with a parameter of its own. Next to the CS231n ``Wx, Wh, b`` it declares
a gain ``g`` (H,), initialised to ones (so a fresh ``gain_rnn`` is exactly ``rnn``)::

    a_t = x_t Wx + b + h_{t-1} Wh
    h_t = tanh(g * a_t)

The captioner computes ``xw = x Wx + b`` for every timestep (the cell has ``Wx`` and ``b``), hands
the cell all four parameters by name, and takes back the gradients of ``Wh`` and ``g``.
"""

from __future__ import annotations

import numpy as np

from capx.cells.base import CarriedGradient, Cell
from capx.packing import Packing
from capx.registry import CELLS


def gain_rnn_packed_forward(xw: np.ndarray, h0: np.ndarray, Wh: np.ndarray, g: np.ndarray,
                            packing: Packing):
    """Run the recurrence; ``xw`` (P, H) is overwritten with the pre-gain activations ``a``."""
    a_all = xw
    h = np.empty_like(xw)
    prev = h0
    scratch = np.empty_like(h0)
    for t in range(packing.num_steps):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        sl = slice(start, start + n)
        a = a_all[sl]
        np.matmul(prev[:n], Wh, out=scratch[:n])
        a += scratch[:n]
        np.multiply(a, g, out=h[sl])
        np.tanh(h[sl], out=h[sl])
        prev = h[sl]
    return h, (a_all, h, h0, Wh, g, packing)


def gain_rnn_packed_backward(dh: np.ndarray, cache):
    """Backward through :func:`gain_rnn_packed_forward`; ``dh`` is overwritten with dxw.

    Returns (dxw, dh0, dWh, dg). The cached ``a`` is overwritten with ``a * d(g a)``, whose
    column sums are dg.
    """
    a_all, h, h0, Wh, g, packing = cache
    dtanh = np.multiply(h, h)
    np.subtract(1.0, dtanh, out=dtanh)  # for all timesteps at once, outside the loop
    carried = CarriedGradient(h0)
    for t in range(packing.num_steps - 1, -1, -1):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        sl = slice(start, start + n)
        da = dh[sl]
        carried.add_to(da)
        da *= dtanh[sl]  # d(g * a)
        a_all[sl] *= da  # its share of dg
        da *= g  # d(a) = d(xw) = d(h_{t-1} Wh)
        carried.propagate(da, Wh)
    dg = a_all.sum(axis=0)
    dWh = packing.previous(h0, h).T @ dh
    return dh, carried.dh0(), dWh, dg


@CELLS.register("gain_rnn")
class GainRNNCell(Cell):
    """tanh RNN whose hidden pre-activation is scaled by a learned per-unit gain ``g``."""

    gates = 1

    def init_params(self, input_dim, hidden_dim, rng, dtype):
        params = super().init_params(input_dim, hidden_dim, rng, dtype)  # Wx, Wh, b
        params["g"] = np.ones(hidden_dim, dtype=dtype)
        return params

    def param_shapes(self, input_dim, hidden_dim):
        return {**super().param_shapes(input_dim, hidden_dim), "g": (hidden_dim,)}

    def forward(self, xw, h0, params, packing):
        return gain_rnn_packed_forward(xw, h0, params["Wh"], params["g"], packing)

    def backward(self, dh, cache):
        dxw, dh0, dWh, dg = gain_rnn_packed_backward(dh, cache)
        return dxw, dh0, {"Wh": dWh, "g": dg}

    def step(self, xw, state, params):
        (prev_h,) = state
        a = prev_h @ params["Wh"]
        a += xw
        a *= params["g"]
        return (np.tanh(a, out=a),)
