"""Example third-party plugin: registers a cell named ``demo`` when capx loads its entry point."""

from capx.cells.rnn import RNNCell
from capx.registry import CELLS


@CELLS.register("demo")
class DemoCell(RNNCell):
    """The vanilla RNN under another name; enough to show discovery through the entry point."""
