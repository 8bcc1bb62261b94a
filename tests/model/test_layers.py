"""Layers: known values from the CS231n notebooks and numerical gradient checks in float64."""

import numpy as np
import pytest

from capx.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from capx.layers import (
    affine_backward, affine_forward, lstm_backward, lstm_forward, lstm_step_backward,
    lstm_step_forward, rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward,
    temporal_affine_backward, temporal_affine_forward, temporal_softmax_loss,
    word_embedding_backward, word_embedding_forward,
)

RNG = np.random.RandomState(231)


def check_grads(f, inputs, grads, dout, tol=1e-7):
    """Compare analytic grads of sum(f(*inputs) * dout) against centred differences."""
    for i, (x, analytic) in enumerate(zip(inputs, grads)):
        def fx(value, i=i):
            args = list(inputs)
            args[i] = value
            return f(*args)
        numeric = eval_numerical_gradient_array(fx, x, dout)
        assert rel_error(numeric, analytic) < tol, f"input {i}"


def test_rnn_step_forward_known_values():
    N, D, H = 3, 10, 4
    x = np.linspace(-0.4, 0.7, num=N * D).reshape(N, D)
    prev_h = np.linspace(-0.2, 0.5, num=N * H).reshape(N, H)
    Wx = np.linspace(-0.1, 0.9, num=D * H).reshape(D, H)
    Wh = np.linspace(-0.3, 0.7, num=H * H).reshape(H, H)
    b = np.linspace(-0.2, 0.4, num=H)
    next_h, _ = rnn_step_forward(x, prev_h, Wx, Wh, b)
    expected = np.asarray([
        [-0.58172089, -0.50182032, -0.41232771, -0.31410098],
        [0.66854692, 0.79562378, 0.87755553, 0.92795967],
        [0.97934501, 0.99144213, 0.99646691, 0.99854353]])
    assert rel_error(expected, next_h) < 1e-7


def test_rnn_forward_known_values():
    N, T, D, H = 2, 3, 4, 5
    x = np.linspace(-0.1, 0.3, num=N * T * D).reshape(N, T, D)
    h0 = np.linspace(-0.3, 0.1, num=N * H).reshape(N, H)
    Wx = np.linspace(-0.2, 0.4, num=D * H).reshape(D, H)
    Wh = np.linspace(-0.4, 0.1, num=H * H).reshape(H, H)
    b = np.linspace(-0.7, 0.1, num=H)
    h, _ = rnn_forward(x, h0, Wx, Wh, b)
    expected = np.asarray([
        [[-0.42070749, -0.27279261, -0.11074945, 0.05740409, 0.22236251],
         [-0.39525808, -0.22554661, -0.0409454, 0.14649412, 0.32397316],
         [-0.42305111, -0.24223728, -0.04287027, 0.15997045, 0.35014525]],
        [[-0.55857474, -0.39065825, -0.19198182, 0.02378408, 0.23735671],
         [-0.27150199, -0.07088804, 0.13562939, 0.33099728, 0.50158768],
         [-0.51014825, -0.30524429, -0.06755202, 0.17806392, 0.40333043]]])
    assert rel_error(expected, h) < 1e-7


def test_lstm_step_forward_matches_textbook_formula():
    """Gates i, f, o, g from one 4H pre-activation, with the logistic written as 1/(1+e^-x)."""
    N, D, H = 3, 4, 5
    x = np.linspace(-0.4, 1.2, num=N * D).reshape(N, D)
    prev_h = np.linspace(-0.3, 0.7, num=N * H).reshape(N, H)
    prev_c = np.linspace(-0.4, 0.9, num=N * H).reshape(N, H)
    Wx = np.linspace(-2.1, 1.3, num=4 * D * H).reshape(D, 4 * H)
    Wh = np.linspace(-0.7, 2.2, num=4 * H * H).reshape(H, 4 * H)
    b = np.linspace(0.3, 0.7, num=4 * H)
    next_h, next_c, _ = lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
    a = x @ Wx + prev_h @ Wh + b
    logistic = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    i, f, o = (logistic(a[:, k * H:(k + 1) * H]) for k in range(3))
    expected_c = f * prev_c + i * np.tanh(a[:, 3 * H:])
    assert rel_error(expected_c, next_c) < 1e-12
    assert rel_error(o * np.tanh(expected_c), next_h) < 1e-12
    assert next_h[0, :4] == pytest.approx([0.24635157, 0.28610883, 0.32240467, 0.35525807], abs=1e-8)


def test_lstm_forward_known_values():
    N, D, H, T = 2, 5, 4, 3
    x = np.linspace(-0.4, 0.6, num=N * T * D).reshape(N, T, D)
    h0 = np.linspace(-0.4, 0.8, num=N * H).reshape(N, H)
    Wx = np.linspace(-0.2, 0.9, num=4 * D * H).reshape(D, 4 * H)
    Wh = np.linspace(-0.3, 0.6, num=4 * H * H).reshape(H, 4 * H)
    b = np.linspace(0.2, 0.7, num=4 * H)
    h, _ = lstm_forward(x, h0, Wx, Wh, b)
    expected = np.asarray([
        [[0.01764008, 0.01823233, 0.01882671, 0.0194232],
         [0.11287491, 0.12146228, 0.13018446, 0.13902939],
         [0.31358768, 0.33338627, 0.35304453, 0.37250975]],
        [[0.45767879, 0.4761092, 0.4936887, 0.51041945],
         [0.6704845, 0.69350089, 0.71486014, 0.7346449],
         [0.81733511, 0.83677871, 0.85403753, 0.86935314]]])
    assert rel_error(expected, h) < 1e-7


def test_word_embedding_forward_known_values():
    V, D = 5, 3
    x = np.asarray([[0, 3, 1, 2], [2, 1, 0, 3]])
    W = np.linspace(0, 1, num=V * D).reshape(V, D)
    out, _ = word_embedding_forward(x, W)
    expected = np.asarray([
        [[0., 0.07142857, 0.14285714], [0.64285714, 0.71428571, 0.78571429],
         [0.21428571, 0.28571429, 0.35714286], [0.42857143, 0.5, 0.57142857]],
        [[0.42857143, 0.5, 0.57142857], [0.21428571, 0.28571429, 0.35714286],
         [0., 0.07142857, 0.14285714], [0.64285714, 0.71428571, 0.78571429]]])
    assert rel_error(expected, out) < 1e-7


def test_rnn_step_backward_matches_numerical():
    N, D, H = 4, 5, 6
    x, h, Wx, Wh, b = (RNG.randn(*s) for s in [(N, D), (N, H), (D, H), (H, H), (H,)])
    out, cache = rnn_step_forward(x, h, Wx, Wh, b)
    dnext = RNG.randn(*out.shape)
    dx, dh, dWx, dWh, db = rnn_step_backward(dnext, cache)
    check_grads(lambda *a: rnn_step_forward(*a)[0], [x, h, Wx, Wh, b], [dx, dh, dWx, dWh, db], dnext)


@pytest.mark.parametrize("forward,backward,gates", [(rnn_forward, rnn_backward, 1),
                                                    (lstm_forward, lstm_backward, 4)])
def test_sequence_backward_matches_numerical(forward, backward, gates):
    N, D, T, H = 2, 3, 10, 5
    x, h0 = RNG.randn(N, T, D), RNG.randn(N, H)
    Wx, Wh, b = RNG.randn(D, gates * H), RNG.randn(H, gates * H), RNG.randn(gates * H)
    out, cache = forward(x, h0, Wx, Wh, b)
    dout = RNG.randn(*out.shape)
    dx, dh0, dWx, dWh, db = backward(dout, cache)
    check_grads(lambda *a: forward(*a)[0], [x, h0, Wx, Wh, b], [dx, dh0, dWx, dWh, db], dout)


def test_lstm_step_backward_matches_numerical():
    N, D, H = 4, 5, 6
    x, prev_h, prev_c = RNG.randn(N, D), RNG.randn(N, H), RNG.randn(N, H)
    Wx, Wh, b = RNG.randn(D, 4 * H), RNG.randn(H, 4 * H), RNG.randn(4 * H)
    next_h, next_c, cache = lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
    dnext_h, dnext_c = RNG.randn(*next_h.shape), RNG.randn(*next_c.shape)
    grads = lstm_step_backward(dnext_h, dnext_c, cache)
    inputs = [x, prev_h, prev_c, Wx, Wh, b]
    for i, analytic in enumerate(grads):
        def fh(v, i=i):
            args = list(inputs); args[i] = v
            return lstm_step_forward(*args)[0]

        def fc(v, i=i):
            args = list(inputs); args[i] = v
            return lstm_step_forward(*args)[1]
        numeric = (eval_numerical_gradient_array(fh, inputs[i], dnext_h)
                   + eval_numerical_gradient_array(fc, inputs[i], dnext_c))
        assert rel_error(numeric, analytic) < 1e-7, f"input {i}"


def test_sequence_layers_match_their_step_functions():
    """The sequence layers equal a plain loop over the step functions."""
    N, D, T, H = 3, 4, 6, 5
    x, h0 = RNG.randn(N, T, D), RNG.randn(N, H)
    Wx, Wh, b = RNG.randn(D, 4 * H), RNG.randn(H, 4 * H), RNG.randn(4 * H)
    h, c = h0, np.zeros_like(h0)
    expected = []
    for t in range(T):
        h, c, _ = lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        expected.append(h)
    np.testing.assert_allclose(lstm_forward(x, h0, Wx, Wh, b)[0], np.stack(expected, 1), rtol=1e-12)
    h, expected = h0, []
    for t in range(T):
        h, _ = rnn_step_forward(x[:, t], h, Wx[:, :H], Wh[:, :H], b[:H])
        expected.append(h)
    np.testing.assert_allclose(rnn_forward(x, h0, Wx[:, :H], Wh[:, :H], b[:H])[0],
                               np.stack(expected, 1), rtol=1e-12)


def test_backward_does_not_modify_upstream_gradient():
    x, h0 = RNG.randn(1, 4, 3), RNG.randn(1, 5)
    Wx, Wh, b = RNG.randn(3, 20), RNG.randn(5, 20), RNG.randn(20)
    out, cache = lstm_forward(x, h0, Wx, Wh, b)
    dout = RNG.randn(*out.shape)
    kept = dout.copy()
    first = lstm_backward(dout, cache)
    second = lstm_backward(dout, cache)
    np.testing.assert_array_equal(dout, kept)
    for a, b_ in zip(first, second):
        np.testing.assert_array_equal(a, b_)


def test_word_embedding_backward_matches_numerical():
    N, T, V, D = 50, 3, 5, 6
    x = RNG.randint(V, size=(N, T))
    W = RNG.randn(V, D)
    out, cache = word_embedding_forward(x, W)
    dout = RNG.randn(*out.shape)
    dW = word_embedding_backward(dout, cache)
    numeric = eval_numerical_gradient_array(lambda w: word_embedding_forward(x, w)[0], W, dout)
    assert rel_error(numeric, dW) < 1e-9
    expected = np.zeros_like(W)
    np.add.at(expected, x.reshape(-1), dout.reshape(-1, D))
    np.testing.assert_allclose(dW, expected, rtol=1e-12)


def test_temporal_affine_and_affine_backward_match_numerical():
    N, T, D, M = 2, 3, 4, 5
    x, w, b = RNG.randn(N, T, D), RNG.randn(D, M), RNG.randn(M)
    out, cache = temporal_affine_forward(x, w, b)
    dout = RNG.randn(*out.shape)
    check_grads(lambda *a: temporal_affine_forward(*a)[0], [x, w, b],
                list(temporal_affine_backward(dout, cache)), dout)
    x2 = RNG.randn(N, D)
    out2, cache2 = affine_forward(x2, w, b)
    dout2 = RNG.randn(*out2.shape)
    check_grads(lambda *a: affine_forward(*a)[0], [x2, w, b],
                list(affine_backward(dout2, cache2)), dout2)


def check_loss(N, T, V, p):
    x = 0.001 * np.random.randn(N, T, V)
    y = np.random.randint(V, size=(N, T))
    mask = np.random.rand(N, T) <= p
    return temporal_softmax_loss(x, y, mask)[0]


def test_temporal_softmax_loss_sanity_values():
    """CS231n sanity checks: ~log(V) per step, zero mask weight, partial mask."""
    np.random.seed(231)
    assert abs(check_loss(100, 1, 10, 1.0) - 2.3) < 0.01
    assert abs(check_loss(100, 10, 10, 1.0) - 23) < 0.1
    assert abs(check_loss(5000, 10, 10, 0.1) - 2.3) < 0.05


def test_temporal_softmax_loss_gradient_and_mask():
    N, T, V = 7, 8, 9
    x = RNG.randn(N, T, V)
    y = RNG.randint(V, size=(N, T))
    mask = RNG.rand(N, T) > 0.5
    loss, dx = temporal_softmax_loss(x, y, mask, verbose=False)
    numeric = eval_numerical_gradient(lambda v: temporal_softmax_loss(v, y, mask)[0], x, verbose=False)
    assert rel_error(numeric, dx) < 1e-7
    assert np.all(dx[~mask] == 0), "masked positions must add nothing to the gradient"
    x_changed = x.copy()
    x_changed[~mask] += 100.0
    assert temporal_softmax_loss(x_changed, y, mask)[0] == pytest.approx(loss, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_keep_their_dtype(dtype):
    x = RNG.randn(2, 3, 4).astype(dtype)
    h0 = RNG.randn(2, 5).astype(dtype)
    Wx, Wh, b = (RNG.randn(*s).astype(dtype) for s in [(4, 20), (5, 20), (20,)])
    h, cache = lstm_forward(x, h0, Wx, Wh, b)
    assert h.dtype == dtype
    assert all(g.dtype == dtype for g in lstm_backward(np.ones_like(h), cache))
    h, cache = rnn_forward(x, h0, Wx[:, :5], Wh[:, :5], b[:5])
    assert h.dtype == dtype and rnn_backward(h, cache)[0].dtype == dtype
    scores = RNG.randn(2, 3, 6).astype(dtype)
    loss, dx = temporal_softmax_loss(scores, np.zeros((2, 3), int), np.ones((2, 3), bool))
    assert dx.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row_shape", [(), (1,), (2,), (33,), (4, 3)])
def test_scatter_add_rows_is_add_at_bit_for_bit(row_shape, dtype):
    """Rounds of distinct ids and one reduction per frequent id add in np.add.at's order:
    the same bits (signed zeros included), with ids rarer and more frequent than
    HEAVY_ID_COUNT, and none at all."""
    from capx.ops import HEAVY_ID_COUNT, scatter_add_rows

    rng = np.random.default_rng(7)
    for size, num_rows in [(0, 9), (1, 9), (500, 300), (500, 3), (40, 1000)]:
        indices = (rng.zipf(1.3, size=size) - 1) % num_rows  # a few ids very often, many once
        values = rng.standard_normal((size,) + row_shape).astype(dtype)
        values[::7] = -0.0  # add.at turns a sum of negative zeros into +0.0
        expected = np.zeros((num_rows,) + row_shape, dtype=dtype)
        np.add.at(expected, indices, values)
        got = scatter_add_rows(indices, values, num_rows)
        assert got.dtype == dtype and np.array_equal(got, expected)
        assert np.array_equal(np.signbit(got), np.signbit(expected))
        if size == 500:
            assert np.bincount(indices).max() > HEAVY_ID_COUNT  # both ways are exercised
        # row shapes () and (1,) take add.at itself: a reduction of one number per row would
        # run along the contiguous axis, pairwise, and differ in the last bits
        strided = np.repeat(values, 2, axis=0)[::2]  # the same values, not contiguous
        assert np.array_equal(scatter_add_rows(indices, strided, num_rows), expected)


def test_scatter_add_rows_refuses_ids_it_cannot_place():
    from capx.ops import scatter_add_rows

    values = np.ones((3, 2))
    for indices, message in [(np.array([0, 1]), "one id per row"),
                             (np.array([[0, 1, 2]]), "1-D"),
                             (np.array([0, -1, 2]), r"in \[0, 4\)"),
                             (np.array([0, 4, 2]), r"in \[0, 4\)")]:
        with pytest.raises(ValueError, match=message):
            scatter_add_rows(indices, values, 4)


@pytest.mark.parametrize("cell_type,gates", [("rnn", 1), ("lstm", 4)])
def test_reference_captioning_loss_gradients_match_numerical(cell_type, gates):
    """capx.reference.captioning_loss, <NULL> (id 0) as padding and inside a caption."""
    from capx.reference import captioning_loss

    N, D, W, H, V = 3, 4, 3, 5, 6
    params = {"W_proj": RNG.randn(D, H), "b_proj": RNG.randn(H), "W_embed": RNG.randn(V, W),
              "Wx": RNG.randn(W, gates * H), "Wh": RNG.randn(H, gates * H) * 0.5,
              "b": RNG.randn(gates * H), "W_vocab": RNG.randn(H, V), "b_vocab": RNG.randn(V)}
    features = RNG.randn(N, D)
    captions = np.array([[1, 4, 0, 5, 2], [1, 3, 2, 0, 0], [1, 0, 0, 0, 0]])
    loss, grads = captioning_loss(params, features, captions, cell_type)
    assert set(grads) == set(params)
    for name, value in params.items():
        numeric = eval_numerical_gradient(
            lambda _: captioning_loss(params, features, captions, cell_type)[0], value,
            verbose=False)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-9, err_msg=name)
