"""capx.metrics.speller_sensitivity: the open cost re-priced by other spellers, no re-training."""

import math

import numpy as np
import pytest

from capx.captioner import CaptioningRNN
from capx.datasets.base import CaptionSplit
from capx.metrics import CharNgramSpeller, caption_likelihood, evaluate
from capx.metrics.speller_sensitivity import (UniformCharSpeller, open_nll_under,
                                              speller_entries, study_spellers)
from capx.tokenizers.char import CharTokenizer
from capx.tokenizers.word import WordTokenizer

TRAIN = ["a dog runs on the grass", "a cat sits on a mat", "two dogs play with a ball",
         "a man rides a horse", "the cat sleeps", "a dog sits on the grass"]
TEST = ["a zebra runs on the grass", "two cats play", "a horse sleeps on a mattress"]


def model_for(tokenizer):
    return CaptioningRNN(tokenizer.word_to_idx, input_dim=3, wordvec_dim=4, hidden_dim=5,
                         cell_type="lstm", dtype=np.float64, seed=2)


def test_the_uniform_speller_prices_every_symbol_alike():
    speller = UniformCharSpeller().fit(TRAIN)
    alphabet = len(set("".join(TRAIN).replace(" ", "")))
    # two characters and the end of word, each 1/(A+2), given that the word is not empty
    expected = 3 * math.log(alphabet + 2) + math.log((alphabet + 1) / (alphabet + 2))
    assert speller.nll("ab") == pytest.approx(expected)
    assert speller.nll("ba") == speller.nll("ab")
    assert speller.nll("zz") > speller.nll("ab")  # z is outside the training alphabet
    assert speller_entries(speller) == 0


def test_the_study_spellers_grow_with_their_order_and_the_default_is_the_studys():
    spellers = study_spellers(TRAIN)
    assert list(spellers) == ["kn3", "kn5", "kn7", "uniform"]
    sizes = [speller_entries(spellers[name]) for name in ("kn3", "kn5", "kn7")]
    assert 0 < sizes[0] < sizes[1] < sizes[2]
    default = CharNgramSpeller().fit(TRAIN)
    assert speller_entries(default) == sizes[1]
    assert spellers["kn5"].nll("zebra") == default.nll("zebra")


@pytest.mark.parametrize("make_tokenizer", [WordTokenizer, lambda: CharTokenizer(max_length=40)])
def test_repricing_with_the_same_speller_is_the_open_nll(make_tokenizer):
    tokenizer = make_tokenizer().fit(TRAIN)
    speller = CharNgramSpeller().fit(TRAIN)
    features = np.random.RandomState(0).randn(len(TEST), 3)
    likelihood = caption_likelihood(model_for(tokenizer), tokenizer, features, TEST,
                                    speller=speller)
    np.testing.assert_allclose(open_nll_under(likelihood, tokenizer, speller), likelihood.nll,
                               rtol=1e-12)
    uniform = open_nll_under(likelihood, tokenizer, UniformCharSpeller().fit(TRAIN))
    assert (uniform >= likelihood.nll_closed).all()
    if tokenizer.name == "word":  # zebra, cats, mattress are unknown words: spelled
        assert (uniform > likelihood.nll + 1.0).any()


def test_evaluate_reports_each_speller_per_image_and_in_all():
    tokenizer = WordTokenizer().fit(TRAIN)
    speller = CharNgramSpeller().fit(TRAIN)
    split = CaptionSplit(np.random.RandomState(1).randn(2, 3), TEST, np.array([0, 1, 1]))
    result = evaluate(model_for(tokenizer), tokenizer, split, TRAIN, java_metrics=False,
                      speller=speller, spellers=study_spellers(TRAIN))
    per = result.per_image
    chars = per["chars"].sum()
    for name in ("kn3", "kn5", "kn7", "uniform"):
        assert per[f"nll_open_{name}"].sum() / chars / math.log(2) == pytest.approx(
            result[f"bits_per_char_speller_{name}"], rel=1e-12)
    assert result["bits_per_char_speller_kn5"] == pytest.approx(result["bits_per_char"],
                                                                rel=1e-12)
    assert result["bits_per_char_speller_uniform"] > result["bits_per_char_speller_kn5"]
    assert result["speller_entries_kn7"] > result["speller_entries_kn3"]
