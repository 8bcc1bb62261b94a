"""Open-vocabulary likelihood and bits/char by word frequency, on fake models with known
log-probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from capx.metrics import CharNgramSpeller, caption_likelihood, position_nll, sequence_nll
from capx.metrics.frequency_bins import (bits_per_char_by_frequency, frequency_bins,
                                         surface_words)
from capx.metrics.surfaces import symbol_surfaces
from capx.metrics.text import word_counts
from capx.tokenizers.base import END_ID, START_ID, UNK_ID
from capx.tokenizers.char import CharTokenizer
from capx.tokenizers.word import WordTokenizer

TRAIN = ["a dog runs on the grass", "a cat sits on a mat", "two dogs play with a ball",
         "a man rides a horse", "the cat sleeps", "a dog on a <UNK>"]


class BigramModel:
    """A fake captioner whose next-token distribution depends on the previous token only:
    ``log_probs[prev]`` (rows are normalised, so they are also the log-softmax)."""

    def __init__(self, log_probs: np.ndarray):
        self.log_probs = log_probs

    @property
    def vocab_size(self) -> int:
        return len(self.log_probs)

    def initial_state(self, features):
        return (np.zeros(len(features)),)

    def step_scores(self, words, state, input_table=None):
        return self.log_probs[words], state

    def input_table(self):
        return None


def uniform(vocab_size: int) -> BigramModel:
    return BigramModel(np.full((vocab_size, vocab_size), -math.log(vocab_size)))


def random_bigram(vocab_size: int, seed: int = 0) -> BigramModel:
    p = np.random.default_rng(seed).dirichlet(np.ones(vocab_size), size=vocab_size)
    return BigramModel(np.log(p))


@pytest.fixture(scope="module")
def speller():
    return CharNgramSpeller().fit(TRAIN)


class TestOpenLikelihood:
    def test_uniform_char_model_known_bits_per_char(self, speller):
        tok = CharTokenizer(max_length=10).fit(TRAIN)
        V = tok.vocab_size
        texts = ["a dog runs", "the cat sits on a mat"]
        n = np.array([len(t) for t in texts])
        result = caption_likelihood(uniform(V), tok, np.zeros((2, 1)), texts, speller=speller)
        summary = result.summary()
        known = (n + 1).sum() * math.log2(V) / n.sum()
        assert summary["bits_per_char"] == pytest.approx(known)  # nothing unknown: open = closed
        assert summary["bits_per_char_closed"] == pytest.approx(known)
        assert result.oov_symbols == 0 and summary["oov_rate_reference"] == 0.0

    def test_uniform_char_model_pays_for_an_unseen_character(self, speller):
        tok = CharTokenizer().fit(TRAIN)
        V = tok.vocab_size
        texts = ["a zebra", "a <UNK> dog"]  # z is unseen; the literal <UNK> is one known char
        result = caption_likelihood(uniform(V), tok, np.zeros((2, 1)), texts, speller=speller)
        chars = np.array([7, 7])
        np.testing.assert_allclose(result.nll_closed, (chars + 1) * math.log(V))
        np.testing.assert_allclose(result.nll, result.nll_closed + [speller.char_nll("z"), 0.0])
        assert result.oov_symbols == 1 and result.unk_tokens == 2
        summary = result.summary()
        assert summary["bits_per_char"] == pytest.approx(
            ((chars + 1).sum() * math.log(V) + speller.char_nll("z")) / math.log(2) / 14)
        assert summary["oov_rate_reference"] == pytest.approx(1 / 14)
        assert summary["unk_rate_reference"] == pytest.approx(2 / 14)

    def test_word_model_open_is_closed_plus_spelling(self, speller):
        tok = WordTokenizer().fit(TRAIN)
        model = random_bigram(tok.vocab_size)
        lp, w = model.log_probs, tok.word_to_idx
        text = "A dog zebra, on a <UNK>!"  # zebra is unknown; the literal <UNK> is known
        closed = -(lp[START_ID, w["a"]] + lp[w["a"], w["dog"]] + lp[w["dog"], UNK_ID]
                   + lp[UNK_ID, w["on"]] + lp[w["on"], w["a"]] + lp[w["a"], UNK_ID]
                   + lp[UNK_ID, END_ID])
        result = caption_likelihood(model, tok, np.zeros((1, 1)), [text], speller=speller)
        assert result.nll_closed[0] == pytest.approx(closed)
        assert result.nll[0] == pytest.approx(closed + speller.nll("zebra"))
        assert result.oov_symbols == 1 and result.unk_tokens == 2
        summary = result.summary()
        chars = len("a dog zebra on a X")
        assert summary["bits_per_char"] == pytest.approx(
            (closed + speller.nll("zebra")) / math.log(2) / chars)
        assert summary["nll_per_caption_closed"] == pytest.approx(closed)
        assert summary["word_token_perplexity"] == pytest.approx(math.exp(closed / 7))

    def test_without_speller_open_equals_closed(self):
        tok = WordTokenizer().fit(TRAIN)
        result = caption_likelihood(random_bigram(tok.vocab_size), tok, np.zeros((1, 1)),
                                    ["a zebra"])
        np.testing.assert_array_equal(result.nll, result.nll_closed)
        summary = result.summary()
        assert summary["bits_per_char"] == summary["bits_per_char_closed"]
        assert result.oov_symbols == 1  # counted even without a speller

    def test_symbol_nll_adds_up_to_each_caption(self, speller):
        tok = WordTokenizer().fit(TRAIN)
        texts = ["a zebra runs", "two cats", "a dog on a <UNK> and a yak"]
        result = caption_likelihood(random_bigram(tok.vocab_size, 3), tok, np.zeros((3, 1)),
                                    texts, speller=speller)
        ends = np.cumsum(result.tokens)
        per_caption = np.add.reduceat(result.symbol_nll, ends - result.tokens)
        np.testing.assert_allclose(per_caption, result.nll)

    def test_position_nll_sums_to_sequence_nll(self):
        tok = CharTokenizer().fit(TRAIN)
        ids = tok.encode(TRAIN)
        model = random_bigram(tok.vocab_size, 1)
        positions = position_nll(model, np.zeros((len(ids), 1)), ids, batch_size=2)
        assert positions.shape == (len(ids), ids.shape[1] - 1)
        assert np.all(positions[ids[:, 1:] == 0] == 0)
        np.testing.assert_allclose(positions.sum(axis=1),
                                   sequence_nll(model, np.zeros((len(ids), 1)), ids))


class TestFrequencyBins:
    def test_surface_words(self):
        assert surface_words(list("a dog")) == [0, 0, 1, 1, 1]
        assert surface_words(["a", " dog"]) == [0, 1]
        assert surface_words(["", "a", " ", "<UNK>", " do", "g"]) == [0, 0, 0, 1, 2, 2]

    def test_word_model_by_hand(self, speller):
        tok = WordTokenizer().fit(TRAIN)
        model = random_bigram(tok.vocab_size, 5)
        lp, w = model.log_probs, tok.word_to_idx
        counts = {"a": 10, "dog": 2}  # a: frequent, dog: rare (<= 4), zebra: unseen
        bins = bits_per_char_by_frequency(model, tok, np.zeros((1, 1)), ["a dog zebra"],
                                          counts, speller=speller)
        ln2 = math.log(2)
        assert bins["bpc_frequent"] == pytest.approx(-lp[START_ID, w["a"]] / ln2 / 2)
        assert bins["bpc_rare"] == pytest.approx(-lp[w["a"], w["dog"]] / ln2 / 4)
        assert bins["bpc_unseen"] == pytest.approx(
            (-lp[w["dog"], UNK_ID] + speller.nll("zebra")) / ln2 / 5)
        assert bins["end_bits_per_caption"] == pytest.approx(-lp[UNK_ID, END_ID] / ln2)
        assert (bins["chars_frequent"], bins["chars_rare"], bins["chars_unseen"]) == (2, 4, 5)

    def test_uniform_char_model_and_the_decomposition(self, speller):
        tok = CharTokenizer().fit(TRAIN)
        V = tok.vocab_size
        texts = ["a dog", "two cats on a <UNK>", "a quokka sleeps"]
        counts = word_counts(TRAIN)
        likelihood = caption_likelihood(uniform(V), tok, np.zeros((3, 1)), texts,
                                        speller=speller)
        bins = frequency_bins(likelihood, tok, counts)
        # a word owns the space after it: frequent "a " x3, rare "dog" "two " "on " "<UNK>"
        # "sleeps", unseen "cats " "quokka " (q and k are unseen characters too)
        assert (bins["chars_frequent"], bins["chars_rare"], bins["chars_unseen"]) == (6, 17, 12)
        assert bins["bpc_frequent"] == pytest.approx(math.log2(V))
        assert bins["bpc_rare"] == pytest.approx(math.log2(V))
        spelling = (speller.char_nll("q") + 2 * speller.char_nll("k")) / math.log(2)
        assert bins["bpc_unseen"] == pytest.approx(math.log2(V) + spelling / 12)
        assert bins["end_bits_per_caption"] == pytest.approx(math.log2(V))
        total = sum(bins[f"bpc_{b}"] * bins[f"chars_{b}"] for b in ("unseen", "rare", "frequent"))
        total += bins["end_bits_per_caption"] * len(texts)
        summary = likelihood.summary()
        assert total / likelihood.chars.sum() == pytest.approx(summary["bits_per_char"])


@pytest.fixture(scope="module")
def bpe():
    from capx.tokenizers import BPETokenizer

    return BPETokenizer(vocab_size=60).fit(TRAIN * 3)


class TestSubwordSymbols:
    """bpe maps a run of unseen characters to <UNK> inside tokenize(): its text is recovered."""

    def test_surfaces_spell_the_text(self, bpe):
        word, char = WordTokenizer().fit(TRAIN), CharTokenizer().fit(TRAIN)
        assert symbol_surfaces(word, "a zebra <UNK>") == ["a", " zebra", " <UNK>"]
        assert symbol_surfaces(char, "a z<UNK>") == ["a", " ", "z", "<UNK>"]
        for text in ("a dog zebra", "the quokka", "a z<UNK>", "zz <UNK>", "z", "a <UNK> dog"):
            surfaces = symbol_surfaces(bpe, text)
            assert "".join(surfaces) == text and len(surfaces) == len(bpe.tokenize(text))
        assert symbol_surfaces(bpe, "a z<UNK>")[-2:] == ["z", "<UNK>"]

    def test_bpe_pays_for_unseen_runs_only(self, bpe, speller):
        texts = ["the quokka", "a <UNK> dog", "a z<UNK>"]
        result = caption_likelihood(uniform(bpe.vocab_size), bpe, np.zeros((3, 1)), texts,
                                    speller=speller)
        runs = [[s for s in symbol_surfaces(bpe, t) if s.strip() and not s.strip() in
                 bpe.word_to_idx and s != "<UNK>"] for t in texts]
        assert runs == [["q", "kk"], [], ["z"]]
        np.testing.assert_allclose(result.nll - result.nll_closed,
                                   [speller.nll("q") + speller.nll("kk"), 0, speller.nll("z")])
        assert result.oov_symbols == 3

    def test_bpe_bins_add_up(self, bpe, speller):
        texts = ["the quokka sleeps", "two cats on a <UNK>"]
        likelihood = caption_likelihood(random_bigram(bpe.vocab_size, 2), bpe, np.zeros((2, 1)),
                                        texts, speller=speller)
        bins = frequency_bins(likelihood, bpe, word_counts(TRAIN))
        chars = {b: bins[f"chars_{b}"] for b in ("unseen", "rare", "frequent")}
        # "the" is rare in TRAIN (2), "a" frequent (8); "sleeps" and "<UNK>" end their captions
        assert chars == {"unseen": len("quokka cats "), "rare": len("the sleeps") + len("two on X"),
                         "frequent": len("a ")}
        bits = sum(bins[f"bpc_{b}"] * c for b, c in chars.items()) + 2 * bins[
            "end_bits_per_caption"]
        assert bits / likelihood.chars.sum() == pytest.approx(
            likelihood.summary()["bits_per_char"])


class TestPerImage:
    @pytest.mark.parametrize("make_tokenizer", [lambda: CharTokenizer(max_length=30),
                                                lambda: WordTokenizer()])
    def test_aggregates_are_the_corpus_metrics(self, make_tokenizer, speller):
        from capx.captioner import CaptioningRNN
        from capx.datasets.base import CaptionSplit
        from capx.metrics import evaluate
        from capx.metrics.caption_scores import corpus_bleu

        tok = make_tokenizer().fit(TRAIN)
        model = CaptioningRNN(tok.word_to_idx, input_dim=4, wordvec_dim=3, hidden_dim=6,
                              cell_type="lstm", dtype=np.float64, seed=3)
        feats = np.random.RandomState(4).randn(4, 4)  # image 3 has no reference
        refs = ["a dog runs on the grass", "a zebra on a mat", "two cats play", "a <UNK> dog",
                "the quokka sleeps"]
        split = CaptionSplit(feats, refs, np.array([0, 1, 2, 2, 0]))
        result = evaluate(model, tok, split, TRAIN, java_metrics=False, speller=speller,
                          word_counts=word_counts(TRAIN))
        per = result.per_image
        assert {len(v) for v in per.values()} == {4}
        assert per["references"].tolist() == [2, 1, 2, 0]
        assert per["nll_open"].sum() / math.log(2) / per["chars"].sum() == pytest.approx(
            result["bits_per_char"])
        assert per["nll_closed"].sum() / math.log(2) / per["chars"].sum() == pytest.approx(
            result["bits_per_char_closed"])
        assert result["bits_per_char"] > result["bits_per_char_closed"]  # zebra, quokka
        assert np.isnan(per["cider"][3]) and np.isnan(per["bleu4"][3])
        assert np.nanmean(per["cider"]) == pytest.approx(result["cider"])
        totals = {k: np.nansum(v) for k, v in per.items()}
        for n in (1, 4):
            assert corpus_bleu(totals, n) == pytest.approx(result[f"bleu{n}"], rel=1e-9)
        assert per["no_end"].mean() == pytest.approx(result["no_end_rate"])
        assert per["invented_words"].sum() / max(per["words"].sum(), 1) == pytest.approx(
            result["invented_word_rate"])
        for key in ("bpc_unseen", "bpc_rare", "bpc_frequent", "chars_unseen"):
            assert key in result
        assert result["chars_unseen"] == len("zebra ") + len("cats ") + len("quokka ")
        for b in ("unseen", "rare", "frequent"):  # per image, the bins add up to the corpus's
            assert per[f"chars_{b}"].sum() == result[f"chars_{b}"]
            assert per[f"nll_{b}"].sum() / math.log(2) / per[f"chars_{b}"].sum() == (
                pytest.approx(result[f"bpc_{b}"], rel=1e-12))
        end = result["end_bits_per_caption"] * len(refs) * math.log(2)
        bins_nll = sum(per[f"nll_{b}"].sum() for b in ("unseen", "rare", "frequent"))
        assert bins_nll + end == pytest.approx(per["nll_open"].sum(), rel=1e-12)
        assert sum(per[f"chars_{b}"] for b in ("unseen", "rare", "frequent")).tolist() == (
            per["chars"].tolist())

    def test_invented_words_split_into_real_words_and_non_words(self, speller, monkeypatch):
        import sys

        from capx.datasets.base import CaptionSplit
        from capx.metrics import evaluate
        from capx.metrics.failure_modes import invented_word_kinds

        real, non = invented_word_kinds(["a zebra runs", "a qqq <UNK> zebra", "a dog"],
                                        {"a", "runs", "dog"}, {"zebra", "a"})
        assert real.tolist() == [1, 1, 0] and non.tolist() == [0, 1, 0]

        tok = CharTokenizer(max_length=30).fit(TRAIN)
        split = CaptionSplit(np.zeros((2, 1)), ["a dog", "a cat"], np.array([0, 1]))
        ids = tok.encode(["a boat on a dat", "a dog on a mat"])[:, 1:]  # what "decoding" gives
        monkeypatch.setattr(sys.modules["capx.metrics.evaluate"], "decode",
                            lambda *args, **kwargs: ids)
        result = evaluate(uniform(tok.vocab_size), tok, split, TRAIN, java_metrics=False,
                          speller=speller, real_words={"boat", "zebra"})
        assert result.captions == ["a boat on a dat", "a dog on a mat"]
        per = result.per_image
        assert per["invented_real_words"].tolist() == [1, 0]  # boat
        assert per["invented_non_words"].tolist() == [1, 0]  # dat
        assert result["invented_real_word_rate"] == pytest.approx(1 / 10)
        assert result["invented_non_word_rate"] == pytest.approx(1 / 10)
        assert result["invented_word_rate"] == pytest.approx(2 / 10)

    def test_caption_scores_per_image_match_pycocoevalcap(self):
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider

        from capx.metrics.caption_scores import caption_scores_per_image

        hyps = ["a dog runs on grass", "a cat on a mat", "two dogs play"]
        refs = [["a dog runs on the grass", "a brown dog running"],
                ["a cat sits on a mat", "the cat on the mat"], ["two dogs play with a ball"]]
        metrics, per, _ = caption_scores_per_image(hyps, refs, java_metrics=False)
        gts = {i: r for i, r in enumerate(refs)}
        res = {i: [h] for i, h in enumerate(hyps)}
        bleu, sentence = Bleu(4).compute_score(gts, res, verbose=0)
        cider, cider_per_image = Cider().compute_score(gts, res)
        np.testing.assert_allclose(per["bleu4"], sentence[3])
        np.testing.assert_allclose(per["cider"], cider_per_image)
        assert metrics["bleu4"] == pytest.approx(bleu[3]) and metrics["cider"] == cider
