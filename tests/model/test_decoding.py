"""Decoders: greedy, sampling and beam search on random and hand-set models."""

from __future__ import annotations

import numpy as np
import pytest

from capx.captioner import CaptioningRNN
from capx.decoding import beam, decode, default_max_length, greedy, sample
from capx.registry import DECODERS, UnknownNameError

TOKENS = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "b", "c", "d", "e"]
VOCAB = {w: i for i, w in enumerate(TOKENS)}
END = VOCAB["<END>"]


def random_model(cell_type: str = "lstm", seed: int = 0) -> CaptioningRNN:
    return CaptioningRNN(VOCAB, input_dim=6, wordvec_dim=5, hidden_dim=7, cell_type=cell_type,
                         dtype=np.float64, seed=seed)


def markov_model(transitions: dict[str, dict[str, float]], eps: float = 1e-4) -> CaptioningRNN:
    """A captioner whose next-token distribution depends only on the current token.

    Wh = 0 and one-hot inputs: h = tanh(3) * onehot(word), so the scores are row ``word`` of
    ``W_vocab`` scaled by tanh(3); W_vocab holds log-probabilities divided by tanh(3). Unlisted
    next tokens share ``eps``; each row is renormalised.
    """
    V = len(TOKENS)
    model = CaptioningRNN(VOCAB, input_dim=2, wordvec_dim=V, hidden_dim=V, cell_type="rnn",
                          dtype=np.float64, seed=0)
    for k in model.params:
        model.params[k] = np.zeros_like(model.params[k])
    model.params["W_embed"] = np.eye(V)
    model.params["Wx"] = 3.0 * np.eye(V)
    probs = np.full((V, V), eps)
    for src, row in transitions.items():
        for dst, p in row.items():
            probs[VOCAB[src], VOCAB[dst]] = p
    probs /= probs.sum(axis=1, keepdims=True)
    model.params["W_vocab"] = np.log(probs) / np.tanh(3.0)
    model.markov_probs = probs  # for the tests' expected values
    return model


def sequence_logp(model: CaptioningRNN, row: np.ndarray) -> float:
    """log p of a decoded row (through <END>) under a markov_model."""
    prev, total = VOCAB["<START>"], 0.0
    for tok in row:
        total += np.log(model.markov_probs[prev, tok])
        if tok == END:
            break
        prev = tok
    return total


FEATURES = np.random.RandomState(1).randn(5, 6)


class TestRegistry:
    def test_registered_names(self):
        assert {"greedy", "sample", "beam"} <= set(DECODERS.names())
        assert DECODERS.get("beam") is beam

    def test_unknown_decoder_lists_names(self):
        with pytest.raises(UnknownNameError, match="greedy"):
            decode(random_model(), FEATURES, 5, decoder="nucleus")

    def test_unknown_option_lists_accepted(self):
        with pytest.raises(ValueError, match="beam_width"):
            decode(random_model(), FEATURES, 5, decoder="beam", temperature=0.5)

    def test_default_max_length_leaves_room_for_end(self):
        class Tok:
            max_length = 16
        assert default_max_length(Tok()) == 17

    @pytest.mark.parametrize("bad", [0, -2, 2.5])
    def test_bad_max_length(self, bad):
        with pytest.raises(ValueError, match="max_length"):
            sample(random_model(), FEATURES, bad)


class TestGreedy:
    @pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
    def test_equals_model_sample(self, cell_type):
        model = random_model(cell_type, seed=3)
        np.testing.assert_array_equal(greedy(model, FEATURES, 9), model.sample(FEATURES, 9))

    def test_batches_equal_one_batch(self):
        model = random_model(seed=4)
        whole = decode(model, FEATURES, 8, batch_size=None)
        np.testing.assert_array_equal(decode(model, FEATURES, 8, batch_size=2), whole)


class TestSample:
    def test_shape_dtype_and_end_convention(self):
        out = sample(random_model(), FEATURES, 12, seed=0)
        assert out.shape == (5, 12) and out.dtype == np.int32
        for row in out:
            ends = np.flatnonzero(row == END)
            if ends.size:
                assert (row[ends[0] + 1:] == 0).all()

    def test_temperature_to_zero_is_greedy(self):
        model = random_model(seed=5)
        expected = model.sample(FEATURES, 10)
        np.testing.assert_array_equal(sample(model, FEATURES, 10, temperature=0), expected)
        np.testing.assert_array_equal(sample(model, FEATURES, 10, temperature=1e-9, seed=1),
                                      expected)

    def test_top_k_one_is_greedy(self):
        model = random_model(seed=6)
        out = sample(model, FEATURES, 10, temperature=5.0, top_k=1, seed=2)
        np.testing.assert_array_equal(out, model.sample(FEATURES, 10))

    def test_fixed_seed_reproducible(self):
        model = random_model(seed=7)
        features = np.repeat(FEATURES, 4, axis=0)
        a = decode(model, features, 10, "sample", seed=11, temperature=2.0, batch_size=3)
        b = decode(model, features, 10, "sample", seed=11, temperature=2.0, batch_size=3)
        c = decode(model, features, 10, "sample", seed=12, temperature=2.0, batch_size=3)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)

    @pytest.mark.parametrize("temperature", [1.0, 2.0])
    def test_first_token_frequencies_follow_softmax(self, temperature):
        model = markov_model({"<START>": {"a": 0.5, "b": 0.3, "c": 0.2}})
        out = sample(model, np.zeros((4000, 2)), 1, temperature=temperature, seed=0)
        logits = np.log(model.markov_probs[VOCAB["<START>"]]) / temperature
        expected = np.exp(logits - logits.max())
        expected /= expected.sum()
        freq = np.bincount(out[:, 0], minlength=len(TOKENS)) / len(out)
        np.testing.assert_allclose(freq, expected, atol=0.03)

    def test_top_k_only_draws_the_best(self):
        model = markov_model({"<START>": {"a": 0.4, "b": 0.35, "c": 0.25}})
        out = sample(model, np.zeros((500, 2)), 1, temperature=3.0, top_k=2, seed=0)
        assert set(out[:, 0].tolist()) == {VOCAB["a"], VOCAB["b"]}

    def test_bad_options(self):
        with pytest.raises(ValueError, match="temperature"):
            sample(random_model(), FEATURES, 4, temperature=-1)
        with pytest.raises(ValueError, match="top_k"):
            sample(random_model(), FEATURES, 4, top_k=0)


# START -> a is likelier than START -> b, but every continuation of "a" is unlikely, while
# "b" is almost surely followed by <END>: greedy says "a <END>" (p = .5 * .3), beam "b <END>" (.4).
MYOPIC = {"<START>": {"a": 0.5, "b": 0.4, "c": 0.1},
          "a": {"<END>": 0.3, "b": 0.25, "c": 0.25, "a": 0.2},
          "b": {"<END>": 0.99},
          "c": {"<END>": 0.99}}

# "b <END>" has the higher total log-probability (.6 * .99), "c d e <END>" the higher mean one.
SHORT_OR_LONG = {"<START>": {"b": 0.6, "c": 0.4},
                 "b": {"<END>": 0.99}, "c": {"d": 0.99}, "d": {"e": 0.99}, "e": {"<END>": 0.99}}


class TestBeam:
    @pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
    def test_width_one_is_greedy(self, cell_type):
        model = random_model(cell_type, seed=8)
        features = np.random.RandomState(2).randn(20, 6)
        np.testing.assert_array_equal(beam(model, features, 10, beam_width=1),
                                      model.sample(features, 10))

    def test_finds_likelier_sequence_than_myopic_greedy(self):
        model = markov_model(MYOPIC)
        features = np.zeros((3, 2))
        greedy_out = model.sample(features, 6)
        beam_out = beam(model, features, 6, beam_width=2)
        assert greedy_out[0, :2].tolist() == [VOCAB["a"], END]
        assert beam_out[0, :2].tolist() == [VOCAB["b"], END] and (beam_out[:, 2:] == 0).all()
        assert sequence_logp(model, beam_out[0]) > sequence_logp(model, greedy_out[0])

    def test_length_penalty_prefers_longer_caption(self):
        model = markov_model(SHORT_OR_LONG)
        features = np.zeros((2, 2))
        short = beam(model, features, 6, beam_width=2, length_penalty=0.0)
        long = beam(model, features, 6, beam_width=2, length_penalty=1.0)
        assert short[0, :2].tolist() == [VOCAB["b"], END]
        assert long[0, :4].tolist() == [VOCAB["c"], VOCAB["d"], VOCAB["e"], END]
        lp_short, lp_long = sequence_logp(model, short[0]), sequence_logp(model, long[0])
        assert lp_short > lp_long and lp_short / 2 < lp_long / 4

    def test_beats_or_ties_every_sampled_caption(self):
        """Exhaustive-ish check: no sampled sequence is likelier than the wide beam's answer."""
        model = markov_model(MYOPIC, eps=1e-2)
        best = beam(model, np.zeros((1, 2)), 4, beam_width=len(TOKENS))[0]
        samples = sample(model, np.zeros((300, 2)), 4, seed=0)
        finished = [row for row in samples if END in row]
        assert max(sequence_logp(model, row) for row in finished) <= sequence_logp(model, best)

    def test_rows_without_end_keep_max_length(self):
        model = markov_model({"<START>": {"a": 0.9}, "a": {"a": 0.99}})
        out = beam(model, np.zeros((2, 2)), 5, beam_width=3)
        assert out.shape == (2, 5) and (out == VOCAB["a"]).all()

    def test_end_convention_and_batching(self):
        model = random_model(seed=9)
        features = np.random.RandomState(3).randn(7, 6)
        whole = decode(model, features, 8, "beam", beam_width=3, batch_size=None)
        np.testing.assert_array_equal(
            decode(model, features, 8, "beam", beam_width=3, batch_size=3), whole)
        for row in whole:
            ends = np.flatnonzero(row == END)
            if ends.size:
                assert (row[ends[0] + 1:] == 0).all() and (row[:ends[0]] != 0).all()

    def test_bad_options(self):
        with pytest.raises(ValueError, match="beam_width"):
            beam(random_model(), FEATURES, 4, beam_width=0)
        with pytest.raises(ValueError, match="length_penalty"):
            beam(random_model(), FEATURES, 4, length_penalty=-1)
