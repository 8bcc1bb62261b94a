"""Tests for the word and char tokenizers and the vocabulary statistics."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from capx.registry import TOKENIZERS, UnknownNameError
from capx.tokenizers import (
    END_ID, NULL_ID, SPECIAL_TOKENS, START_ID, UNK, UNK_ID, CharTokenizer, NotFittedError,
    Tokenizer, WordTokenizer, make_tokenizer,
)
from capx.tokenizers.vocab_stats import format_stats_table, length_summary, vocab_stats

CONFIGS = [
    ("word", {}),
    ("word", {"punctuation": "split"}),
    ("char", {}),
    ("char", {"lowercase": False}),
    ("char", {"punctuation": "strip"}),
]
CONFIG_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in opts.items()) or 'default'}"
              for name, opts in CONFIGS]

# Pieces that stress the tricky parts: case, punctuation, whitespace runs, <UNK> literals and
# halves of them, non-ASCII letters whose lowercase is longer than the letter.
FRAGMENTS = ["a", "B", "dog", " ", "  ", "\t", "\n", ",", ".", "'", "<", ">", UNK, "<UN", "K>",
             "UNK", "Ünï", "ß", "İ", "x-y"]
caption_text = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=25).map("".join)

CORPUS = ["A dog runs on the grass.", "Two dogs play, with a ball!", "a man rides a horse",
          "The cat sits on a mat", "a dog and a cat"]


def make(name: str, **options) -> Tokenizer:
    return TOKENIZERS.get(name)(**options)


def expected_rows(tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    """The encoding spelled out symbol by symbol (reference for the vectorised encoders)."""
    width = tokenizer.max_length + 2
    rows = np.zeros((len(texts), width), dtype=np.int32)
    for i, text in enumerate(texts):
        ids = [tokenizer.word_to_idx.get(s, UNK_ID) for s in tokenizer.tokenize(text)]
        row = [START_ID] + ids[: tokenizer.max_length] + [END_ID]
        rows[i, : len(row)] = row
    return rows


# ----- properties ------------------------------------------------------------------------------
@pytest.mark.parametrize("name,options", CONFIGS, ids=CONFIG_IDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=caption_text)
def test_decode_encode_gives_normalized_text(name, options, text):
    tokenizer = make(name, max_length=200, **options).fit([text])
    assume(len(tokenizer.tokenize(text)) <= tokenizer.max_length)
    assert tokenizer.decode(tokenizer.encode([text])) == [tokenizer.normalize(text)]
    assert tokenizer.normalize(tokenizer.normalize(text)) == tokenizer.normalize(text)


@pytest.mark.parametrize("name,options", CONFIGS, ids=CONFIG_IDS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(caption_text, max_size=8), max_length=st.integers(1, 12))
def test_encoded_rows_are_well_formed(name, options, texts, max_length):
    tokenizer = make(name, max_length=max_length, **options).fit(CORPUS + [UNK])
    encoded = tokenizer.encode(texts)

    assert encoded.dtype == np.int32 and encoded.shape == (len(texts), max_length + 2)
    assert np.array_equal(encoded, expected_rows(tokenizer, texts))
    assert ((encoded >= 0) & (encoded < tokenizer.vocab_size)).all()
    assert (encoded[:, 0] == START_ID).all()
    for row in encoded:
        ends = np.flatnonzero(row == END_ID)
        assert len(ends) == 1
        assert (row[ends[0] + 1:] == NULL_ID).all()
        assert not np.isin(row[1:ends[0]], [NULL_ID, START_ID]).any()
    lengths = [len(tokenizer.tokenize(t)) for t in texts]
    expected_share = np.mean([n > max_length for n in lengths]) if texts else 0.0
    assert tokenizer.last_truncated_fraction == pytest.approx(expected_share)


@pytest.mark.parametrize("name", ["word", "char"])
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_known_symbols_round_trip_with_a_fixed_vocabulary(name, data):
    tokenizer = make(name, max_length=60).fit(CORPUS)
    symbols = data.draw(st.lists(st.sampled_from(tokenizer.idx_to_word[4:]), max_size=20))
    text = tokenizer.join(symbols)
    assume(len(tokenizer.tokenize(text)) <= tokenizer.max_length)
    assert tokenizer.decode(tokenizer.encode([text])) == [tokenizer.normalize(text)]
    assert UNK_ID not in tokenizer.encode([text])


# ----- vocabulary ------------------------------------------------------------------------------
def test_special_tokens_then_symbols_by_count_ties_alphabetical():
    tokenizer = WordTokenizer().fit(["b a c", "c b", "c d", "zz aa"])
    assert tokenizer.idx_to_word[:4] == list(SPECIAL_TOKENS) == ["<NULL>", "<START>", "<END>", UNK]
    assert tokenizer.idx_to_word[4:] == ["c", "b", "a", "aa", "d", "zz"]
    assert all(tokenizer.word_to_idx[w] == i for i, w in enumerate(tokenizer.idx_to_word))
    assert tokenizer.vocab_size == 10


def test_min_count_and_max_vocab():
    texts = ["a a a b b c", "a b d"]
    assert WordTokenizer(min_count=2).fit(texts).idx_to_word[4:] == ["a", "b"]
    assert WordTokenizer(max_vocab=5).fit(texts).idx_to_word == list(SPECIAL_TOKENS) + ["a"]
    capped = WordTokenizer(min_count=2).fit(texts)
    assert capped.encode(["a c d"])[0, 1:5].tolist() == [capped.word_to_idx["a"], UNK_ID, UNK_ID,
                                                          END_ID]
    char = CharTokenizer(min_count=3).fit(["aaab", "ab"])
    assert char.idx_to_word[4:] == ["a"]
    assert char.decode(char.encode(["ab"])) == [f"a{UNK}"]


def test_unknown_word_and_char_become_unk():
    word = WordTokenizer().fit(["a dog"])
    assert word.encode(["a cat"])[0, :4].tolist() == [START_ID, word.word_to_idx["a"], UNK_ID,
                                                       END_ID]
    assert word.decode(word.encode(["a cat"])) == [f"a {UNK}"]
    char = CharTokenizer().fit(["a dog"])
    assert char.decode(char.encode(["a cut"])) == [f"a {UNK}{UNK}{UNK}"]


def test_unk_literal_is_one_symbol_in_both_tokenizers():
    text = f"A {UNK} on the <UNK>, near {UNK}s"
    char = CharTokenizer().fit([text])
    symbols = char.tokenize(text)
    assert symbols.count(UNK) == 3 and all(len(s) == 1 for s in symbols if s != UNK)
    assert UNK not in char.idx_to_word[4:] and "<" not in char.idx_to_word
    encoded = char.encode([text])[0]
    assert np.count_nonzero(encoded == UNK_ID) == 3
    assert char.decode(char.encode([text])) == [f"a {UNK} on the {UNK}, near {UNK}s"]

    word = WordTokenizer().fit([text])
    assert word.tokenize(text) == ["a", UNK, "on", "the", UNK, "near", UNK, "s"]
    assert word.decode(word.encode([text])) == [f"a {UNK} on the {UNK} near {UNK} s"]
    assert np.count_nonzero(word.encode([text]) == UNK_ID) == 3


def test_unk_literal_split_across_two_captions_is_not_joined():
    char = CharTokenizer().fit(["<un", "k>"])  # lowercase text: pieces of a literal, not one
    tokenizer = CharTokenizer(lowercase=False).fit(["<UN", "K>"])
    assert tokenizer.decode(tokenizer.encode(["<UN", "K>"])) == ["<UN", "K>"]
    assert UNK_ID not in tokenizer.encode(["<UN", "K>"])
    assert UNK_ID not in char.encode(["<un", "k>"])


def test_word_punctuation_modes():
    text = "A dog, (running)  FAST!"
    assert WordTokenizer().normalize(text) == "a dog running fast"
    assert WordTokenizer(punctuation="split").tokenize(text) == [
        "a", "dog", ",", "(", "running", ")", "fast", "!"]


def test_char_normalization():
    assert CharTokenizer().normalize("  A  Dog\n\tRuns. ") == "a dog runs."
    assert CharTokenizer(lowercase=False).normalize(" A  Dog ") == "A Dog"
    assert CharTokenizer(punctuation="strip").normalize("A dog, running.") == "a dog running"


# ----- encode / decode -------------------------------------------------------------------------
def test_truncation_keeps_end_and_reports_share(caplog):
    tokenizer = WordTokenizer(max_length=3).fit(["a b c d e", "a b"])
    with caplog.at_level(logging.INFO, logger="capx.tokenizers"):
        encoded = tokenizer.encode(["a b c d e", "a b", "c d e a", "e"])
    ids = [tokenizer.word_to_idx[w] for w in "abcde"]
    assert encoded[0].tolist() == [START_ID, ids[0], ids[1], ids[2], END_ID]
    assert encoded[1].tolist() == [START_ID, ids[0], ids[1], END_ID, NULL_ID]
    assert encoded[2, -1] == END_ID
    assert tokenizer.last_truncated_fraction == pytest.approx(0.5)
    assert "truncated 2 of 4 captions" in caplog.text
    tokenizer.encode(["a"])
    assert tokenizer.last_truncated_fraction == 0.0


def test_fixed_width_and_defaults():
    word, char = WordTokenizer().fit(CORPUS), CharTokenizer().fit(CORPUS)
    assert (word.max_length, char.max_length) == (16, 80)
    assert word.encode(["a"]).shape == (1, 18) and char.encode(["a"]).shape == (1, 82)
    assert word.encode([]).shape == (0, 18)
    assert char.decode(char.encode([""])) == [""]


def test_decode_one_row_and_bad_input():
    tokenizer = WordTokenizer().fit(CORPUS)
    row = tokenizer.encode(["a dog"])[0]
    assert tokenizer.decode(row) == ["a dog"]
    assert tokenizer.decode([[START_ID, tokenizer.word_to_idx["dog"], END_ID,
                              tokenizer.word_to_idx["cat"]]]) == ["dog"]
    with pytest.raises(ValueError, match="vocabulary has"):
        tokenizer.decode([[1, tokenizer.vocab_size]])
    with pytest.raises(TypeError, match="list of caption strings"):
        tokenizer.encode("a dog")
    with pytest.raises(TypeError, match="captions must be strings"):
        tokenizer.encode(["a", None])


def test_unfitted_tokenizer_is_a_clear_error():
    for tokenizer in (WordTokenizer(), CharTokenizer()):
        for use in (lambda t: t.encode(["a"]), lambda t: t.decode([[1, 2]]),
                    lambda t: t.vocab_size, lambda t: t.to_dict()):
            with pytest.raises(NotFittedError, match=r"call fit\(train_texts\) first"):
                use(tokenizer)
        assert tokenizer.tokenize("a b") and tokenizer.normalize("A") == "a"


# ----- persistence, registry, options -----------------------------------------------------------
@pytest.mark.parametrize("name,options", CONFIGS, ids=CONFIG_IDS)
def test_to_dict_from_dict_round_trip_through_json(name, options):
    tokenizer = make(name, max_length=7, min_count=1, **options).fit(CORPUS)
    stored = json.loads(json.dumps(tokenizer.to_dict()))
    for loader in (Tokenizer, type(tokenizer)):
        restored = loader.from_dict(stored)
        assert type(restored) is type(tokenizer)
        assert restored.options() == tokenizer.options()
        assert restored.idx_to_word == tokenizer.idx_to_word
        assert restored.word_to_idx == tokenizer.word_to_idx
        assert np.array_equal(restored.encode(CORPUS + ["zebra?"]),
                              tokenizer.encode(CORPUS + ["zebra?"]))


def test_from_dict_rejects_bad_input():
    stored = WordTokenizer().fit(CORPUS).to_dict()
    with pytest.raises(ValueError, match="is for 'word', not 'char'"):
        CharTokenizer.from_dict(stored)
    with pytest.raises(ValueError, match="missing key"):
        Tokenizer.from_dict({"name": "word"})
    with pytest.raises(ValueError, match="must start with"):
        Tokenizer.from_dict({**stored, "idx_to_word": ["a", "b"]})
    with pytest.raises(ValueError, match="single characters"):
        Tokenizer.from_dict({"name": "char", "options": {},
                             "idx_to_word": list(SPECIAL_TOKENS) + ["ab"]})


def test_registry_lookup_and_options():
    assert TOKENIZERS.get("char") is CharTokenizer and TOKENIZERS.get("word") is WordTokenizer
    assert {"char", "word"} <= set(TOKENIZERS.names())
    assert TOKENIZERS.get("char").name == "char"
    assert make_tokenizer("char", max_length=5, lowercase=False).options()["lowercase"] is False
    with pytest.raises(ValueError, match="has no option.*lowercase"):
        make_tokenizer("word", lowercase=True)
    with pytest.raises(UnknownNameError, match="registered tokenizers"):
        TOKENIZERS.get("nope")
    with pytest.raises(ValueError, match="'max_length' must be an integer >= 1"):
        WordTokenizer(max_length=0)
    with pytest.raises(ValueError, match="'punctuation' must be one of"):
        WordTokenizer(punctuation="keep")
    with pytest.raises(ValueError, match="'max_vocab'"):
        CharTokenizer(max_vocab=2)
    with pytest.raises(TypeError):
        WordTokenizer(16)  # keyword options only


# ----- statistics ------------------------------------------------------------------------------
def test_vocab_stats_counts():
    tokenizer = WordTokenizer(max_length=3).fit(["a b a"])
    stats = vocab_stats(tokenizer, ["a b c d", f"a {UNK}"])
    assert stats["num_tokens"] == 6 and stats["vocab_size"] == 6
    assert stats["coverage"] == pytest.approx(3 / 5)  # the <UNK> literal is left out
    assert stats["unk_rate"] == pytest.approx(3 / 6)
    assert stats["unk_literal_rate"] == pytest.approx(1 / 6)
    assert stats["truncated_fraction"] == pytest.approx(0.5)
    assert stats["length_tokens"] == {"mean": 3.0, "median": 3.0, "p95": pytest.approx(3.9),
                                      "max": 4.0}
    assert stats["length_chars"]["max"] == len("a b c d")
    assert length_summary([])["max"] == 0.0


def test_format_stats_table_puts_columns_side_by_side():
    word, char = WordTokenizer().fit(CORPUS), CharTokenizer().fit(CORPUS)
    table = format_stats_table({"word": vocab_stats(word, CORPUS),
                                "char": vocab_stats(char, CORPUS)})
    lines = table.splitlines()
    assert lines[0].split() == ["word", "char"]
    vocab_line = next(line for line in lines if line.startswith("vocab_size "))
    assert vocab_line.split()[1:] == [str(word.vocab_size), str(char.vocab_size)]
    assert any(line.startswith("length_chars.p95") for line in lines)


def test_word_and_char_on_real_val2017_captions(val2017_captions):
    from examples.vocab_stats import load_annotations, split_by_image

    train, held_out = split_by_image(load_annotations(val2017_captions))
    assert len(train) + len(held_out) == 25_014 and 0.85 < len(train) / 25_014 < 0.95
    word, char = WordTokenizer().fit(train), CharTokenizer().fit(train)
    stats = {"word": vocab_stats(word, held_out), "char": vocab_stats(char, held_out)}
    print("\n" + format_stats_table(stats))

    assert word.vocab_size > 1000 and char.vocab_size < 100
    assert stats["char"]["coverage"] > 0.999 and 0.9 < stats["word"]["coverage"] < 1.0
    assert stats["char"]["length_tokens"]["mean"] > 4 * stats["word"]["length_tokens"]["mean"]
    assert stats["char"]["length_tokens"]["mean"] == pytest.approx(
        stats["char"]["length_chars"]["mean"])
    for name, tokenizer in (("word", word), ("char", char)):
        encoded = tokenizer.encode(held_out)
        assert encoded.shape == (len(held_out), tokenizer.max_length + 2)
        assert tokenizer.last_truncated_fraction == pytest.approx(
            stats[name]["truncated_fraction"])
        assert 0 < tokenizer.last_truncated_fraction < 0.1
        short = [t for t in held_out[:300] if len(tokenizer.tokenize(t)) <= tokenizer.max_length]
        decoded = tokenizer.decode(tokenizer.encode(short))
        expected = [tokenizer.join([s if s in tokenizer.word_to_idx else UNK
                                    for s in tokenizer.tokenize(t)]) for t in short]
        assert decoded == expected


def test_example_compares_coco_mini(coco_mini):
    from examples.vocab_stats import compare, load_annotations

    train = [a["caption"] for a in load_annotations(coco_mini / "captions_train.json")]
    val = [a["caption"] for a in load_annotations(coco_mini / "captions_val.json")]
    table = compare(train, val)
    assert table.splitlines()[0].split() == ["word", "char"]
    coverage = next(line for line in table.splitlines() if line.startswith("coverage "))
    word_coverage, char_coverage = map(float, coverage.split()[1:])
    assert word_coverage < char_coverage <= 1.0
