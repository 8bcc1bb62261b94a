"""Matched parameter budgets, the cells' parameter shapes they are counted from, and the
FLOPs-per-caption estimate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from capx.budget import flops_per_caption, hidden_for_budget, parameter_count
from capx.captioner import CaptioningRNN
from capx.cells.base import Cell
from capx.registry import CELLS, load_plugins
from capx.tokenizers import make_tokenizer
from tests.support import REPO

load_plugins(["plugins.gru", "plugins.gain_rnn"])
ALL_CELLS = ["rnn", "lstm", "gru", "gain_rnn"]


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


# -- counting from shapes -----------------------------------------------------------------------


@pytest.mark.parametrize("cell", ALL_CELLS)
@pytest.mark.parametrize("input_dim, hidden", [(1, 1), (3, 2), (16, 7), (64, 130)])
def test_param_shapes_are_the_shapes_init_params_makes(cell, input_dim, hidden):
    made = CELLS.get(cell)().init_params(input_dim, hidden, np.random.RandomState(0), np.float64)
    said = CELLS.get(cell)().param_shapes(input_dim, hidden)
    assert list(said) == list(made)  # and in init_params's order
    assert said == {name: value.shape for name, value in made.items()}


CAPTIONS = ["a red circle above a blue square", "two green triangles", "a small red square",
            "a big blue circle next to a triangle", "three squares, one of them red"] * 4


@pytest.mark.parametrize("tokenizer, options", [("char", {}), ("word", {"min_count": 1}),
                                                ("bpe", {"vocab_size": 30})])
@pytest.mark.parametrize("cell", ALL_CELLS)
def test_counts_equal_the_built_models_for_every_cell_and_tokenizer(cell, tokenizer, options):
    vocab = make_tokenizer(tokenizer, **options).fit(CAPTIONS).word_to_idx
    model = CaptioningRNN(vocab, input_dim=21, wordvec_dim=9, hidden_dim=13, cell_type=cell)
    assert parameter_count(cell, len(vocab), 21, 9, 13) == model.param_counts()["total"]


def study_runs():
    """(budget, cell, vocabulary, features, word vectors, hidden, total) of every budgeted run
    in the committed study exports: the sizes the solver gave before counts came from shapes."""
    for export in sorted((REPO / "docs").glob("study*/*/runs.jsonl")):
        for line in export.read_text().splitlines():
            run = json.loads(line)
            params, metrics = run["params"], run["metrics"]
            if params.get("model.param_budget") in (None, "null", "None"):
                continue
            hidden = int(metrics["test/hidden_dim"])
            yield (int(params["model.param_budget"]), run["labels"]["cell"],
                   int(metrics["data/vocab_size"]), int(metrics["params/W_proj"]) // hidden,
                   int(params["model.wordvec_dim"]), hidden, int(metrics["params/total"]))


def test_the_study_budgets_solve_to_the_hidden_sizes_the_study_trained():
    cases = set(study_runs())
    assert len(cases) >= 40  # char to word vocabularies, rnn and lstm, 250k and 1M
    for budget, cell, vocab_size, features, wordvec, hidden, total in cases:
        assert hidden_for_budget(budget, cell, vocab_size, features, wordvec) == hidden
        assert parameter_count(cell, vocab_size, features, wordvec, hidden) == total


class Probed(Cell):
    """A plugin that only defines init_params: its shapes are read at tiny hidden sizes."""

    calls: list[int] = []

    def init_params(self, input_dim, hidden_dim, rng, dtype):
        Probed.calls.append(hidden_dim)
        return {"U": rng.randn(input_dim, 2 * hidden_dim + 1), "Wh": rng.rand(hidden_dim, 3),
                "V": rng.normal(0, 0.1, (hidden_dim, input_dim)),
                "W": rng.uniform(-1, 1, size=(2, hidden_dim)), "scale": np.ones(4, dtype=dtype)}


def test_a_plugins_shapes_are_derived_from_init_params_at_tiny_sizes_only():
    Probed.calls = []
    assert Probed().param_shapes(64, 8192) == {"U": (64, 16385), "Wh": (8192, 3),
                                               "V": (8192, 64), "W": (2, 8192), "scale": (4,)}
    assert max(Probed.calls) <= 5
    made = Probed().init_params(64, 50, np.random.RandomState(0), np.float64)
    assert Probed().param_shapes(64, 50) == {name: value.shape for name, value in made.items()}


class Squared(Cell):
    """Shapes that are not affine in the hidden size: read at the size itself."""

    def init_params(self, input_dim, hidden_dim, rng, dtype):
        return {"Wh": np.zeros((hidden_dim * hidden_dim, input_dim), dtype=dtype)}


def test_shapes_off_an_affine_line_are_read_at_the_size_itself():
    assert Squared().param_shapes(3, 40) == {"Wh": (1600, 3)}


class Floored(Cell):
    """Affine at the probe sizes (all 16), not beyond: the budget names the disagreement."""

    def init_params(self, input_dim, hidden_dim, rng, dtype):
        return {"Wx": np.zeros((input_dim, hidden_dim)), "Wh": np.zeros((hidden_dim, hidden_dim)),
                "b": np.zeros(hidden_dim), "extra": np.zeros(max(hidden_dim, 16))}


def test_a_cell_whose_shapes_disagree_at_the_solved_size_is_named(monkeypatch):
    monkeypatch.setattr(CELLS, "_entries", dict(CELLS._entries))
    CELLS.add("floored", Floored)
    with pytest.raises(ValueError, match=r"cell 'floored': param_shapes\(8, \d+\).*define "
                                         r"param_shapes"):
        hidden_for_budget(20_000, "floored", 40, 50, 8)
