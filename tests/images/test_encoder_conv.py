"""The fast NumPy convolutions of the image encoders equal the readable reference loop."""

from __future__ import annotations

import numpy as np
import pytest

from capx.encoders.conv import (conv2d, conv2d_reference, depthwise_conv2d, depthwise_to_hwc,
                                fold_batch_norm, pad_same, same_padding, to_hwio)


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (224, 3, 2, (0, 1)),   # TF puts the odd pixel after: the asymmetry the weights were trained with
    (112, 3, 1, (1, 1)),
    (56, 5, 2, (1, 2)),
    (7, 5, 1, (2, 2)),
    (5, 1, 1, (0, 0)),
    (9, 3, 2, (1, 1)),
])
def test_same_padding_matches_tensorflow(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected
    before, after = expected
    assert (size + before + after - kernel) // stride + 1 == -(-size // stride)


@pytest.mark.parametrize("kernel, stride, size", [(1, 1, 6), (3, 1, 7), (3, 2, 8), (3, 2, 7),
                                                  (5, 2, 9), (5, 1, 5)])
def test_dense_conv_equals_reference(kernel, stride, size):
    rng = np.random.default_rng(kernel * 10 + stride)
    x = rng.standard_normal((2, size, size + 1, 3)).astype(np.float32)
    w = rng.standard_normal((4, 3, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    fast = conv2d(x, to_hwio(w), b, stride=stride)
    np.testing.assert_allclose(fast, conv2d_reference(x, w, b, stride=stride), rtol=1e-5,
                               atol=1e-5)
    assert fast.shape == (2, -(-size // stride), -(-(size + 1) // stride), 4)


@pytest.mark.parametrize("kernel, stride, size", [(3, 1, 6), (3, 2, 7), (5, 2, 8), (5, 1, 5)])
def test_depthwise_conv_equals_reference(kernel, stride, size):
    rng = np.random.default_rng(kernel + stride)
    channels = 5
    x = rng.standard_normal((3, size, size, channels)).astype(np.float32)
    w = rng.standard_normal((channels, 1, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(channels).astype(np.float32)
    reference = conv2d_reference(x, w, b, stride=stride, groups=channels)
    for block_bytes in (1, 3 * size * channels * 4, 1 << 20):  # one row, a few rows, all
        fast = depthwise_conv2d(x, depthwise_to_hwc(w), b, stride=stride, block_bytes=block_bytes)
        np.testing.assert_allclose(fast, reference, rtol=1e-5, atol=1e-5)


def test_folded_batch_norm_equals_conv_then_batch_norm():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.standard_normal(4)
    mean, var = rng.standard_normal(4), rng.uniform(0.01, 3, 4)
    bn = (conv2d_reference(x, w).astype(np.float64) - mean) / np.sqrt(var + 1e-3) * gamma + beta
    folded_w, folded_b = fold_batch_norm(w, gamma, beta, mean, var, eps=1e-3)
    np.testing.assert_allclose(conv2d(x, to_hwio(folded_w), folded_b, stride=1), bn,
                               rtol=1e-4, atol=1e-4)


def test_pad_same_pads_after_for_odd_totals():
    x = np.ones((1, 4, 4, 1), np.float32)
    padded = pad_same(x, 3, 2)  # out 2, total padding 1: all of it after
    assert padded.shape == (1, 5, 5, 1)
    assert padded[0, -1].sum() == 0 and padded[0, 0].sum() == 4
