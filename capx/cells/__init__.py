"""Recurrent cells, registered by name in :data:`capx.registry.CELLS`."""

from capx.cells.base import Cell
from capx.cells import lstm, rnn  # noqa: F401  (register the built-in cells)

__all__ = ["Cell"]
