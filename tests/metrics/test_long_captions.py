"""Scoring is linear in a caption's length, with a documented cap: a 100,000-character caption
(which stalled every epoch's validation) is scored on its first MAX_SCORED_CHARS characters, and
what each symbol spells is read with a number of joins linear in the symbols."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capx.captioner import CaptioningRNN
from capx.metrics.likelihood import MAX_SCORED_CHARS, caption_likelihood
from capx.metrics.surfaces import _pieces_by_pairs, _pieces_by_prefixes, symbol_surfaces
from capx.metrics.text import canonical_text
from capx.registry import TOKENIZERS

TRAIN = ["a red circle beside a blue square", "two green triangles under a red star"] * 4


def _tokenizer(name: str):
    options = {"vocab_size": 60} if name == "bpe" else {}
    return TOKENIZERS.get(name)(max_length=20, **options).fit(TRAIN)


def _model(tokenizer):
    return CaptioningRNN(tokenizer.word_to_idx, input_dim=4, wordvec_dim=8, hidden_dim=16,
                         cell_type="lstm")


@pytest.mark.parametrize("name", ["char", "word", "bpe"])
def test_a_100000_character_caption_is_scored_on_its_first_characters(name, caplog):
    tokenizer = _tokenizer(name)
    model = _model(tokenizer)
    words = np.random.RandomState(0).choice(["red", "zebra", "qq", "circle", "blue"], 20000)
    long = " ".join(words)
    assert len(long) > 100_000
    features = np.zeros((2, 4))
    with caplog.at_level(logging.WARNING):
        scored = caption_likelihood(model, tokenizer, features, [long, TRAIN[0]])
    assert f"scored on their first {MAX_SCORED_CHARS}" in caplog.text
    cut = canonical_text(long)[:MAX_SCORED_CHARS]
    expected = caption_likelihood(model, tokenizer, features, [cut, TRAIN[0]])
    assert np.array_equal(scored.nll, expected.nll)
    assert scored.chars[0] == expected.chars[0] <= MAX_SCORED_CHARS


@pytest.mark.parametrize("name", ["char", "word", "bpe"])
def test_reading_each_symbols_text_takes_joins_linear_in_the_symbols(name):
    tokenizer = _tokenizer(name)
    calls = {"join": 0}
    join = tokenizer.join

    def counted(symbols):
        calls["join"] += 1
        return join(symbols)

    tokenizer.join = counted
    text = " ".join(["zebra red qq circle"] * 200)
    symbols = tokenizer.tokenize(text)
    surfaces = symbol_surfaces(tokenizer, text)
    assert "".join(surfaces) == tokenizer.normalize(text)
    assert calls["join"] <= 2 * len(symbols) + 2


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcdeqrz ,.!<>UNK", max_size=60))
def test_pieces_by_pairs_agree_with_pieces_by_prefixes(text):
    for name in ("bpe", "word", "char"):
        tokenizer = _TOKENIZERS[name]
        symbols = tokenizer.tokenize(text)
        pairs = _pieces_by_pairs(tokenizer, symbols)
        if pairs is not None:
            assert pairs == _pieces_by_prefixes(tokenizer, symbols)


_TOKENIZERS = {name: _tokenizer(name) for name in ("bpe", "word", "char")}
