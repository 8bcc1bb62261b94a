"""Update rules: CS231n reference values and registry lookup."""

import numpy as np
import pytest

from capx.gradcheck import rel_error
from capx.optim import adam, rmsprop, sgd, sgd_momentum
from capx.registry import UPDATE_RULES

N, D = 4, 5


def grid(lo, hi):
    return np.linspace(lo, hi, num=N * D).reshape(N, D)


def test_sgd():
    w, dw = grid(-0.4, 0.6), grid(-0.6, 0.4)
    next_w, config = sgd(w.copy(), dw, {"learning_rate": 0.1})
    np.testing.assert_allclose(next_w, w - 0.1 * dw)
    assert sgd(w.copy(), dw)[1]["learning_rate"] == 1e-2


def test_sgd_momentum_known_values():
    w, dw, v = grid(-0.4, 0.6), grid(-0.6, 0.4), grid(0.6, 0.9)
    next_w, config = sgd_momentum(w, dw, {"learning_rate": 1e-3, "velocity": v})
    expected_next_w = np.asarray([
        [0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
        [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
        [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
        [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096]])
    expected_velocity = np.asarray([
        [0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
        [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
        [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
        [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096]])
    assert rel_error(next_w, expected_next_w) < 1e-8
    assert rel_error(config["velocity"], expected_velocity) < 1e-8


def test_rmsprop_known_values():
    w, dw, cache = grid(-0.4, 0.6), grid(-0.6, 0.4), grid(0.6, 0.9)
    next_w, config = rmsprop(w, dw, {"learning_rate": 1e-2, "cache": cache})
    expected_next_w = np.asarray([
        [-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
        [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
        [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
        [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619]])
    expected_cache = np.asarray([
        [0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
        [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
        [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
        [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8925999]])
    assert rel_error(next_w, expected_next_w) < 1e-7
    assert rel_error(config["cache"], expected_cache) < 1e-7


def test_adam_known_values():
    w, dw, m, v = grid(-0.4, 0.6), grid(-0.6, 0.4), grid(0.6, 0.9), grid(0.7, 0.5)
    next_w, config = adam(w, dw, {"learning_rate": 1e-2, "m": m, "v": v, "t": 5})
    expected_next_w = np.asarray([
        [-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
        [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
        [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
        [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]])
    expected_v = np.asarray([
        [0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
        [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
        [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
        [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966]])
    expected_m = np.asarray([
        [0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
        [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
        [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
        [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85]])
    assert rel_error(next_w, expected_next_w) < 1e-6  # the reference has 8 decimals
    assert rel_error(config["v"], expected_v) < 1e-7
    assert rel_error(config["m"], expected_m) < 1e-7
    assert config["t"] == 6


@pytest.mark.parametrize("rule", [sgd, sgd_momentum, rmsprop, adam])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rules_descend_a_quadratic_and_keep_dtype(rule, dtype):
    w = np.full(3, 5.0, dtype=dtype)
    config = {"learning_rate": 0.1}
    for _ in range(200):
        w, config = rule(w, 2 * w, config)  # gradient of sum(w ** 2)
    assert w.dtype == dtype
    assert np.all(np.abs(w) < 1.0)


def test_registry_has_all_rules():
    assert {"sgd", "sgd_momentum", "rmsprop", "adam"} <= set(UPDATE_RULES.names())
    assert UPDATE_RULES.get("adam") is adam


def test_adam_blocks_equal_one_pass_and_handle_strided_input():
    """The blocked, in-place Adam equals the textbook formula, also across block edges."""
    from capx import optim

    rng = np.random.RandomState(0)
    size = optim.ADAM_BLOCK * 2 + 123
    w, m, v = rng.randn(size), rng.randn(size), rng.rand(size)
    dw = rng.randn(size)
    config = {"learning_rate": 1e-2, "m": m.copy(), "v": v.copy(), "t": 3}
    next_w, config = adam(w.copy(), dw, config)
    m1 = 0.9 * m + 0.1 * dw
    v1 = 0.999 * v + 0.001 * dw * dw
    expected = w - 1e-2 * (m1 / (1 - 0.9**4)) / (np.sqrt(v1 / (1 - 0.999**4)) + 1e-8)
    np.testing.assert_allclose(next_w, expected, rtol=1e-12)
    strided = np.arange(20.0).reshape(4, 5)[:, ::2]
    out, _ = adam(strided, np.ones_like(strided), {"learning_rate": 0.5})
    np.testing.assert_allclose(out, strided - 0.5, rtol=1e-6)
