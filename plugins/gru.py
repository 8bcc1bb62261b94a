"""GRU cell plugin, registered as ``gru``: one file, no edit to capx.

Gates sit in one 3H matrix ordered r, z, n (PyTorch's order). The cell declares the CS231n
parameters ``Wx, Wh, b`` (3H wide, from ``gates = 3``); since it has ``Wx`` and ``b``, the captioner
computes the input projection ``xw = x @ Wx + b`` for every timestep outside the cell, so the cell
sees only the hidden products and returns the gradient of ``Wh`` by name::

    r  = sigmoid(xw_r + h Wh_r)
    z  = sigmoid(xw_z + h Wh_z)
    n  = tanh(xw_n + r * (h Wh_n))
    h' = (1 - z) * n + z * h

This is PyTorch's ``nn.GRU`` with its hidden bias of n (``b_hn``, which sits inside ``r * (...)``
and so cannot be moved into the input projection) fixed at zero; its r and z hidden biases add to
the input biases and are folded into ``b``. PyTorch's ``weight_hh`` is ``Wh.T`` here.
"""

from __future__ import annotations

import numpy as np

from capx.cells.base import Cell
from capx.ops import sigmoid_
from capx.packing import Packing
from capx.registry import CELLS


def gru_activate_(a: np.ndarray, hw: np.ndarray, prev_h: np.ndarray, h_out: np.ndarray) -> None:
    """Turn input pre-activations ``a`` (n, 3H) into r, z, n in place and write h' into ``h_out``.

    ``hw`` is ``prev_h @ Wh`` (n, 3H); its r columns are used as scratch, its n columns are kept.
    """
    hidden = a.shape[1] // 3
    rz = a[:, : 2 * hidden]
    rz += hw[:, : 2 * hidden]
    sigmoid_(rz)
    r, z, n = (a[:, k * hidden : (k + 1) * hidden] for k in range(3))
    r_hn = hw[:, :hidden]  # h Wh_r is no longer needed
    np.multiply(r, hw[:, 2 * hidden :], out=r_hn)
    n += r_hn
    np.tanh(n, out=n)
    np.subtract(prev_h, n, out=h_out)  # h' = n + z * (h - n)
    h_out *= z
    h_out += n


def gru_packed_forward(xw: np.ndarray, h0: np.ndarray, Wh: np.ndarray, packing: Packing):
    """Run the recurrence; ``xw`` (P, 3H) is overwritten with the activated gates r, z, n."""
    rows, hidden = xw.shape[0], h0.shape[1]
    gates = xw
    h = np.empty((rows, hidden), dtype=xw.dtype)
    hn = np.empty_like(h)  # h_{t-1} Wh_n, needed for dr
    hw = np.empty((h0.shape[0], 3 * hidden), dtype=xw.dtype)
    prev_h = h0
    for t in range(packing.num_steps):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        sl = slice(start, start + n)
        np.matmul(prev_h[:n], Wh, out=hw[:n])
        hn[sl] = hw[:n, 2 * hidden :]
        gru_activate_(gates[sl], hw[:n], prev_h[:n], h[sl])
        prev_h = h[sl]
    return h, (gates, hn, h, h0, Wh, packing)


def gru_packed_backward(dh: np.ndarray, cache):
    """Backward through :func:`gru_packed_forward`; the cached gates become dxw (no copy).

    ``dh`` is overwritten. The gradient of ``h_{t-1} Wh`` equals dxw in the r and z columns and
    ``r * dxw_n`` in the n columns; the latter is written over the cached ``h Wh_n``, so dWh is
    two products over all packed rows once the loop is done.
    """
    gates, hn, h, h0, Wh, packing = cache
    hidden = h0.shape[1]
    dnext_h = np.zeros_like(h0)
    tmp = np.empty_like(h0)
    dh_direct = np.empty_like(h0)
    WhT_rz = Wh[:, : 2 * hidden].T
    WhT_n = Wh[:, 2 * hidden :].T
    for t in range(packing.num_steps - 1, -1, -1):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        sl = slice(start, start + n)
        if t > 0:
            prev_start = packing.offsets[t - 1]
            prev_h = h[prev_start : prev_start + n]
        else:
            prev_h = h0[:n]
        a = gates[sl]
        r, z, g = (a[:, k * hidden : (k + 1) * hidden] for k in range(3))
        hn_t = hn[sl]
        t1, direct = tmp[:n], dh_direct[:n]
        dh_t = dh[sl]
        dh_t += dnext_h[:n]
        # dz_pre = dh * (h - n) * z * (1 - z), kept in t1 until z is no longer needed.
        np.subtract(prev_h, g, out=t1)
        t1 *= dh_t
        t1 *= z
        np.multiply(dh_t, z, out=direct)  # d(h_{t-1}) through z * h
        np.subtract(1.0, z, out=z)
        t1 *= z
        dh_t *= z  # dn = dh * (1 - z)
        z[...] = t1
        # dn_pre = dn * (1 - n^2), written over n.
        np.multiply(g, g, out=g)
        np.subtract(1.0, g, out=g)
        g *= dh_t
        # dr_pre = dn_pre * (h Wh_n) * r * (1 - r); d(h Wh_n) = dn_pre * r.
        np.subtract(1.0, r, out=t1)
        t1 *= hn_t
        t1 *= g
        np.multiply(g, r, out=hn_t)
        r *= t1
        np.matmul(a[:, : 2 * hidden], WhT_rz, out=dnext_h[:n])
        np.matmul(hn_t, WhT_n, out=t1)
        dnext_h[:n] += t1
        dnext_h[:n] += direct
    h_prev = packing.previous(h0, h)
    dWh = np.empty_like(Wh)
    np.matmul(h_prev.T, gates[:, : 2 * hidden], out=dWh[:, : 2 * hidden])
    np.matmul(h_prev.T, hn, out=dWh[:, 2 * hidden :])
    return gates, dnext_h, dWh


@CELLS.register("gru")
class GRUCell(Cell):
    """Gated recurrent unit (r, z, n), PyTorch's formulation without the hidden bias of n."""

    gates = 3

    def forward(self, xw, h0, params, packing):
        return gru_packed_forward(xw, h0, params["Wh"], packing)

    def backward(self, dh, cache):
        dxw, dh0, dWh = gru_packed_backward(dh, cache)
        return dxw, dh0, {"Wh": dWh}

    def step(self, xw, state, params):
        (prev_h,) = state
        a = np.array(xw, copy=True)
        h = np.empty_like(prev_h)
        gru_activate_(a, prev_h @ params["Wh"], prev_h, h)
        return (h,)
