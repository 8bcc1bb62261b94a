"""Matched parameter budgets: the hidden size that gives a captioner a target parameter count.

Comparing tokenizers at one hidden size gives the word model several times the parameters (its
embedding and output layers grow with the vocabulary). At a matched budget every model gets about
the same number of parameters: ``hidden_dim`` is solved for once the tokenizer's vocabulary is
known. The count is read off the cell's own ``init_params`` at each candidate size, so it holds
for any cell plugin.
"""

from __future__ import annotations

import numpy as np

from capx.registry import CELLS


def parameter_count(cell_type: str, vocab_size: int, input_dim: int, wordvec_dim: int,
                    hidden_dim: int) -> int:
    """Total parameters of ``CaptioningRNN`` with these sizes (projection, embedding, cell, output)."""
    cell_params = CELLS.get(cell_type)().init_params(wordvec_dim, hidden_dim,
                                                      _ShapeOnly(), np.float32)
    cell_total = sum(int(np.prod(p.shape)) for p in cell_params.values())
    return (input_dim * hidden_dim + hidden_dim + vocab_size * wordvec_dim + cell_total
            + hidden_dim * vocab_size + vocab_size)


def hidden_for_budget(budget: int, cell_type: str, vocab_size: int, input_dim: int,
                      wordvec_dim: int, max_hidden: int = 8192) -> int:
    """The hidden size whose total parameter count is closest to ``budget`` (counts grow with it)."""
    def count(h: int) -> int:
        return parameter_count(cell_type, vocab_size, input_dim, wordvec_dim, h)

    if count(1) >= budget:
        raise ValueError(f"model.param_budget={budget:,} is below the smallest {cell_type} model "
                         f"for a vocabulary of {vocab_size} ({count(1):,} parameters at "
                         f"hidden_dim=1); raise the budget or shrink model.wordvec_dim")
    low, high = 1, max_hidden  # count(low) < budget; find the first h with count(h) >= budget
    if count(high) < budget:
        return high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid) < budget else (low, mid)
    return min((low, high), key=lambda h: abs(count(h) - budget))


SMALL_HIDDEN = 32  # below this the recurrent state is a bottleneck, not a size choice


def budget_squeeze_warning(budget: int, cell_type: str, vocab_size: int, hidden: int) -> str | None:
    """A warning when a budget leaves the cell a tiny hidden state: a large vocabulary's embedding
    and output layers then take nearly all the parameters, and the comparison measures that
    squeeze rather than the tokenizer (the caption-only study's word LSTM got 4 units at 250k)."""
    if hidden >= SMALL_HIDDEN:
        return None
    return (f"model.param_budget={budget:,} leaves the {cell_type} only {hidden} hidden units for a "
            f"vocabulary of {vocab_size:,}: the embedding and output layers take the budget. "
            f"Compare at a fixed model.hidden_dim as well, or raise the budget.")


class _ShapeOnly:
    """A stand-in RNG whose draws are zeros: parameter shapes without random numbers."""

    @staticmethod
    def randn(*shape: int) -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)

    def __getattr__(self, name: str):  # normal, uniform, ...: zeros of the requested size
        def draw(*args, size=None, **kwargs):
            shape = size if size is not None else (args[-1] if args else ())
            return np.zeros(shape, dtype=np.float32)
        return draw


def flops_per_caption(param_groups: dict[str, float], tokens_per_caption: float) -> float:
    """Forward multiply-adds x 2 to score one caption by teacher forcing, from the parameter groups.

    Every recurrent and output weight is used once per predicted token and the image projection
    once per caption (the 2N-per-token rule; embedding lookups and element-wise work excluded).
    ``param_groups`` maps "image projection", "recurrent", "output" to their parameter counts.
    """
    per_token = param_groups.get("recurrent", 0) + param_groups.get("output", 0)
    return 2.0 * (param_groups.get("image projection", 0) + tokens_per_caption * per_token)
