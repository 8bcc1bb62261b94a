"""The recurrent-cell contract every cell plugin (rnn, lstm, gru, ...) implements.

A cell owns its parameters and the recurrence; the captioner owns everything around it (image
projection, embedding, vocabulary projection, loss) and keeps the cell's parameters in its
``params`` between ``W_embed`` and ``W_vocab``, in the order the cell declares them.

- ``init_params(input_dim, hidden_dim, rng, dtype)`` declares and initialises the cell's
  parameters: a dict ``{name: array}`` with any names except the captioner's own (``W_proj``,
  ``b_proj``, ``W_embed``, ``W_vocab``, ``b_vocab``). ``input_dim`` is the word-vector size.
- ``param_shapes(input_dim, hidden_dim)`` gives the shapes ``init_params`` would make, without
  making them (parameter counts and budgets need only these). Optional: the default is exact for
  the CS231n layout and read off ``init_params`` at tiny hidden sizes otherwise.
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

    def param_shapes(self, input_dim: int, hidden_dim: int) -> dict[str, tuple[int, ...]]:
        """The shapes of the parameters ``init_params(input_dim, hidden_dim, ...)`` makes, by
        name, without allocating them: the CS231n ones while ``init_params`` is this class's,
        else read off the cell's own ``init_params`` (:func:`shapes_from_init_params`)."""
        if type(self).init_params is Cell.init_params:
            width = self.gates * hidden_dim
            return {"Wx": (input_dim, width), "Wh": (hidden_dim, width), "b": (width,)}
        return shapes_from_init_params(self, input_dim, hidden_dim)

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


#: hidden sizes :func:`shapes_from_init_params` calls ``init_params`` at: the first two fix an
#: affine function of the hidden size per dimension, the others check it
PROBE_HIDDEN = (1, 2, 3, 5)


def shapes_from_init_params(cell: Cell, input_dim: int, hidden_dim: int
                            ) -> dict[str, tuple[int, ...]]:
    """``cell.init_params``'s shapes at ``hidden_dim``, from calls at tiny hidden sizes only.

    Each dimension of each parameter is taken to be affine in the hidden size (``input_dim``,
    ``gates * H``, ``H + 1``, ...): read at hidden sizes 1 and 2, checked at 3 and 5, then
    evaluated at ``hidden_dim``. A cell whose shapes are not of that form (names or ranks that
    change with the size, a dimension off the line) is called at ``hidden_dim`` itself; one that
    is affine only at tiny sizes is caught where the count is used
    (:func:`capx.budget.hidden_for_budget` checks the size it solves against ``init_params``).
    """
    if hidden_dim <= max(PROBE_HIDDEN):
        return shapes_at(cell, input_dim, hidden_dim)
    probes = {h: shapes_at(cell, input_dim, h) for h in PROBE_HIDDEN}
    at_1, at_2 = probes[1], probes[2]
    lines: dict[str, list[tuple[int, int]]] = {}  # name -> (intercept, slope) of each dimension
    for name, dims in at_1.items():
        if len(at_2.get(name, ())) != len(dims):
            return shapes_at(cell, input_dim, hidden_dim)
        lines[name] = [(2 * a - b, b - a) for a, b in zip(dims, at_2[name])]
    for h, probe in probes.items():
        if probe != {name: tuple(c + s * h for c, s in dims) for name, dims in lines.items()}:
            return shapes_at(cell, input_dim, hidden_dim)
    return {name: tuple(c + s * hidden_dim for c, s in dims) for name, dims in lines.items()}


def shapes_at(cell: Cell, input_dim: int, hidden_dim: int) -> dict[str, tuple[int, ...]]:
    """The shapes ``cell.init_params`` makes at these sizes (it allocates them, as zeros)."""
    params = cell.init_params(input_dim, hidden_dim, ZeroDraws(), np.float32)
    return {name: tuple(int(d) for d in np.shape(value)) for name, value in params.items()}


class ZeroDraws:
    """A stand-in RNG whose draws are zeros (``randn``, ``normal``, ``uniform``, ...): the
    parameters' shapes without random numbers."""

    @staticmethod
    def randn(*shape: int) -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)

    rand = randn  # both take the shape as separate arguments

    def __getattr__(self, name: str):  # normal(loc, scale, size), uniform(...), standard_normal(size)
        def draw(*args, size=None, **kwargs):
            shape = size if size is not None else (args[-1] if args else ())
            return np.zeros(shape, dtype=np.float32)
        return draw


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
