"""The recurrent-cell contract every cell plugin (rnn, lstm, gru, ...) implements.

A cell owns the recurrence only. The captioner computes the input projection for all timesteps
at once (``xw = x @ Wx + b``, one matrix product over every packed row) and hands it to
``forward``; the cell returns the gradient with respect to ``xw`` and the captioner turns it into
``dWx``, ``db`` and the embedding gradient, again as single products. Arrays are packed
(see :mod:`capx.packing`): time-major rows, only the captions still active at each step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from capx.packing import Packing


class Cell:
    """Base class: parameter shapes, initialisation, packed sequence forward/backward, one step."""

    #: the hidden size is multiplied by this to get the width of Wx, Wh and b (rnn 1, lstm 4)
    gates: int = 1

    def init_params(
        self, input_dim: int, hidden_dim: int, rng: Any, dtype: np.dtype
    ) -> dict[str, np.ndarray]:
        """CS231n initialisation: Gaussian scaled by 1/sqrt(fan-in), zero bias."""
        width = self.gates * hidden_dim
        return {
            "Wx": (rng.randn(input_dim, width) / np.sqrt(input_dim)).astype(dtype),
            "Wh": (rng.randn(hidden_dim, width) / np.sqrt(hidden_dim)).astype(dtype),
            "b": np.zeros(width, dtype=dtype),
        }

    def forward(
        self, xw: np.ndarray, h0: np.ndarray, Wh: np.ndarray, packing: Packing
    ) -> tuple[np.ndarray, Any]:
        """Hidden states (P, H) for packed projected inputs ``xw`` (P, gates*H); may reuse ``xw``.

        ``h0`` (N, H) is in the packing's sorted order.
        """
        raise NotImplementedError

    def backward(self, dh: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Given d(loss)/dh (P, H), return (dxw (P, gates*H), dh0 (N, H), dWh); may reuse ``dh``."""
        raise NotImplementedError

    def initial_state(self, h0: np.ndarray) -> tuple[np.ndarray, ...]:
        """Decoding state from the projected image feature; the hidden state comes first."""
        return (h0,)

    def step(
        self, xw: np.ndarray, state: tuple[np.ndarray, ...], Wh: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """One decoding step: projected input (N, gates*H) and state -> next state."""
        raise NotImplementedError


class CarriedGradient:
    """d(loss)/d(h_{t-1}) passed back through time, kept transposed as (H, n).

    OpenBLAS computes ``Wh @ da.T`` into an (H, n) array 25-30% faster than ``da @ Wh.T`` into
    (n, H) for the few dozen rows of one timestep, and the backward loops do one such product
    per step.
    """

    def __init__(self, h0: np.ndarray):
        self.hidden = h0.shape[1]
        self._buffer = np.empty(h0.size, dtype=h0.dtype)
        self._rows = 0
        self._dh0 = np.zeros_like(h0)

    def add_to(self, dh: np.ndarray) -> None:
        """Add the gradient from the step after to the first rows of ``dh`` (the rest get 0)."""
        if self._rows:
            dh[: self._rows] += self._buffer[: self.hidden * self._rows].reshape(
                self.hidden, self._rows).T

    def propagate(self, da: np.ndarray, Wh: np.ndarray) -> None:
        """Replace the carried gradient by ``da @ Wh.T`` (for the step before)."""
        self._rows = da.shape[0]
        np.matmul(Wh, da.T, out=self._buffer[: self.hidden * self._rows].reshape(
            self.hidden, self._rows))

    def dh0(self) -> np.ndarray:
        """The gradient with respect to h0 once the loop is done (zero for unused rows)."""
        self.add_to(self._dh0)
        return self._dh0


def select_state(state: tuple[np.ndarray, ...], rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Keep only ``rows`` of every array in a decoding state (captions still being generated)."""
    return tuple(s[rows] for s in state)
