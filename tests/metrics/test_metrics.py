"""Metrics on hand-made cases with known values: likelihood, BLEU/CIDEr, failure modes, cost."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from capx.captioner import CaptioningRNN
from capx.datasets.base import CaptionSplit
from capx.metrics import (
    Evaluation, bits_per_char, canonical_text, caption_likelihood, caption_nll, caption_scores,
    char_count, evaluate, invented_word_rate, invented_words, mean_length_tokens, no_end_rate,
    parameter_counts, peak_memory, sequence_nll, timed, unk_rate, vocabulary,
)
from capx.tokenizers.char import CharTokenizer
from capx.tokenizers.word import WordTokenizer

TRAIN = ["A dog runs on the grass.", "a cat sits on a mat", "two dogs play with a ball",
         "a man rides a horse", "the cat sleeps"]


def uniform_model(tokenizer, input_dim: int = 4) -> CaptioningRNN:
    """Every step's scores are equal (W_vocab = 0, b_vocab = 0): uniform over V symbols."""
    model = CaptioningRNN(tokenizer.word_to_idx, input_dim=input_dim, wordvec_dim=3,
                          hidden_dim=5, cell_type="lstm", dtype=np.float64, seed=0)
    model.params["W_vocab"] = np.zeros_like(model.params["W_vocab"])
    model.params["b_vocab"] = np.zeros_like(model.params["b_vocab"])
    return model


class TestText:
    @pytest.mark.parametrize("text, expected", [
        ("A Dog,  runs!\n", "a dog runs"),
        ("a <UNK> on a mat.", "a <UNK> on a mat"),
        ("  ", ""),
    ])
    def test_canonical_text(self, text, expected):
        assert canonical_text(text) == expected

    def test_builtin_tokenizers_keep_canonical_text(self):
        texts = [canonical_text(t) for t in TRAIN + ["a <UNK> dog"]]
        for tok in (CharTokenizer().fit(TRAIN), WordTokenizer().fit(TRAIN)):
            assert [tok.normalize(t) for t in texts] == texts

    def test_char_count_counts_unk_once(self):
        assert char_count("a <UNK> dog") == len("a X dog")

    def test_vocabulary(self):
        assert vocabulary(["A dog.", "the dog runs"]) == {"a", "dog", "the", "runs"}


class TestLikelihood:
    def test_uniform_char_model_bits_per_char(self):
        """Identity: NLL_i = (n_i + 1) ln V, bits/char = log2(V) * (sum n_i + N) / sum n_i."""
        tok = CharTokenizer(max_length=10).fit(TRAIN)  # shorter than the captions: not cut
        model = uniform_model(tok)
        texts = ["a dog runs", "the cat sits on a mat with a ball"]
        feats = np.random.RandomState(0).randn(2, 4)
        V, n = tok.vocab_size, np.array([len(t) for t in texts])
        np.testing.assert_allclose(caption_nll(model, tok, feats, texts), (n + 1) * np.log(V))
        one = bits_per_char(model, tok, feats[:1], texts[:1])
        assert one == pytest.approx(math.log2(V) * (n[0] + 1) / n[0])
        both = caption_likelihood(model, tok, feats, texts).summary()
        assert both["bits_per_char"] == pytest.approx(math.log2(V) * (n.sum() + 2) / n.sum())
        assert both["char_token_perplexity"] == pytest.approx(V)

    def test_uniform_word_model_counts_the_same_characters(self):
        tok = WordTokenizer().fit(TRAIN)
        model = uniform_model(tok)
        texts = ["A dog runs!", "the cat, sleeps on a zebra"]  # "zebra" is <UNK>
        summary = caption_likelihood(model, tok, np.zeros((2, 4)), texts).summary()
        words = np.array([3, 6])
        chars = sum(len(canonical_text(t)) for t in texts)
        V = tok.vocab_size
        assert summary["nll_per_caption"] == pytest.approx(np.mean(words + 1) * np.log(V))
        assert summary["bits_per_char"] == pytest.approx(math.log2(V) * (words + 1).sum() / chars)
        assert summary["word_token_perplexity"] == pytest.approx(V)
        assert summary["unk_rate_reference"] == pytest.approx(1 / 9)

    def test_sum_matches_model_loss(self):
        tok = WordTokenizer().fit(TRAIN)
        model = CaptioningRNN(tok.word_to_idx, input_dim=4, wordvec_dim=3, hidden_dim=5,
                              cell_type="lstm", dtype=np.float64, seed=1)
        captions = tok.encode(TRAIN)
        feats = np.random.RandomState(2).randn(len(TRAIN), 4)
        loss, _ = model.loss(feats, captions)
        nll = sequence_nll(model, feats, captions, batch_size=2)
        assert nll.sum() / len(TRAIN) == pytest.approx(loss, rel=1e-10)

    def test_feature_rows_must_match(self):
        tok = CharTokenizer().fit(TRAIN)
        with pytest.raises(ValueError, match="feature row per caption"):
            caption_nll(uniform_model(tok), tok, np.zeros((1, 4)), TRAIN[:2])


class TestCaptionScores:
    HYPS = ["A dog runs on grass.", "a cat on a mat", "two dogs play", "a man on a horse"]
    REFS = [["a dog runs on the grass", "a brown dog running"],
            ["a cat sits on a mat", "the cat on the mat"],
            ["two dogs play with a ball"],
            ["a man rides a horse", "a person riding a horse", "man on horse"]]

    def test_equals_coco_scorers(self):
        metrics, _ = caption_scores(self.HYPS, self.REFS, java_metrics=False)
        gts = {i: [canonical_text(r) for r in refs] for i, refs in enumerate(self.REFS)}
        res = {i: [canonical_text(h)] for i, h in enumerate(self.HYPS)}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        assert [metrics[f"bleu{n}"] for n in range(1, 5)] == pytest.approx(bleu)
        assert metrics["cider"] == pytest.approx(Cider().compute_score(gts, res)[0])
        assert 0 < metrics["bleu4"] < metrics["bleu1"] < 1

    def test_perfect_match(self):
        refs = [["a dog runs on the grass"], ["a cat sits on a mat"], ["two dogs play ball"]]
        hyps = ["A dog runs on the grass!", "a cat sits on a mat", "Two dogs play ball."]
        metrics, _ = caption_scores(hyps, refs, java_metrics=False)
        for n in range(1, 5):
            assert metrics[f"bleu{n}"] == pytest.approx(1.0, abs=1e-6)
        assert metrics["cider"] == pytest.approx(10.0)

    def test_java_scorers_skipped_with_a_note(self, monkeypatch):
        _, notes = caption_scores(self.HYPS, self.REFS, java_metrics=False)
        assert any("meteor" in n and "off" in n for n in notes)
        monkeypatch.setattr(shutil, "which", lambda name: None)
        metrics, notes = caption_scores(self.HYPS, self.REFS, java_metrics="auto")
        assert "meteor" not in metrics and any("no 'java'" in n for n in notes)

    def test_images_without_references_left_out(self):
        metrics, notes = caption_scores(["a cat", "a dog"], [["a cat"], []], java_metrics=False)
        assert metrics["bleu1"] == pytest.approx(1.0, abs=1e-6) and "1 image" in notes[0]

    def test_length_mismatch(self):
        with pytest.raises(ValueError, match="one caption per image"):
            caption_scores(["a"], [["a"], ["b"]], java_metrics=False)

    @pytest.mark.slow
    @pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs java on PATH")
    def test_meteor_with_java(self):
        metrics, _ = caption_scores(self.HYPS[:1], [[self.HYPS[0].lower()[:-1]]])
        assert metrics["meteor"] == pytest.approx(1.0, abs=0.01)


class TestFailureModes:
    def test_invented_word_rate(self):
        known = vocabulary(TRAIN)
        captions = ["a dgo runs", "the cat slepes on a mat", ""]
        assert invented_word_rate(captions, known) == pytest.approx(2 / 9)
        assert invented_words(captions + ["dgo"], known) == ["dgo", "slepes"]
        assert invented_word_rate([""], known) == 0.0

    def test_no_end_and_unk_rates(self):
        ids = np.array([[4, 5, 2, 0, 0],     # 2 symbols, <END>
                        [3, 4, 3, 4, 3],     # no <END>: 5 symbols, 3 <UNK>
                        [2, 0, 0, 0, 0],     # empty caption
                        [3, 2, 0, 0, 0]])    # 1 <UNK>, <END>
        assert no_end_rate(ids) == pytest.approx(1 / 4)
        assert unk_rate(ids) == pytest.approx(4 / 8)
        assert mean_length_tokens(ids) == pytest.approx((3 + 5 + 1 + 2) / 4)


class TestCost:
    def test_parameter_counts(self):
        tok = CharTokenizer().fit(TRAIN)
        model = uniform_model(tok)
        counts = parameter_counts(model)
        assert counts["params/total"] == sum(v.size for v in model.params.values())
        assert counts["params/group/embedding"] == tok.vocab_size * 3

    def test_peak_memory_sees_numpy_arrays(self):
        result, peak = peak_memory(lambda: float(np.ones(2**20).sum()))  # 8 MiB of float64
        assert result == 2**20 and 8 * 2**20 <= peak < 64 * 2**20

    def test_timed(self):
        result, seconds = timed(sum, [1, 2, 3])
        assert result == 6 and seconds >= 0


class TestEvaluate:
    @pytest.mark.parametrize("tokenizer", [CharTokenizer(max_length=30), WordTokenizer()])
    def test_flat_float_metrics_and_captions(self, tokenizer):
        tok = tokenizer.fit(TRAIN)
        model = CaptioningRNN(tok.word_to_idx, input_dim=4, wordvec_dim=3, hidden_dim=6,
                              cell_type="lstm", dtype=np.float64, seed=3)
        feats = np.random.RandomState(4).randn(3, 4)
        split = CaptionSplit(feats, TRAIN[:4] + ["a dog"], np.array([0, 1, 2, 2, 0]))
        result = evaluate(model, tok, split, TRAIN, decoder="beam", beam_width=2,
                          java_metrics=False, measure_memory=True)
        assert isinstance(result, Evaluation) and len(result.captions) == 3
        assert all(isinstance(v, float) for v in result.values())
        for key in ("bleu1", "bleu4", "cider", "nll_per_caption", "bits_per_char",
                    f"{tok.name}_token_perplexity", "invented_word_rate", "no_end_rate",
                    "unk_rate_output", "unk_rate_reference", "captions_per_second",
                    "output_tokens_per_caption", "decode_peak_memory_mb"):
            assert key in result and np.isfinite(result[key]), key
        assert result.ids.shape == (3, tok.max_length + 1)
        assert result.captions == tok.decode(result.ids)
        expected = bits_per_char(model, tok, feats[split.image_idxs], split.captions)
        assert result["bits_per_char"] == pytest.approx(expected)
        assert result["no_end_rate"] == no_end_rate(result.ids)
        assert any("meteor" in n for n in result.notes)


def test_unk_outputs_are_not_invented_words():
    from capx.metrics.failure_modes import invented_word_counts, invented_word_rate, invented_words

    known = {"a", "dog"}
    captions = ["a <UNK> dog", "a dgo <UNK>"]
    assert invented_word_rate(captions, known) == 1 / 6
    invented, words = invented_word_counts(captions, known)
    assert invented.tolist() == [0, 1] and words.tolist() == [3, 3]
    assert invented_words(captions, known) == ["dgo"]
