"""Matched parameter budgets and the FLOPs-per-caption estimate."""

from __future__ import annotations

import numpy as np
import pytest

from capx.budget import flops_per_caption, hidden_for_budget, parameter_count
from capx.captioner import CaptioningRNN


def vocab(size: int) -> dict[str, int]:
    words = ["<NULL>", "<START>", "<END>", "<UNK>"] + [f"w{i}" for i in range(size - 4)]
    return {w: i for i, w in enumerate(words)}


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("vocab_size, wordvec", [(40, 16), (700, 64)])
def test_parameter_count_equals_the_model_and_budget_is_met_closely(cell, vocab_size, wordvec):
    model = CaptioningRNN(vocab(vocab_size), input_dim=50, wordvec_dim=wordvec, hidden_dim=33,
                          cell_type=cell)
    assert parameter_count(cell, vocab_size, 50, wordvec, 33) == model.param_counts()["total"]
    hidden = hidden_for_budget(60_000, cell, vocab_size, 50, wordvec)
    here = parameter_count(cell, vocab_size, 50, wordvec, hidden)
    step = abs(parameter_count(cell, vocab_size, 50, wordvec, hidden + 1) - here)
    assert abs(here - 60_000) <= step  # no other hidden size is closer by more than one step


def test_a_larger_vocabulary_gets_a_smaller_hidden_size_at_one_budget():
    small = hidden_for_budget(250_000, "lstm", 40, 1280, 32)
    large = hidden_for_budget(250_000, "lstm", 1000, 1280, 32)
    assert large < small


def test_budget_below_the_smallest_model_is_a_clear_error():
    with pytest.raises(ValueError, match="param_budget"):
        hidden_for_budget(1000, "lstm", 5000, 512, 64)


def test_flops_per_caption_by_hand():
    groups = {"image projection": 10, "embedding": 999, "recurrent": 100, "output": 50}
    assert flops_per_caption(groups, tokens_per_caption=4) == 2 * (10 + 4 * 150)
    assert np.isfinite(flops_per_caption({}, 3.0))


def test_a_budget_that_squeezes_the_hidden_state_is_warned_about():
    """At 250k parameters a 3,626-word vocabulary leaves the LSTM a handful of hidden units (the
    caption-only study's word model got 4); a char vocabulary leaves it hundreds."""
    from capx.budget import budget_squeeze_warning

    word = hidden_for_budget(250_000, "lstm", 3626, 512, 32)
    char = hidden_for_budget(250_000, "lstm", 41, 512, 32)
    message = budget_squeeze_warning(250_000, "lstm", 3626, word)
    assert word < 32 <= char
    assert message is not None and f"only {word} hidden units" in message
    assert "model.hidden_dim" in message
    assert budget_squeeze_warning(250_000, "lstm", 41, char) is None
