"""CaptioningRNN: CS231n known values, gradient checks, packed/folded paths, sampling."""

import numpy as np
import pytest

from capx.captioner import CaptioningRNN
from capx.gradcheck import eval_numerical_gradient

TOY_VOCAB = {"<NULL>": 0, "cat": 2, "dog": 3}


def linspace_model(cell_type, N=10, D=20, W=30, H=40):
    model = CaptioningRNN(TOY_VOCAB, input_dim=D, wordvec_dim=W, hidden_dim=H,
                          cell_type=cell_type, dtype=np.float64)
    for k, v in model.params.items():
        model.params[k] = np.linspace(-1.4, 1.3, num=v.size).reshape(*v.shape)
    return model


@pytest.mark.parametrize("cell_type,features_range,expected", [
    ("rnn", (-1.5, 0.3), 9.83235591003),
    ("lstm", (-0.5, 1.7), 9.82445935443),
])
@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("fold", [True, False])
def test_loss_known_values(cell_type, features_range, expected, pack, fold):
    N, D, T = 10, 20, 13
    model = linspace_model(cell_type)
    model.pack, model.fold_embedding = pack, fold
    features = np.linspace(*features_range, num=N * D).reshape(N, D)
    captions = (np.arange(N * T) % len(TOY_VOCAB)).reshape(N, T)
    loss, _ = model.loss(features, captions)
    assert abs(loss - expected) < 1e-10


def random_problem(rng, N=6, T=7, V=9, null_rate=0.3, trailing=True):
    """Captions with <NULL> both as trailing padding and in odd places inside captions."""
    captions = rng.randint(1, V, size=(N, T))
    captions[rng.rand(N, T) < null_rate / 2] = 0
    if trailing:
        for row, length in enumerate(rng.randint(1, T + 1, size=N)):
            captions[row, length:] = 0
    captions[0, 1:] = 0  # one caption with no tokens at all
    return captions


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
@pytest.mark.parametrize("fold", [True, False])
def test_loss_gradients_match_numerical(cell_type, fold):
    rng = np.random.RandomState(0)
    N, D, W, H, V = 5, 4, 3, 6, 9
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, V)}}
    model = CaptioningRNN(word_to_idx, input_dim=D, wordvec_dim=W, hidden_dim=H,
                          cell_type=cell_type, dtype=np.float64, seed=1)
    model.fold_embedding = fold
    for k, v in model.params.items():
        model.params[k] = rng.randn(*v.shape) * 0.5
    features = rng.randn(N, D)
    captions = random_problem(rng, N=N, T=6, V=V)
    loss, grads = model.loss(features, captions)
    for name in model.params:
        f = lambda _: model.loss(features, captions)[0]  # noqa: E731
        numeric = eval_numerical_gradient(f, model.params[name], verbose=False)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_fast_paths_equal_plain_computation(cell_type):
    """Packed and folded paths give the dense, unfolded loss and gradients (float32 tolerance)."""
    rng = np.random.RandomState(3)
    V = 40
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, V)}}
    model = CaptioningRNN(word_to_idx, input_dim=16, wordvec_dim=8, hidden_dim=12,
                          cell_type=cell_type, seed=0)
    features = rng.randn(20, 16).astype(np.float32)
    captions = random_problem(rng, N=20, T=15, V=V)
    results = {}
    for pack in (True, False):
        for fold in (True, False):
            model.pack, model.fold_embedding = pack, fold
            loss, grads = model.loss(features, captions)
            results[pack, fold] = loss, grads
    ref_loss, ref_grads = results[False, False]
    for key, (loss, grads) in results.items():
        assert loss == pytest.approx(ref_loss, rel=1e-5), key
        for name, g in grads.items():
            np.testing.assert_allclose(g, ref_grads[name], rtol=2e-4, atol=2e-6, err_msg=f"{key} {name}")


def odd_null_captions(rng, V):
    """Captions of different lengths with <NULL> (0) in odd places, after <START> (1)."""
    T = 9
    captions = [
        [1, 0, 0, 0, 0, 0, 0, 0, 0],  # nothing after <START>
        [1, 0, 5, 6, 2, 0, 0, 0, 0],  # <NULL> first, then tokens
        [1, 4, 5, 0, 0, 6, 7, 2, 0],  # <NULL>s inside the caption
        [1, 0, 0, 0, 0, 0, 0, 0, 2],  # the only target is the last position
        [1, 3, 4, 5, 6, 7, 8, 3, 2],  # full length, no padding
        [1, 8, 2, 0, 0, 0, 0, 0, 0],  # short
    ]
    return np.concatenate([np.array(captions), random_problem(rng, N=6, T=T, V=V)])


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("n", [1, 12])
def test_loss_equals_the_reference_layers(cell_type, pack, fold, n):
    """CaptioningRNN.loss (packed or dense, folded or not) equals capx.reference in float64,
    also with N=1."""
    from capx.reference import captioning_loss

    rng = np.random.RandomState(7)
    V = 9
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, V)}}
    model = CaptioningRNN(word_to_idx, input_dim=5, wordvec_dim=4, hidden_dim=6,
                          cell_type=cell_type, dtype=np.float64, seed=0, pack=pack,
                          fold_embedding=fold)
    for name, value in model.params.items():  # non-zero biases, so a misplaced one shows up
        model.params[name] = rng.randn(*value.shape) * 0.5
    features = rng.randn(12, 5)[-n:]
    captions = odd_null_captions(rng, V)[-n:]
    assert (captions[:, 1:] != 0).any()
    loss, grads = model.loss(features, captions)
    params = {name: np.array(value) for name, value in model.params.items()}
    ref_loss, ref_grads = captioning_loss(params, features, captions, cell_type, null_id=0)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert set(grads) == set(ref_grads)
    for name, g in ref_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("rows", [1, 7])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_lstm_gate_math_by_gate_equals_the_plain_formulas(rows, layout):
    """lstm_activate_ (decoding) and the training step's lstm_activate_for_backward_ work
    through a gate-major view of the gate rows: on contiguous rows and on strided ones (every
    other column of a wider array) they give the textbook gates, cell state, h and backward
    factors, agree with each other bit for bit, and leave the columns in between alone."""
    from capx.cells.lstm import by_gate, lstm_activate_, lstm_activate_for_backward_

    rng = np.random.default_rng(3)
    hidden = 5
    pre = rng.standard_normal((rows, 4 * hidden))
    prev_c = rng.standard_normal((rows, hidden))

    def gate_rows():
        wide = rng.standard_normal((rows, 8 * hidden))
        if layout == "contiguous":
            return wide, pre.copy()
        wide[:, ::2] = pre
        return wide, wide[:, ::2]

    wide, gates = gate_rows()
    between = wide[:, 1::2].copy()
    assert gates.flags.c_contiguous == (layout == "contiguous")
    assert np.array_equal(by_gate(gates)[2, -1], gates[-1, 2 * hidden : 3 * hidden])
    c, tanh_c, h = (np.empty((rows, hidden)) for _ in range(3))
    lstm_activate_(gates, prev_c, c, tanh_c, h)

    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    i, f, o = (sig(pre[:, k * hidden : (k + 1) * hidden]) for k in range(3))
    g = np.tanh(pre[:, 3 * hidden :])
    expected_c = f * prev_c + i * g
    np.testing.assert_allclose(gates, np.hstack([i, f, o, g]), rtol=1e-12)
    np.testing.assert_allclose(c, expected_c, rtol=1e-12)
    np.testing.assert_allclose(tanh_c, np.tanh(expected_c), rtol=1e-12)
    np.testing.assert_allclose(h, o * np.tanh(expected_c), rtol=1e-12)
    if layout == "strided":
        assert np.array_equal(wide[:, 1::2], between)

    wide, factors = gate_rows()
    between = wide[:, 1::2].copy()
    fused = [np.empty((rows, hidden)) for _ in range(4)]
    lstm_activate_for_backward_(factors, prev_c, *fused)
    assert np.array_equal(fused[0], c) and np.array_equal(fused[1], h)
    np.testing.assert_allclose(fused[2], o * (1 - np.tanh(expected_c) ** 2), rtol=1e-12)
    assert np.array_equal(fused[3], gates[:, hidden : 2 * hidden])  # the forget gate itself
    expected_factors = np.hstack([i * (1 - i) * g, f * (1 - f) * prev_c,
                                  o * (1 - o) * np.tanh(expected_c), (1 - g**2) * i])
    np.testing.assert_allclose(factors, expected_factors, rtol=1e-10, atol=1e-15)
    if layout == "strided":
        assert np.array_equal(wide[:, 1::2], between)


def test_a_gate_array_must_hold_four_gates():
    from capx.cells.lstm import by_gate

    with pytest.raises(ValueError, match="4H columns"):
        by_gate(np.zeros((2, 10)))


def test_loss_is_float32_and_grads_flat_by_default():
    model = CaptioningRNN({"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3}, input_dim=5,
                          wordvec_dim=4, hidden_dim=3, seed=0)
    assert all(v.dtype == np.float32 for v in model.params.values())
    loss, grads = model.loss(np.ones((2, 5), np.float32), np.array([[1, 3, 2], [1, 2, 0]]))
    assert np.isfinite(loss)
    assert grads.flat.dtype == np.float32 and grads.flat.size == model.params.flat.size
    assert set(grads) == {"W_proj", "b_proj", "W_embed", "Wx", "Wh", "b", "W_vocab", "b_vocab"}


def test_params_assignment_writes_through_to_flat_buffer():
    model = CaptioningRNN({"<NULL>": 0, "a": 1}, input_dim=3, wordvec_dim=2, hidden_dim=2, seed=0)
    model.params["b"] = np.full(2, 7.0)
    assert np.count_nonzero(model.params.flat == 7.0) >= 2
    with pytest.raises(ValueError, match="shape"):
        model.params["b"] = np.zeros(3)


def test_unknown_cell_lists_registered_cells():
    with pytest.raises(ValueError, match="lstm.*rnn|rnn.*lstm"):
        CaptioningRNN(TOY_VOCAB, cell_type="transformer")


def test_param_counts():
    D, W, H = 5, 4, 3
    word_to_idx = {"<NULL>": 0} | {f"t{i}": i for i in range(1, 7)}
    V = len(word_to_idx)
    model = CaptioningRNN(word_to_idx, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type="lstm")
    counts = model.param_counts()
    assert counts["W_embed"] == V * W and counts["Wx"] == W * 4 * H and counts["Wh"] == H * 4 * H
    assert counts["total"] == D * H + H + V * W + W * 4 * H + H * 4 * H + 4 * H + H * V + V
    assert counts["group/recurrent"] == counts["Wx"] + counts["Wh"] + counts["b"]


class TestSampling:
    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "b": 4}

    def test_shapes_and_dtype(self):
        model = CaptioningRNN(self.vocab, input_dim=6, wordvec_dim=4, hidden_dim=5, seed=0)
        out = model.sample(np.random.RandomState(0).randn(3, 6), max_length=7)
        assert out.shape == (3, 7) and np.issubdtype(out.dtype, np.integer)
        assert out.min() >= 0 and out.max() < len(self.vocab)

    @pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
    def test_rows_stop_after_end(self, cell_type):
        """Hand-set weights: image 0 says <END> at once, image 1 says "a" until max_length."""
        model = CaptioningRNN(self.vocab, input_dim=2, wordvec_dim=3, hidden_dim=4,
                              cell_type=cell_type, seed=0)
        H = 4
        for k in model.params:
            model.params[k] = np.zeros_like(model.params[k])
        model.params["W_proj"] = np.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0]])
        wh = np.zeros((H, model.cell.gates * H))
        wh[:, -H:] = 3 * np.eye(H)  # the (candidate) state carries the sign of h forward
        model.params["Wh"] = wh
        if cell_type == "lstm":
            b = np.zeros(4 * H)
            b[:H] = b[2 * H:3 * H] = 10.0  # input and output gates open
            model.params["b"] = b
        w_vocab = np.zeros((H, 5))
        w_vocab[0, 2] = 10.0  # hidden unit 0 -> <END>
        w_vocab[1, 3] = 1.0   # hidden unit 1 -> "a"
        model.params["W_vocab"] = w_vocab
        model.params["b_vocab"] = np.array([0, 0, 0, 0.5, 0])
        features = np.array([[1.0, 0.0], [-1.0, 1.0]])
        out = model.sample(features, max_length=5)
        assert out[0].tolist() == [2, 0, 0, 0, 0]
        assert out[1].tolist() == [3, 3, 3, 3, 3]

    def test_greedy_matches_unrolled_argmax(self):
        model = CaptioningRNN(self.vocab, input_dim=6, wordvec_dim=4, hidden_dim=5,
                              cell_type="lstm", seed=2)
        features = np.random.RandomState(1).randn(4, 6).astype(np.float32)
        out = model.sample(features, max_length=6)
        state = model.initial_state(features)
        words = np.full(4, 1)
        for t in range(6):
            scores, state = model.step_scores(words, state)
            words = scores.argmax(axis=1)
            for row in range(4):
                if 2 not in out[row, :t]:
                    assert out[row, t] == words[row]


def test_packing_previous_equals_gather_through_prev_rows():
    from capx.packing import make_packing

    rng = np.random.RandomState(5)
    mask = random_problem(rng, N=9, T=8, V=5) != 0
    for pack in (True, False):
        packing = make_packing(mask, pack=pack)
        first = rng.randn(9, 3)
        rows = rng.randn(packing.num_rows, 3)
        expected = np.concatenate([first, rows])[packing.prev_rows]
        np.testing.assert_array_equal(packing.previous(first, rows), expected)
