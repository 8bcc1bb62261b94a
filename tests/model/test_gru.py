"""The GRU cell plugin: math against a plain reference, gradients, packing, decoding, training."""

from __future__ import annotations

import numpy as np
import pytest

from capx.captioner import CaptioningRNN
from capx.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from capx.packing import make_packing
from capx.registry import CELLS, load_plugins
from capx.solver import CaptioningSolver

load_plugins(["plugins.gru"])  # the way a config's ``plugins: [plugins.gru]`` loads it

VOCAB = {"<NULL>": 0, "<START>": 1, "<END>": 2, "<UNK>": 3, "a": 4, "cat": 5, "on": 6, "mat": 7}


def norm_error(numeric, analytic):
    """Error relative to the gradient's size (entry-wise relative error blows up on tiny entries)."""
    return float(np.linalg.norm(numeric - analytic)
                 / max(np.linalg.norm(numeric) + np.linalg.norm(analytic), 1e-12))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_gru(x_proj, h0, Wh):
    """The GRU equations written out over a dense (N, T, 3H) batch, one timestep at a time."""
    h, out = h0, []
    for t in range(x_proj.shape[1]):
        hw = h @ Wh
        xr, xz, xn = np.split(x_proj[:, t], 3, axis=1)
        hr, hz, hn = np.split(hw, 3, axis=1)
        r, z = sigmoid(xr + hr), sigmoid(xz + hz)
        n = np.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out, axis=1)


def uneven_mask():
    """Five captions of lengths 4, 0, 2, 4, 1 (one never runs), with an inner ``<NULL>``."""
    mask = np.zeros((5, 4), dtype=bool)
    for row, length in enumerate([4, 0, 2, 4, 1]):
        mask[row, :length] = True
    mask[3, 1] = False  # masked inside the caption: the recurrence still runs through it
    return mask


def packed_problem(seed=0, hidden=3):
    rng = np.random.RandomState(seed)
    mask = uneven_mask()
    packing = make_packing(mask)
    n = mask.shape[0]
    xw = rng.randn(packing.num_rows, 3 * hidden)
    h0 = rng.randn(n, hidden)
    Wh = rng.randn(hidden, 3 * hidden) * 0.5
    return packing, xw, h0, Wh


def test_gru_is_registered_with_three_gates():
    cell_cls = CELLS.get("gru")
    assert "gru" in CELLS.names()
    assert cell_cls.gates == 3
    params = cell_cls().init_params(5, 4, np.random.RandomState(0), np.float64)
    assert params["Wx"].shape == (5, 12) and params["Wh"].shape == (4, 12)
    assert params["b"].shape == (12,)


def sorted_positions(packing):
    """Sorted batch position (0 = longest caption) of every packed row."""
    return np.arange(packing.num_rows) - packing.offsets[packing.steps]


def test_packed_forward_matches_the_equations():
    packing, xw, h0, Wh = packed_problem()
    h, _ = CELLS.get("gru")().forward(xw.copy(), h0, {"Wh": Wh}, packing)
    pos = sorted_positions(packing)
    dense = np.zeros((h0.shape[0], packing.num_steps, xw.shape[1]))
    dense[pos, packing.steps] = xw  # rows that finished early see zeros, never compared
    expected = reference_gru(dense, h0, Wh)[pos, packing.steps]
    assert h.shape == expected.shape
    assert rel_error(expected, h) < 1e-12


def test_packed_backward_matches_numerical_gradients():
    packing, xw, h0, Wh = packed_problem(seed=1)
    cell = CELLS.get("gru")()
    dout = np.random.RandomState(2).randn(packing.num_rows, h0.shape[1])

    def run(xw_, h0_, Wh_):
        return cell.forward(xw_.copy(), h0_, {"Wh": Wh_}, packing)[0]  # forward overwrites xw

    _, cache = cell.forward(xw.copy(), h0, {"Wh": Wh}, packing)
    dxw, dh0, grads = cell.backward(dout.copy(), cache)
    assert set(grads) == {"Wh"}  # Wx and b: the captioner's input projection
    dWh = grads["Wh"]
    numeric = {
        "xw": eval_numerical_gradient_array(lambda v: run(v, h0, Wh), xw.copy(), dout),
        "h0": eval_numerical_gradient_array(lambda v: run(xw, v, Wh), h0.copy(), dout),
        "Wh": eval_numerical_gradient_array(lambda v: run(xw, h0, v), Wh.copy(), dout),
    }
    for name, analytic in (("xw", dxw), ("h0", dh0), ("Wh", dWh)):
        assert analytic.shape == numeric[name].shape, name
        assert norm_error(numeric[name], analytic) < 1e-8, name
    never_ran = slice(packing.batch_sizes[0], None)  # sorted last: the empty caption
    assert h0[never_ran].shape[0] == 1
    assert not dh0[never_ran].any()


def random_captions(rng, n, length, vocab_size, null_inside=True):
    """<START> w ... <END> <NULL>..., uneven lengths, optionally with <NULL> in odd places."""
    captions = np.zeros((n, length), dtype=np.int32)
    captions[:, 0] = VOCAB["<START>"]
    for row in range(n):
        words = rng.randint(1, length - 1)
        captions[row, 1 : words + 1] = rng.randint(4, vocab_size, size=words)
        captions[row, words + 1] = VOCAB["<END>"]
    if null_inside:
        captions[0, 2] = VOCAB["<NULL>"]  # a masked target inside a caption
        captions[1, 1] = VOCAB["<NULL>"]  # masked right after <START>
        captions[2, 1:] = VOCAB["<NULL>"]  # a caption with no targets at all
    return captions


def small_model(seed=0, **kwargs):
    return CaptioningRNN(VOCAB, input_dim=5, wordvec_dim=4, hidden_dim=3, cell_type="gru",
                         dtype=np.float64, seed=seed, **kwargs)


@pytest.mark.parametrize("fold_embedding", [False, True])
def test_captioner_loss_matches_numerical_gradients(fold_embedding):
    rng = np.random.RandomState(3)
    model = small_model(fold_embedding=fold_embedding)
    for name in model.params:  # nonzero biases so every term is exercised
        model.params[name] = model.params[name] + 0.1 * rng.randn(*model.params[name].shape)
    features = rng.randn(4, 5)
    captions = random_captions(rng, 4, 6, len(VOCAB))
    loss, grads = model.loss(features, captions)
    assert np.isfinite(loss) and loss > 0
    for name, param in model.params.items():
        numeric = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], param,
                                          verbose=False)
        assert norm_error(numeric, grads[name]) < 1e-7, name


def test_packed_equals_dense_with_null_in_odd_places():
    rng = np.random.RandomState(4)
    features = rng.randn(6, 5)
    captions = random_captions(rng, 6, 7, len(VOCAB))
    packed, dense = small_model(seed=5), small_model(seed=5, pack=False)
    loss_p, grads_p = packed.loss(features, captions)
    loss_d, grads_d = dense.loss(features, captions)
    assert loss_p == pytest.approx(loss_d, rel=1e-12)
    for name in grads_p:
        np.testing.assert_allclose(grads_p[name], grads_d[name], rtol=1e-10, atol=1e-13,
                                   err_msg=name)


def test_step_agrees_with_forward():
    rng = np.random.RandomState(6)
    n, steps, hidden = 4, 5, 3
    packing = make_packing(np.ones((n, steps), dtype=bool))
    xw = rng.randn(packing.num_rows, 3 * hidden)
    h0, Wh = rng.randn(n, hidden), rng.randn(hidden, 3 * hidden) * 0.5
    cell = CELLS.get("gru")()
    h, _ = cell.forward(xw.copy(), h0, {"Wh": Wh}, packing)
    state = cell.initial_state(h0)
    for t in range(steps):
        rows = slice(packing.offsets[t], packing.offsets[t + 1])
        xw_t = xw[rows].copy()
        state = cell.step(xw_t, state, {"Wh": Wh})
        np.testing.assert_array_equal(xw_t, xw[rows])  # step leaves its input alone
        np.testing.assert_allclose(state[0], h[rows], rtol=1e-12, atol=1e-14, err_msg=f"t={t}")


def test_sample_decodes_with_the_gru():
    model = small_model(seed=7)
    captions = model.sample(np.random.RandomState(8).randn(3, 5), max_length=6)
    assert captions.shape == (3, 6)
    assert captions.min() >= 0 and captions.max() < len(VOCAB)


def test_gru_overfits_a_small_problem_through_the_solver():
    rng = np.random.RandomState(9)
    vocab = dict(VOCAB, **{f"w{i}": 8 + i for i in range(8)})
    num_captions = num_images = 20  # one caption per image: it can be learnt by heart
    data = {
        "train_captions": random_captions(rng, num_captions, 9, len(vocab), null_inside=False),
        "train_image_idxs": rng.randint(num_images, size=num_captions),
        "train_features": rng.randn(num_images, 16).astype(np.float32),
    }
    model = CaptioningRNN(vocab, input_dim=16, wordvec_dim=16, hidden_dim=32, cell_type="gru",
                          seed=10)
    solver = CaptioningSolver(model, data, update_rule="adam",
                              optim_config={"learning_rate": 2e-2}, batch_size=num_captions,
                              num_epochs=150, verbose=False, seed=11)
    solver.train()
    first, last = np.mean(solver.loss_history[:5]), np.mean(solver.loss_history[-5:])
    assert model.params["Wh"].dtype == np.float32
    assert last < first / 10, (first, last)
