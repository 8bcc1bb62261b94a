"""The cell contract: a cell plugin with a parameter of its own (plugins/gain_rnn.py), end to end.

The captioner keeps every parameter a cell declares, hands all of them to the cell by name, and
stores the gradients the cell returns by name; gradients are checked against numerical ones
through the full ``CaptioningRNN.loss``. Models pickle and deep-copy. (The plugin trains and
resumes through ``run.py`` in ``tests/e2e/test_plugins.py``.)
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from capx.captioner import CaptioningRNN
from capx.cells.base import Cell
from capx.checkpoint import CheckpointError, check_compatible, load_checkpoint
from capx.decoding import decode
from capx.gradcheck import eval_numerical_gradient
from capx.metrics.likelihood import sequence_nll
from capx.packing import make_packing
from capx.registry import CELLS, load_plugins


load_plugins(["plugins.gain_rnn"])  # the way a config's ``plugins: [plugins.gain_rnn]`` loads it

VOCAB = {"<NULL>": 0, "<START>": 1, "<END>": 2, "<UNK>": 3, "a": 4, "cat": 5, "on": 6, "mat": 7}
CS231N_ORDER = ["W_proj", "b_proj", "W_embed", "Wx", "Wh", "b", "W_vocab", "b_vocab"]


def norm_error(numeric, analytic):
    """Error relative to the gradient's size (entry-wise relative errors blow up near zero)."""
    return float(np.linalg.norm(numeric - analytic)
                 / max(np.linalg.norm(numeric) + np.linalg.norm(analytic), 1e-12))


def random_captions(rng, n, length, vocab_size=len(VOCAB)):
    """<START> w ... <END> <NULL>..., uneven lengths, <NULL> in odd places, one empty caption."""
    captions = np.zeros((n, length), dtype=np.int32)
    captions[:, 0] = VOCAB["<START>"]
    for row in range(n):
        words = rng.randint(1, length - 1)
        captions[row, 1 : words + 1] = rng.randint(4, vocab_size, size=words)
        captions[row, words + 1] = VOCAB["<END>"]
    captions[0, 2] = VOCAB["<NULL>"]  # a masked target inside a caption
    captions[1, 1:] = VOCAB["<NULL>"]  # a caption with no targets at all
    return captions


def model_for(cell_type, seed=0, dtype=np.float64, **kwargs):
    return CaptioningRNN(VOCAB, input_dim=5, wordvec_dim=4, hidden_dim=3, cell_type=cell_type,
                         dtype=dtype, seed=seed, **kwargs)


def jitter(model, rng, scale=0.3):
    """Move every parameter off its initial value (nonzero biases, a gain away from 1)."""
    for name, value in model.params.items():
        model.params[name] = value + scale * rng.randn(*value.shape)


def gradient_check(model, features, captions, tolerance=1e-7, dropout=None):
    loss, grads = model.loss(features, captions, dropout=dropout)
    assert np.isfinite(loss) and loss > 0
    assert list(grads) == list(model.params)
    for name, param in model.params.items():
        numeric = eval_numerical_gradient(
            lambda _: model.loss(features, captions, dropout=dropout)[0], param, verbose=False)
        assert norm_error(numeric, grads[name]) < tolerance, name


# -- the gain_rnn plugin ------------------------------------------------------------------------


def test_gain_rnn_params_sit_between_embedding_and_output():
    model = model_for("gain_rnn")
    assert list(model.params) == CS231N_ORDER[:6] + ["g"] + CS231N_ORDER[6:]
    assert model.cell_param_names == ("Wx", "Wh", "b", "g")
    np.testing.assert_array_equal(model.params["g"], np.ones(3))
    assert list(model_for("rnn").params) == list(model_for("lstm").params) == CS231N_ORDER


def test_fresh_gain_rnn_is_the_rnn():
    """g starts at 1 and draws nothing, so the same seed gives the rnn's model and loss."""
    rng = np.random.RandomState(1)
    features, captions = rng.randn(6, 5), random_captions(rng, 6, 7)
    gain, plain = model_for("gain_rnn", seed=4), model_for("rnn", seed=4)
    loss_g, grads_g = gain.loss(features, captions)
    loss_r, grads_r = plain.loss(features, captions)
    assert loss_g == loss_r
    for name in grads_r:
        np.testing.assert_array_equal(grads_g[name], grads_r[name], err_msg=name)


@pytest.mark.parametrize("fold_embedding", [False, True])
def test_gain_rnn_gradients_match_numerical(fold_embedding):
    rng = np.random.RandomState(2)
    model = model_for("gain_rnn", fold_embedding=fold_embedding)
    jitter(model, rng)
    assert np.abs(model.params["g"] - 1).max() > 0.05
    gradient_check(model, rng.randn(5, 5), random_captions(rng, 5, 6))


def test_gain_rnn_packed_equals_dense():
    rng = np.random.RandomState(3)
    features, captions = rng.randn(6, 5), random_captions(rng, 6, 8)
    packed, dense = model_for("gain_rnn", seed=5), model_for("gain_rnn", seed=5, pack=False)
    for model in (packed, dense):
        jitter(model, np.random.RandomState(6))
    loss_p, grads_p = packed.loss(features, captions)
    loss_d, grads_d = dense.loss(features, captions)
    assert loss_p == pytest.approx(loss_d, rel=1e-12)
    for name in grads_p:
        np.testing.assert_allclose(grads_p[name], grads_d[name], rtol=1e-10, atol=1e-13,
                                   err_msg=name)


def test_gain_rnn_fast_paths_equal_plain_computation_in_float32():
    rng = np.random.RandomState(7)
    model = model_for("gain_rnn", seed=8, dtype=np.float32)
    jitter(model, rng, scale=0.1)
    features, captions = rng.randn(12, 5).astype(np.float32), random_captions(rng, 12, 9)
    results = {}
    for pack in (True, False):
        for fold in (True, False):
            model.pack, model.fold_embedding = pack, fold
            results[pack, fold] = model.loss(features, captions)
    ref_loss, ref_grads = results[False, False]
    for key, (loss, grads) in results.items():
        assert loss == pytest.approx(ref_loss, rel=1e-5), key
        for name, g in grads.items():
            np.testing.assert_allclose(g, ref_grads[name], rtol=2e-4, atol=2e-6,
                                       err_msg=f"{key} {name}")


def test_gain_rnn_step_agrees_with_forward():
    rng = np.random.RandomState(9)
    n, steps, hidden = 4, 5, 3
    cell = CELLS.get("gain_rnn")()
    params = cell.init_params(2, hidden, rng, np.float64)
    params["g"] = 1 + 0.5 * rng.randn(hidden)
    packing = make_packing(np.ones((n, steps), dtype=bool))
    xw, h0 = rng.randn(packing.num_rows, hidden), rng.randn(n, hidden)
    h, _ = cell.forward(xw.copy(), h0, params, packing)
    state = cell.initial_state(h0)
    for t in range(steps):
        rows = slice(packing.offsets[t], packing.offsets[t + 1])
        xw_t = xw[rows].copy()
        state = cell.step(xw_t, state, params)
        np.testing.assert_array_equal(xw_t, xw[rows])  # step leaves its input alone
        expected = np.tanh(params["g"] * (xw[rows] + (h0 if t == 0 else h[prev]) @ params["Wh"]))
        np.testing.assert_allclose(state[0], expected, rtol=1e-12, atol=1e-14, err_msg=f"t={t}")
        np.testing.assert_allclose(state[0], h[rows], rtol=1e-12, atol=1e-14, err_msg=f"t={t}")
        prev = rows


def test_gain_rnn_samples_and_decodes():
    rng = np.random.RandomState(10)
    model = model_for("gain_rnn", seed=11)
    jitter(model, rng)
    features = rng.randn(3, 5)
    greedy = model.sample(features, max_length=6)
    assert greedy.shape == (3, 6) and greedy.min() >= 0 and greedy.max() < len(VOCAB)
    np.testing.assert_array_equal(decode(model, features, 6, decoder="greedy"), greedy)
    np.testing.assert_array_equal(  # beam 1 is greedy
        decode(model, features, 6, decoder="beam", beam_width=1), greedy)
    assert decode(model, features, 6, decoder="beam", beam_width=3).shape == (3, 6)
    assert decode(model, features, 6, decoder="sample", seed=0).shape == (3, 6)


def test_gain_rnn_step_scores_give_the_training_loss():
    """Teacher forcing through the decoding API (as the NLL metrics do) equals ``loss``."""
    rng = np.random.RandomState(12)
    model = model_for("gain_rnn", seed=13)
    jitter(model, rng)
    features, captions = rng.randn(6, 5), random_captions(rng, 6, 7)
    loss, _ = model.loss(features, captions)
    assert sequence_nll(model, features, captions).sum() / 6 == pytest.approx(loss, rel=1e-10)


def test_param_counts_put_the_gain_under_recurrent():
    model = model_for("gain_rnn")
    counts = model.param_counts()
    assert counts["g"] == 3
    assert counts["group/recurrent"] == counts["Wx"] + counts["Wh"] + counts["b"] + counts["g"]
    groups = sum(v for k, v in counts.items() if k.startswith("group/"))
    assert groups == counts["total"] == model.params.flat.size


# -- the contract for any cell ------------------------------------------------------------------


class SelfProjectingRNN(Cell):
    """A tanh RNN that applies its own input weights (``U``, no ``Wx``/``b``) and has a second
    recurrent matrix: h_t = tanh(x_t U + h_{t-1} Wh + (h_{t-1} * h_{t-1}) Wq)."""

    def init_params(self, input_dim, hidden_dim, rng, dtype):
        return {"U": rng.randn(input_dim, hidden_dim) / np.sqrt(input_dim),
                "Wh": rng.randn(hidden_dim, hidden_dim) / np.sqrt(hidden_dim),
                "Wq": rng.randn(hidden_dim, hidden_dim) / hidden_dim}

    def forward(self, x, h0, params, packing):
        h, prev = np.empty((x.shape[0], h0.shape[1])), h0
        for t in range(packing.num_steps):
            sl = slice(packing.offsets[t], packing.offsets[t + 1])
            n = sl.stop - sl.start
            h[sl] = np.tanh(x[sl] @ params["U"] + prev[:n] @ params["Wh"]
                            + (prev[:n] ** 2) @ params["Wq"])
            prev = h[sl]
        return h, (x.copy(), h, h0, params, packing)

    def backward(self, dh, cache):
        x, h, h0, p, packing = cache
        prev_all = packing.previous(h0, h)
        da = np.zeros_like(h)
        dnext = np.zeros_like(h0)
        for t in range(packing.num_steps - 1, -1, -1):
            sl = slice(packing.offsets[t], packing.offsets[t + 1])
            n = sl.stop - sl.start
            da[sl] = (dh[sl] + dnext[:n]) * (1 - h[sl] ** 2)
            dnext = np.zeros_like(h0)
            dnext[:n] = da[sl] @ p["Wh"].T + 2 * prev_all[sl] * (da[sl] @ p["Wq"].T)
        grads = {"U": x.T @ da, "Wh": prev_all.T @ da, "Wq": (prev_all ** 2).T @ da}
        return da @ p["U"].T, dnext, grads

    def step(self, x, state, params):
        (prev,) = state
        return (np.tanh(x @ params["U"] + prev @ params["Wh"] + (prev ** 2) @ params["Wq"]),)


@pytest.fixture
def register(monkeypatch):
    """Register test cells into a copy of the cell registry, undone afterwards."""
    CELLS.names()  # load the built-in cells before taking the copy
    monkeypatch.setattr(CELLS, "_entries", dict(CELLS._entries))

    def add(name, cls):
        CELLS.add(name, cls)
        return name
    return add


@pytest.mark.parametrize("fold_embedding", [False, True, "auto"])
def test_a_cell_without_wx_and_b_gets_the_word_vectors(register, fold_embedding):
    model = model_for(register("self_projecting", SelfProjectingRNN),
                      fold_embedding=fold_embedding)
    assert not model.projects_input
    assert list(model.params) == ["W_proj", "b_proj", "W_embed", "U", "Wh", "Wq", "W_vocab",
                                  "b_vocab"]
    rng = np.random.RandomState(14)
    jitter(model, rng)
    features, captions = rng.randn(5, 5), random_captions(rng, 5, 6)
    gradient_check(model, features, captions)
    loss, _ = model.loss(features, captions)
    assert sequence_nll(model, features, captions).sum() / 5 == pytest.approx(loss, rel=1e-10)
    assert model.sample(features, max_length=5).shape == (5, 5)
    np.testing.assert_array_equal(model.input_table(), model.params["W_embed"])


@pytest.mark.parametrize("cell", ["gain_rnn", "self_projecting"])
def test_dropout_gradients_of_plugin_cells_match_numerical(register, cell):
    """Dropout masks (fixed) on the word vectors a cell receives, whether the captioner
    projects them (gain_rnn) or the cell does (self_projecting), and on its hidden states."""
    if cell == "self_projecting":
        register(cell, SelfProjectingRNN)
    model = model_for(cell, dropout=0.5)
    rng = np.random.RandomState(21)
    jitter(model, rng)
    features, captions = rng.randn(5, 5), random_captions(rng, 5, 6)
    masks = model.dropout_masks(captions, rng)
    assert (masks.embed == 0).any() and (masks.hidden == 0).any()
    gradient_check(model, features, captions, dropout=masks)


def test_a_cell_that_returns_the_wrong_gradients_is_named(register):
    class Forgetful(CELLS.get("gain_rnn")):
        def backward(self, dh, cache):
            dxw, dh0, grads = super().backward(dh, cache)
            del grads["g"]
            return dxw, dh0, grads

    model = model_for(register("forgetful", Forgetful))
    with pytest.raises(ValueError, match=r"'forgetful'.*\['Wh'\].*\['Wh', 'g'\]"):
        model.loss(np.ones((2, 5)), np.array([[1, 4, 2], [1, 2, 0]]))


def test_a_cell_may_not_take_the_captioners_parameter_names(register):
    class Greedy(Cell):
        def init_params(self, input_dim, hidden_dim, rng, dtype):
            return {"Wh": np.zeros((hidden_dim, hidden_dim)), "W_vocab": np.zeros(1)}

    with pytest.raises(ValueError, match=r"'greedy'.*\['W_vocab'\]"):
        model_for(register("greedy", Greedy))


# -- pickling and copies ------------------------------------------------------------------------


@pytest.mark.parametrize("cell_type", ["rnn", "lstm", "gain_rnn"])
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_model_pickles_and_deep_copies(cell_type, how):
    rng = np.random.RandomState(15)
    model = model_for(cell_type, seed=16, dtype=np.float32)
    jitter(model, rng)
    features, captions = rng.randn(4, 5).astype(np.float32), random_captions(rng, 4, 6)
    loss, grads = model.loss(features, captions)
    twin = pickle.loads(pickle.dumps(model)) if how == "pickle" else copy.deepcopy(model)

    twin_loss, twin_grads = twin.loss(features, captions)
    assert twin_loss == loss
    np.testing.assert_array_equal(twin_grads.flat, grads.flat)
    assert list(twin.params) == list(model.params) and twin.params.flat.dtype == np.float32
    np.testing.assert_array_equal(twin.sample(features, 5), model.sample(features, 5))
    # the copy's arrays are views into its own flat buffer, shared with nothing of the original
    assert not np.shares_memory(twin.params.flat, model.params.flat)
    for name, value in twin.params.items():
        assert np.shares_memory(value, twin.params.flat), name
    twin.params["Wh"] = np.zeros_like(twin.params["Wh"])
    twin.params.flat[:3] += 1.0  # as an update rule on the flat buffer does
    assert not twin.params["Wh"].any() and model.params["Wh"].any()
    assert np.array_equal(twin.params["W_proj"].ravel()[:3], model.params["W_proj"].ravel()[:3] + 1)
    assert model.loss(features, captions)[0] == loss
    assert twin.loss(features, captions)[0] != loss


def test_grads_pickle_with_their_flat_layout():
    model = model_for("gain_rnn", seed=17)
    _, grads = model.loss(np.ones((2, 5)), np.array([[1, 4, 2], [1, 2, 0]]))
    back = pickle.loads(pickle.dumps(grads))
    np.testing.assert_array_equal(back.flat, grads.flat)
    back.flat[...] = 0
    assert not back["g"].any()


def test_param_update_goes_through_the_flat_buffer():
    model = model_for("gain_rnn")
    model.params.update(g=np.full(3, 2.0))
    assert np.count_nonzero(model.params.flat == 2.0) >= 3
    with pytest.raises(KeyError, match="unknown parameter 'gain'"):
        model.params.update({"gain": np.ones(3)})


# -- checkpoints --------------------------------------------------------------------------------


def test_checkpoint_round_trips_the_gain(tmp_path):
    from capx.checkpoint import Checkpoint, save_checkpoint

    model = model_for("gain_rnn", seed=18)
    jitter(model, np.random.RandomState(19))
    state = {"params": {k: v.copy() for k, v in model.params.items()}, "optim_configs": {},
             "rng_state": np.random.RandomState(0).get_state(), "epoch": 1, "iteration": 2,
             "loss_history": [1.0, 0.5]}
    idx_to_word = [w for w, _ in sorted(VOCAB.items(), key=lambda kv: kv[1])]
    path = save_checkpoint(tmp_path / "last.npz", state, {"idx_to_word": idx_to_word}, "x: 1\n")
    loaded = load_checkpoint(path)
    np.testing.assert_array_equal(loaded.state["params"]["g"], model.params["g"])
    fresh = model_for("gain_rnn", seed=20)
    check_compatible(loaded, fresh.params, idx_to_word)
    with pytest.raises(CheckpointError, match="another cell type"):
        check_compatible(loaded, model_for("rnn").params, idx_to_word)
    wider = CaptioningRNN(VOCAB, input_dim=5, wordvec_dim=4, hidden_dim=4, cell_type="gain_rnn")
    with pytest.raises(CheckpointError, match="shape"):
        check_compatible(Checkpoint(state=loaded.state, tokenizer=loaded.tokenizer,
                                    config_yaml=""), wider.params, idx_to_word)
