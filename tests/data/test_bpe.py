"""Tests for the sentencepiece BPE subword tokenizer (``tokenizer=bpe``)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from capx.run.config import plugin_options
from capx.registry import TOKENIZERS
from capx.tokenizers import (
    END_ID, NULL_ID, SPECIAL_TOKENS, START_ID, UNK, UNK_ID, BPETokenizer, CharTokenizer,
    NotFittedError, Tokenizer, WordTokenizer, make_tokenizer,
)
from capx.tokenizers.vocab_stats import vocab_stats

# Caption-like training text whose alphabet the property tests draw from: letters of both cases,
# digits, every ASCII punctuation mark, a few non-ASCII letters and a literal ▁ (sentencepiece's
# own space marker), plus <UNK> literals in several positions.
CORPUS = [
    "A dog runs on the grass.", "Two dogs play, with a ball!", "a man rides a horse",
    "The cat sits on a mat", "a dog and a cat", f"a {UNK} on the {UNK}, near {UNK}s",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG 0123456789",
    "the quick brown fox jumps over the lazy dog",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "Ünï ß café naïve ▁marker",
]
CONFIGS = [{}, {"lowercase": False}, {"punctuation": "keep"},
           {"lowercase": False, "punctuation": "keep"}]
CONFIG_IDS = ["default", "cased", "keep-punctuation", "cased-keep-punctuation"]
VOCAB_SIZE = 150  # room for every character of CORPUS (about 100 when cased, with punctuation)

# Fragments that stress spacing, case, punctuation, <UNK> literals and halves of them.
FRAGMENTS = [" ", "  ", "\t", "\n", " . ", UNK, f" {UNK} ", "<UN", "K>", "dog", "s", "Ünï", "▁"]


@lru_cache(maxsize=None)
def fitted(config_index: int) -> BPETokenizer:
    return BPETokenizer(max_length=400, vocab_size=VOCAB_SIZE, **CONFIGS[config_index]).fit(CORPUS)


TRAIN_CHARS = sorted({c for text in CORPUS for c in text.replace(UNK, "")} - {" "})
# caption-like strings over the characters of CORPUS (all learned), and the fragments
alphabet_text = st.lists(st.sampled_from(TRAIN_CHARS) | st.sampled_from(FRAGMENTS),
                         max_size=30).map("".join)


def expected_rows(tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    """The encoding spelled out symbol by symbol (reference for the batch encoder)."""
    rows = np.zeros((len(texts), tokenizer.max_length + 2), dtype=np.int32)
    for i, text in enumerate(texts):
        ids = [tokenizer.word_to_idx.get(s, UNK_ID) for s in tokenizer.tokenize(text)]
        row = [START_ID] + ids[: tokenizer.max_length] + [END_ID]
        rows[i, : len(row)] = row
    return rows


# ----- properties ------------------------------------------------------------------------------
@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=CONFIG_IDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=alphabet_text)
def test_decode_encode_gives_normalized_text_over_the_training_alphabet(index, text):
    tokenizer = fitted(index)
    normalized = tokenizer.normalize(text)
    assert tokenizer.decode(tokenizer.encode([text])) == [normalized]
    assert tokenizer.join(tokenizer.tokenize(text)) == normalized
    assert tokenizer.normalize(normalized) == normalized
    assert normalized == CharTokenizer(**{k: v for k, v in tokenizer.options().items()
                                          if k != "vocab_size"}).normalize(text)
    symbols = tokenizer.tokenize(text)
    assert symbols.count(UNK) == normalized.count(UNK)  # only the literals: every char is known
    assert np.count_nonzero(tokenizer.encode([text]) == UNK_ID) == normalized.count(UNK)


FUZZ_FRAGMENTS = ["a", "B", "dog", " ", "  ", "\t", ",", ".", "'", "<", ">", UNK, "<UN", "K>",
                  "Ünï", "ß", "x-y", "▁", "\u200b", "\ufeff", "<unk>", "<s>"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.lists(st.sampled_from(FUZZ_FRAGMENTS) | st.text(max_size=3), max_size=20)
       .map("".join), options=st.sampled_from(CONFIGS[:3]))
def test_decode_encode_of_the_training_text_itself(text, options):
    assume(not any(c in text for c in "\x00\uffff\U0010fffd"))  # never learned: always <UNK>
    tokenizer = BPETokenizer(max_length=200, vocab_size=500, **options)
    try:
        tokenizer.fit([text])
    except ValueError as error:  # no character to learn
        assert "nothing to learn" in str(error) and not tokenizer.normalize(text).replace(
            UNK, "").strip()
        return
    assert tokenizer.decode(tokenizer.encode([text])) == [tokenizer.normalize(text)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), min_size=1,
                      max_size=6),
       vocab_size=st.integers(2, 40), min_count=st.integers(1, 3),
       max_vocab=st.none() | st.integers(6, 30))
def test_vocabulary_respects_vocab_size_and_max_vocab(texts, vocab_size, min_count, max_vocab):
    tokenizer = BPETokenizer(vocab_size=vocab_size, min_count=min_count, max_vocab=max_vocab)
    try:
        tokenizer.fit(texts)
    except ValueError as error:
        assert "nothing to learn" in str(error)
        return
    assert tokenizer.idx_to_word[:4] == list(SPECIAL_TOKENS)
    assert tokenizer.vocab_size <= 4 + vocab_size
    if max_vocab is not None:
        assert tokenizer.vocab_size <= max_vocab
    assert len(set(tokenizer.idx_to_word)) == tokenizer.vocab_size
    assert not set(tokenizer.idx_to_word[4:]) & set(SPECIAL_TOKENS)


@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=CONFIG_IDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), max_length=st.integers(1, 12))
def test_encoded_rows_are_well_formed(index, data, max_length):
    base = fitted(index)
    tokenizer = Tokenizer.from_dict({**base.to_dict(),
                                     "options": {**base.options(), "max_length": max_length}})
    texts = data.draw(st.lists(alphabet_text | st.text(max_size=6), max_size=8))
    encoded = tokenizer.encode(texts)
    assert encoded.dtype == np.int32 and encoded.shape == (len(texts), max_length + 2)
    assert np.array_equal(encoded, expected_rows(tokenizer, texts))  # batch path == tokenize
    assert ((encoded >= 0) & (encoded < tokenizer.vocab_size)).all()
    for row in encoded:
        end = np.flatnonzero(row == END_ID)
        assert len(end) == 1 and (row[end[0] + 1:] == NULL_ID).all()
        assert not np.isin(row[1:end[0]], [NULL_ID, START_ID, END_ID]).any()
    lengths = [len(tokenizer.tokenize(t)) for t in texts]
    assert tokenizer.last_truncated_fraction == pytest.approx(
        np.mean([n > max_length for n in lengths]) if texts else 0.0)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_known_symbols_round_trip(data):
    tokenizer = fitted(0)
    word_starts = [s for s in tokenizer.idx_to_word[4:] if s.startswith("▁") and len(s) > 1]
    inner = [s for s in tokenizer.idx_to_word[4:] if not s.startswith("▁")]
    words = data.draw(st.lists(st.tuples(st.sampled_from(word_starts),
                                         st.lists(st.sampled_from(inner), max_size=3)),
                               max_size=8))
    symbols = [s for start, rest in words for s in [start, *rest]]
    text = tokenizer.join(symbols)
    assert tokenizer.decode(tokenizer.encode([text])) == [text] == [tokenizer.normalize(text)]
    assert UNK_ID not in tokenizer.encode([text])


# ----- behaviour -------------------------------------------------------------------------------
def test_pieces_and_word_start_marks():
    tokenizer = fitted(0)
    assert tokenizer.tokenize("a dog") == ["▁a", "▁dog"]
    assert tokenizer.join(["▁dog", "s"]) == "dogs"
    assert tokenizer.decode(tokenizer.encode([" A  Dog\n\tRuns. "])) == ["a dog runs"]


def test_unk_literal_is_one_symbol_with_exact_spacing():
    tokenizer = fitted(0)
    cases = [(f"A {UNK} on the {UNK}, near {UNK}s", f"a {UNK} on the {UNK} near {UNK}s"),
             (f"{UNK} dog", f"{UNK} dog"), (f"dog{UNK}", f"dog{UNK}"), (f"a{UNK}b", f"a{UNK}b"),
             (f"  {UNK}  ", UNK), (f"{UNK}{UNK}", UNK + UNK)]
    for text, expected in cases:
        symbols = tokenizer.tokenize(text)
        assert symbols.count(UNK) == text.count(UNK)
        assert tokenizer.decode(tokenizer.encode([text])) == [expected]
    assert tokenizer.tokenize(f"a {UNK} dog") == ["▁a", "▁", UNK, "▁dog"]
    assert tokenizer.encode([f"a {UNK}"])[0, 3] == UNK_ID
    assert UNK not in tokenizer.idx_to_word[4:]
    lower = BPETokenizer(punctuation="keep").fit(["<unk> is not the literal"])
    assert UNK_ID not in lower.encode(["<unk>"])  # only the exact literal is <UNK>


def test_unseen_characters_become_unk():
    tokenizer = BPETokenizer().fit(["a dog", "a cat"])
    encoded = tokenizer.encode(["a zebra"])[0]
    assert np.count_nonzero(encoded == UNK_ID) >= 1
    assert tokenizer.decode(tokenizer.encode(["a ü dog"])) == [f"a {UNK} dog"]
    assert tokenizer.decode(tokenizer.encode(["a üü dog"])) == [f"a {UNK} dog"]  # one per run
    assert tokenizer.decode(tokenizer.encode(["dogü"])) == [f"dog{UNK}"]
    for never in ("\x00", "\uffff", "\U0010fffd"):  # kept from sentencepiece: never learned
        trained = BPETokenizer().fit([f"a{never}b a"])
        assert trained.decode(trained.encode([f"a{never}"])) == [f"a{UNK}"]


def test_min_count_makes_rare_characters_unk():
    tokenizer = BPETokenizer(min_count=2).fit(["aab", "ab", "c"])
    assert "c" not in tokenizer.idx_to_word and "b" in tokenizer.idx_to_word
    assert tokenizer.decode(tokenizer.encode(["abc"])) == [f"ab{UNK}"]
    capped = BPETokenizer(vocab_size=3).fit(["aaa bb c"])  # ▁ and the two commonest characters
    assert set(capped.idx_to_word[4:]) <= {"▁", "a", "b", "▁a", "▁b", "aa", "▁aa", "▁bb", "bb"}
    assert capped.decode(capped.encode(["c"])) == [UNK]


def test_fitting_is_deterministic():
    first = BPETokenizer(max_length=400, vocab_size=VOCAB_SIZE).fit(CORPUS)
    second = BPETokenizer(max_length=400, vocab_size=VOCAB_SIZE).fit(list(CORPUS))
    assert first.idx_to_word == second.idx_to_word
    assert first.to_dict() == second.to_dict()
    assert first.to_dict() == fitted(0).to_dict()


def test_to_dict_from_dict_round_trip_through_json_without_refitting(monkeypatch):
    import sentencepiece

    tokenizer = BPETokenizer(vocab_size=50, max_length=9, punctuation="keep").fit(CORPUS)
    stored = json.loads(json.dumps(tokenizer.to_dict()))
    assert set(stored["state"]) == {"model"} and isinstance(stored["state"]["model"], str)

    def no_fit(*args, **kwargs):
        raise AssertionError("from_dict must not fit the tokenizer again")

    monkeypatch.setattr(BPETokenizer, "fit", no_fit)
    monkeypatch.setattr(sentencepiece.SentencePieceTrainer, "train", no_fit)
    texts = CORPUS + ["zebra? ü", f"x{UNK}y", ""]
    for loader in (Tokenizer, BPETokenizer):
        restored = loader.from_dict(stored)
        assert type(restored) is BPETokenizer and restored.name == "bpe"
        assert restored.options() == tokenizer.options()
        assert restored.idx_to_word == tokenizer.idx_to_word
        assert np.array_equal(restored.encode(texts), tokenizer.encode(texts))
        assert restored.decode(restored.encode(texts)) == tokenizer.decode(tokenizer.encode(texts))
        assert restored.to_dict() == stored


def test_from_dict_and_load_state_dict_reject_bad_state():
    stored = fitted(0).to_dict()
    with pytest.raises(ValueError, match="exactly the key 'model'"):
        Tokenizer.from_dict({**stored, "state": {}})
    with pytest.raises(ValueError, match="not base64"):
        Tokenizer.from_dict({**stored, "state": {"model": "not base64!"}})
    with pytest.raises(ValueError, match="no valid sentencepiece model"):
        Tokenizer.from_dict({**stored, "state": {"model": "Z2FyYmFnZQ=="}})
    with pytest.raises(ValueError, match="empty sentencepiece model"):
        Tokenizer.from_dict({**stored, "state": {"model": ""}})
    with pytest.raises(ValueError, match="does not match its sentencepiece model"):
        Tokenizer.from_dict({**stored, "idx_to_word": stored["idx_to_word"][:-1]})
    other = BPETokenizer(vocab_size=20).fit(["zebra crossing"]).to_dict()
    with pytest.raises(ValueError, match="does not match"):
        Tokenizer.from_dict({**stored, "state": other["state"]})
    with pytest.raises(ValueError, match="comes with its sentencepiece model"):
        BPETokenizer()._set_vocabulary(list(SPECIAL_TOKENS) + ["▁a"])


def test_unfitted_tokenizer_is_a_clear_error():
    tokenizer = BPETokenizer()
    for use in (lambda t: t.encode(["a"]), lambda t: t.decode([[1, 2]]), lambda t: t.tokenize("a"),
                lambda t: t.vocab_size, lambda t: t.to_dict()):
        with pytest.raises(NotFittedError, match=r"call fit\(train_texts\) first"):
            use(tokenizer)
    assert tokenizer.normalize(" A, Dog ") == "a dog"
    with pytest.raises(TypeError, match="list of caption strings"):
        tokenizer.fit("a dog")
    with pytest.raises(ValueError, match="nothing to learn"):
        tokenizer.fit(["", " ,. "])
    only_literals = BPETokenizer().fit([UNK, f"{UNK} {UNK}"])  # just the word-start mark
    assert only_literals.idx_to_word == list(SPECIAL_TOKENS) + ["▁"]
    assert only_literals.decode(only_literals.encode([f"{UNK} {UNK}"])) == [f"{UNK} {UNK}"]


@pytest.mark.parametrize("options,message", [
    ({"vocab_size": 1}, "'vocab_size' must be an integer >= 2"),
    ({"vocab_size": "big"}, "'vocab_size' must be an integer"),
    ({"vocab_size": True}, "'vocab_size' must be an integer"),
    ({"max_length": 0}, "'max_length' must be an integer >= 1"),
    ({"lowercase": "yes"}, "'lowercase' must be true or false"),
    ({"punctuation": "split"}, "'punctuation' must be one of"),
    ({"min_count": 0}, "'min_count' must be an integer >= 1"),
    ({"max_vocab": 3}, "'max_vocab' must be an integer >= 4"),
    ({"max_vocab": 5}, "'max_vocab' must leave room"),
])
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        BPETokenizer(**options)


def test_registry_config_and_options():
    assert TOKENIZERS.get("bpe") is BPETokenizer and BPETokenizer.name == "bpe"
    assert set(plugin_options("tokenizer", BPETokenizer)) == {
        "vocab_size", "max_length", "lowercase", "punctuation", "min_count", "max_vocab"}
    tokenizer = make_tokenizer("bpe", vocab_size=30, max_length=5)
    assert tokenizer.options() == {"max_length": 5, "min_count": 1, "max_vocab": None,
                                   "vocab_size": 30, "lowercase": True, "punctuation": "strip"}
    assert BPETokenizer().max_length == 40
    with pytest.raises(ValueError, match="has no option.*split_digits"):
        make_tokenizer("bpe", split_digits=True)
    with pytest.raises(TypeError):
        BPETokenizer(100)  # keyword options only


def test_config_composes_validates_and_builds_the_tokenizer():
    from hydra import compose, initialize_config_dir

    from capx.run.config import validate

    with initialize_config_dir(config_dir=str(Path(__file__).parents[2] / "conf"),
                               version_base="1.3"):
        config = validate(compose("config", overrides=["tokenizer=bpe", "experiment=smoke"]))
    options = dict(config.tokenizer)
    assert options.pop("name") == "bpe" and options["vocab_size"] == 1000
    tokenizer = make_tokenizer("bpe", **options)
    assert tokenizer.options() == {**tokenizer.options(), **options}


# ----- real captions ---------------------------------------------------------------------------
def test_bpe_sits_between_char_and_word_on_real_val2017_captions(val2017_captions):
    from examples.vocab_stats import load_annotations, split_by_image

    train, held_out = split_by_image(load_annotations(val2017_captions))
    stats = {"char": vocab_stats(CharTokenizer(punctuation="strip").fit(train), held_out),
             "word": vocab_stats(WordTokenizer().fit(train), held_out)}
    for size in (250, 1000, 4000):
        tokenizer = BPETokenizer(vocab_size=size).fit(train)
        stats[size] = vocab_stats(tokenizer, held_out)
        assert size < tokenizer.vocab_size <= 4 + size  # COCO has plenty to merge
        assert stats[size]["coverage"] > 0.999
        learned = set("".join(tokenizer.join([s]) for s in tokenizer.idx_to_word[4:]))
        short = [t for t in held_out[:300] if len(tokenizer.tokenize(t)) <= tokenizer.max_length
                 and set(tokenizer.normalize(t).replace(UNK, "")) <= learned | {" "}]
        assert len(short) > 290
        assert tokenizer.decode(tokenizer.encode(short)) == [tokenizer.normalize(t) for t in short]
    mean = {name: s["length_tokens"]["mean"] for name, s in stats.items()}
    print({name: round(m, 2) for name, m in mean.items()})
    assert mean["char"] > mean[250] > mean[1000] > mean[4000] > mean["word"]
    assert stats["char"]["vocab_size"] < stats[250]["vocab_size"] < stats[1000]["vocab_size"] \
        < stats[4000]["vocab_size"] < stats["word"]["vocab_size"]
