"""The recurrent-cell contract every cell plugin (rnn, lstm, gru, ...) implements.

A cell owns its parameters and the recurrence; the captioner owns everything around it (image
projection, embedding, vocabulary projection, loss) and keeps the cell's parameters in its
``params`` between ``W_embed`` and ``W_vocab``, in the order the cell declares them.

- ``init_params(input_dim, hidden_dim, rng, dtype)`` declares and initialises the cell's
  parameters: a dict ``{name: array}`` with any names except the captioner's own (``W_proj``,
  ``b_proj``, ``W_embed``, ``W_vocab``, ``b_vocab``). ``input_dim`` is the word-vector size.
- ``forward(xw, h0, params, packing) -> (h, cache)``, ``backward(dh, cache) -> (dxw, dh0,
  grads)`` and ``step(xw, state, params) -> state`` receive *all* the cell's parameters, by
  name, in ``params`` (a dict of arrays the cell must not modify).
- The cell's input ``xw``: when the cell has both ``Wx`` (input_dim, K) and ``b`` (K,), the
  captioner applies them itself, as one product over every packed row (or, for small
  vocabularies, as one folded table ``W_embed @ Wx + b``), and ``xw = x @ Wx + b`` (rows, K);
  the cell uses the remaining parameters and ``backward`` returns no gradient for ``Wx`` and
  ``b`` (the captioner derives them from ``dxw``). Without ``Wx`` and ``b``, ``xw`` is the
  embedded words ``x`` (rows, input_dim) and ``dxw`` their gradient.
- ``backward`` returns ``dxw`` (the shape of ``xw``), ``dh0`` (N, H) and ``grads``: one gradient
  per parameter, by name, for every parameter except ``Wx`` and ``b`` when they were applied
  by the captioner. The captioner checks the names and shapes.
- ``forward`` and ``backward`` may overwrite ``xw`` and ``dh`` (fresh arrays, never used again);
  ``step`` must leave its ``xw`` alone.

Arrays are packed (see :mod:`capx.packing`): time-major rows, only the captions still active at
each step; ``h0`` (N, H) is in the packing's sorted order. ``h`` (P, H) holds the hidden state
that the vocabulary projection reads; a decoding state is a tuple whose first entry is it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from capx.packing import Packing

#: parameters the captioner applies for the cell, as ``xw = x @ Wx + b``, when a cell has both
INPUT_PROJECTION = ("Wx", "b")

Params = Mapping[str, np.ndarray]


def projects_input(names: Iterable[str]) -> bool:
    """Whether a cell with parameters ``names`` gets its input projected by the captioner."""
    return set(INPUT_PROJECTION) <= set(names)


class Cell:
    """Base class: parameters, packed sequence forward/backward, one decoding step.

    The default parameters are the CS231n ones (``Wx``, ``Wh``, ``b``, ``gates * H`` wide), so a
    cell with that layout only writes the recurrence.
    """

    #: the hidden size is multiplied by this to get the width of Wx, Wh and b (rnn 1, lstm 4)
    gates: int = 1

    def init_params(
        self, input_dim: int, hidden_dim: int, rng: Any, dtype: np.dtype
    ) -> dict[str, np.ndarray]:
        """CS231n initialisation: Gaussian scaled by 1/sqrt(fan-in), zero bias (Wx, Wh, b)."""
        width = self.gates * hidden_dim
        return {
            "Wx": (rng.randn(input_dim, width) / np.sqrt(input_dim)).astype(dtype),
            "Wh": (rng.randn(hidden_dim, width) / np.sqrt(hidden_dim)).astype(dtype),
            "b": np.zeros(width, dtype=dtype),
        }

    def forward(
        self, xw: np.ndarray, h0: np.ndarray, params: Params, packing: Packing
    ) -> tuple[np.ndarray, Any]:
        """Hidden states (P, H) for packed inputs ``xw`` (P, K); may overwrite ``xw``."""
        raise NotImplementedError

    def backward(
        self, dh: np.ndarray, cache: Any
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Given d(loss)/dh (P, H), return (dxw (P, K), dh0 (N, H), {name: gradient}).

        May overwrite ``dh``.
        """
        raise NotImplementedError

    def initial_state(self, h0: np.ndarray) -> tuple[np.ndarray, ...]:
        """Decoding state from the projected image feature; the hidden state comes first."""
        return (h0,)

    def step(
        self, xw: np.ndarray, state: tuple[np.ndarray, ...], params: Params
    ) -> tuple[np.ndarray, ...]:
        """One decoding step: input (n, K) and state -> next state; leaves ``xw`` alone."""
        raise NotImplementedError


class CarriedGradient:
    """d(loss)/d(h_{t-1}) passed back through time, kept transposed as (H, n).

    OpenBLAS computes ``Wh @ da.T`` into an (H, n) array faster than ``da @ Wh.T`` into (n, H)
    for the few dozen rows of one timestep (measured in benchmarks/README.md), and the backward
    loops do one such product per step.
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
