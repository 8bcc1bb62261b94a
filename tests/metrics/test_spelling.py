"""The character n-gram speller: a proper distribution over words, sensible costs."""

from __future__ import annotations

import itertools
import math

import pytest

from capx.metrics.spelling import CODE_POINTS, CharNgramSpeller

TINY = {"ab": 3, "ba": 1, "a": 2, "abb": 1, "b": 1}
CAPTIONS = ["A dog runs on the grass.", "a cat sits on a mat", "two dogs play with a ball",
            "a man rides a horse", "the cat sleeps", "a <UNK> on a bench"]


def total_mass(speller: CharNgramSpeller, max_length: int) -> list[float]:
    """Mass of all words of length 1..L, for L = 1..max_length, over the training alphabet plus
    one stand-in unseen character. Every unseen character has the same probability in every
    context (unseen contexts back off alike), so the stand-in counts for all of them."""
    alphabet = sorted(speller._alphabet) + ["z"]
    unseen = CODE_POINTS - len(alphabet) + 1
    masses, total = [], 0.0
    for length in range(1, max_length + 1):
        for chars in itertools.product(alphabet, repeat=length):
            word = "".join(chars)
            total += math.exp(-speller.nll(word)) * unseen ** word.count("z")
        masses.append(total)
    return masses


@pytest.mark.parametrize("smoothing", ["kneser-ney", "witten-bell"])
@pytest.mark.parametrize("unit", ["types", "tokens"])
@pytest.mark.parametrize("order", [1, 3, 5])
def test_mass_over_all_words_converges_to_one(smoothing, unit, order):
    speller = CharNgramSpeller(order=order, smoothing=smoothing, unit=unit).fit_counts(TINY)
    masses = total_mass(speller, 7)
    assert all(a < b for a, b in zip(masses, masses[1:]))
    assert masses[-1] <= 1 + 1e-12 and 1 - masses[-1] < 0.06
    # the mass of longer words shrinks geometrically: Aitken's extrapolation gives the limit
    m0, m1, m2 = masses[-3:]
    assert m2 - (m2 - m1) ** 2 / (m2 - 2 * m1 + m0) == pytest.approx(1.0, abs=1e-4)


def test_char_nll_is_a_distribution_over_characters():
    speller = CharNgramSpeller().fit_counts(TINY)
    seen = sum(math.exp(-speller.char_nll(c)) for c in "ab")
    unseen = math.exp(-speller.char_nll("q")) * (CODE_POINTS - 2)
    assert seen + unseen == pytest.approx(1.0, abs=1e-12)
    assert speller.char_nll("\n") == pytest.approx(speller.char_nll("q"))


def test_costs_order_the_obvious_cases():
    speller = CharNgramSpeller().fit(CAPTIONS)
    # seen words are cheaper than unseen ones, longer unseen strings cost more
    assert speller.nll("dog") < speller.nll("dgo") < speller.nll("dgoxq")
    assert speller.nll("cats") < speller.nll("ctas")
    # an unseen character has a finite cost, larger than any seen one
    assert math.isfinite(speller.nll("ü")) and speller.nll("ü") > speller.nll("o")
    assert speller.nll("dögs") > speller.nll("dogs") + 10
    assert math.isfinite(speller.char_nll("ü")) and speller.char_nll("ü") > speller.char_nll("a")


def test_tokens_weight_frequent_words_types_do_not():
    counts = {"a": 1000, "dog": 1, "cat": 1}
    tokens = CharNgramSpeller(unit="tokens").fit_counts(counts)
    types = CharNgramSpeller(unit="types").fit_counts(counts)
    assert tokens.nll("a") < types.nll("a")
    assert tokens.nll("dog") > types.nll("dog")


def test_fit_reads_canonical_words_and_skips_literal_unk():
    speller = CharNgramSpeller().fit(CAPTIONS)
    assert "<" not in speller._alphabet and "." not in speller._alphabet
    assert speller.nll("<UNK>") > speller.nll("bench")  # only priced as an unseen string


def test_bad_inputs_say_what_to_do():
    with pytest.raises(RuntimeError, match="call fit"):
        CharNgramSpeller().nll("dog")
    speller = CharNgramSpeller().fit(CAPTIONS)
    for word in ("", "two words"):
        with pytest.raises(ValueError, match="without whitespace"):
            speller.nll(word)
    with pytest.raises(ValueError, match="one character"):
        speller.char_nll("ab")
    with pytest.raises(ValueError, match="order"):
        CharNgramSpeller(order=0)
    with pytest.raises(ValueError, match="smoothing"):
        CharNgramSpeller(smoothing="good-turing")
    with pytest.raises(TypeError, match="list of caption strings"):
        CharNgramSpeller().fit("a dog")


def test_empty_training_text_gives_the_base_distribution():
    speller = CharNgramSpeller().fit([])  # base only: end of word 1/2, escape 1/2
    # first character: the escape given "not the end" (1) over all code points; then the end
    assert speller.nll("a") == pytest.approx(math.log(CODE_POINTS) + math.log(2))
