"""Matched parameter budgets: the hidden size that gives a captioner a target parameter count.

Comparing tokenizers at one hidden size gives the word model several times the parameters (its
embedding and output layers grow with the vocabulary). At a matched budget every model gets about
the same number of parameters: ``hidden_dim`` is solved for once the tokenizer's vocabulary is
known. The count comes from the cell's parameter shapes (:meth:`capx.cells.base.Cell.param_shapes`,
derived from its own ``init_params`` when a plugin does not say them), so it holds for any cell
plugin and allocates nothing: a budget is solved in well under a millisecond per candidate size
(``python -m benchmarks.bench_budget``). The size solved is checked against ``init_params``.
"""

from __future__ import annotations

import math

from capx.cells.base import shapes_at
from capx.registry import CELLS


def parameter_count(cell_type: str, vocab_size: int, input_dim: int, wordvec_dim: int,
                    hidden_dim: int) -> int:
    """Total parameters of ``CaptioningRNN`` with these sizes (projection, embedding, cell, output)."""
    shapes = CELLS.get(cell_type)().param_shapes(wordvec_dim, hidden_dim)
    return captioner_count(shapes, vocab_size, input_dim, wordvec_dim, hidden_dim)


def captioner_count(cell_shapes: dict[str, tuple[int, ...]], vocab_size: int, input_dim: int,
                    wordvec_dim: int, hidden_dim: int) -> int:
    """The captioner's own parameters (W_proj, b_proj, W_embed, W_vocab, b_vocab) plus the cell's."""
    cell_total = sum(math.prod(shape) for shape in cell_shapes.values())
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
    if count(high) < budget:  # not reachable: say so rather than build a smaller model
        raise ValueError(f"model.param_budget={budget:,} is above the largest {cell_type} model "
                         f"capx solves for ({count(high):,} parameters at hidden_dim={high:,} "
                         f"for a vocabulary of {vocab_size}); lower the budget, or set "
                         f"model.hidden_dim instead of a budget")
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid) < budget else (low, mid)
    return checked_shapes(cell_type, wordvec_dim,
                          min((low, high), key=lambda h: abs(count(h) - budget)))


def checked_shapes(cell_type: str, wordvec_dim: int, hidden_dim: int) -> int:
    """``hidden_dim``, once the cell's ``param_shapes`` there are those its ``init_params``
    makes (the model is built at this size anyway); a cell that disagrees is named."""
    cell = CELLS.get(cell_type)()
    said, made = cell.param_shapes(wordvec_dim, hidden_dim), shapes_at(cell, wordvec_dim,
                                                                       hidden_dim)
    if said != made:
        raise ValueError(
            f"cell {cell_type!r}: param_shapes({wordvec_dim}, {hidden_dim}) gives {said} but "
            f"init_params makes {made}; define param_shapes(input_dim, hidden_dim) on the cell "
            f"to return the shapes init_params makes")
    return hidden_dim


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


def flops_per_caption(param_groups: dict[str, float], tokens_per_caption: float) -> float:
    """Forward multiply-adds x 2 to score one caption by teacher forcing, from the parameter groups.

    Every recurrent and output weight is used once per predicted token and the image projection
    once per caption (the 2N-per-token rule; embedding lookups and element-wise work excluded).
    ``param_groups`` maps "image projection", "recurrent", "output" to their parameter counts.
    """
    per_token = param_groups.get("recurrent", 0) + param_groups.get("output", 0)
    return 2.0 * (param_groups.get("image projection", 0) + tokens_per_caption * per_token)
