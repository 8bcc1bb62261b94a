"""Convolutions for the image encoders: a readable reference and the fast NumPy versions.

Activations are NHWC float32 (channels last, so a 1x1 convolution is one GEMM and a depthwise
tap is one broadcast multiply-add). Padding is TensorFlow's "same": the output has
``ceil(size / stride)`` positions and any odd padding goes after (bottom / right), as in the
TF-trained EfficientNet weights. :func:`conv2d_reference` is the plain loop a reader can check
by hand; the fast functions are tested equal to it.
"""

from __future__ import annotations

import numpy as np

DEPTHWISE_BLOCK_BYTES = 256 * 1024  # output rows per step of the depthwise loop: about L2 size

def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF "same" for one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """``x`` (N, H, W, C) zero-padded for a TF "same" convolution."""
    top, bottom = same_padding(x.shape[1], kernel, stride)
    left, right = same_padding(x.shape[2], kernel, stride)
    if not (top or bottom or left or right):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def conv2d_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: int = 1,
                     groups: int = 1) -> np.ndarray:
    """The definition, one output value at a time: ``x`` (N, H, W, C), ``w`` (O, C/groups, k, k)
    in PyTorch's layout, TF "same" padding. Slow; for tests and for reading."""
    out_channels, group_in, k, _ = w.shape
    xp = pad_same(x, k, stride)
    n, height, width = x.shape[0], -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    group_out = out_channels // groups
    y = np.zeros((n, height, width, out_channels), dtype=np.float64)
    for o in range(out_channels):
        first_in = (o // group_out) * group_in
        for i in range(height):
            for j in range(width):
                window = xp[:, i * stride:i * stride + k, j * stride:j * stride + k,
                            first_in:first_in + group_in]          # (N, k, k, C/groups)
                y[:, i, j, o] = np.einsum("nabc,cab->n", window, w[o])
        if b is not None:
            y[..., o] += b[o]
    return y.astype(x.dtype)


def _windows(xp: np.ndarray, kernel: int, stride: int, height: int, width: int):
    """The strided view of each kernel tap (dy, dx): (N, height, width, C) each."""
    for dy in range(kernel):
        for dx in range(kernel):
            yield dy, dx, xp[:, dy:dy + stride * height:stride, dx:dx + stride * width:stride, :]


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int = 1) -> np.ndarray:
    """A dense convolution as im2col + one GEMM; ``w`` is (k, k, C, O) (see :func:`to_hwio`)."""
    k, _, channels, out_channels = w.shape
    if k == 1 and stride == 1:
        y = x.reshape(-1, channels) @ w.reshape(channels, out_channels)
        y = y.reshape(*x.shape[:3], out_channels)
    else:
        xp = pad_same(x, k, stride)
        height, width = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
        columns = np.empty((x.shape[0], height, width, k, k, channels), dtype=x.dtype)
        for dy, dx, window in _windows(xp, k, stride, height, width):
            columns[:, :, :, dy, dx, :] = window
        y = columns.reshape(-1, k * k * channels) @ w.reshape(k * k * channels, out_channels)
        y = y.reshape(x.shape[0], height, width, out_channels)
    if b is not None:
        y += b
    return y


def depthwise_conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int = 1,
                     block_bytes: int = DEPTHWISE_BLOCK_BYTES) -> np.ndarray:
    """One filter per channel, as k*k broadcast multiply-adds over channels-last windows (no
    im2col copy); ``w`` is (k, k, C). The output is built a few rows of one image at a time
    (about ``block_bytes``), so the running sum stays in cache across the taps: about twice
    as fast as whole-batch passes, which are memory-bound."""
    k = w.shape[0]
    xp = pad_same(x, k, stride)
    height, width = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    y = np.empty((x.shape[0], height, width, x.shape[3]), dtype=x.dtype)
    rows = max(1, block_bytes // (width * x.shape[3] * x.itemsize))
    for n in range(x.shape[0]):
        for top in range(0, height, rows):
            bottom = min(height, top + rows)
            out = y[n:n + 1, top:bottom]
            scratch = np.empty_like(out)
            source = xp[n:n + 1, top * stride:(bottom - 1) * stride + k]
            for dy, dx, window in _windows(source, k, stride, bottom - top, width):
                if dy == 0 and dx == 0:
                    np.multiply(window, w[0, 0], out=out)
                else:
                    np.multiply(window, w[dy, dx], out=scratch)
                    out += scratch
            if b is not None:
                out += b
    return y


def to_hwio(w: np.ndarray) -> np.ndarray:
    """PyTorch's (O, C, k, k) kernel as (k, k, C, O), the layout :func:`conv2d` multiplies."""
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def depthwise_to_hwc(w: np.ndarray) -> np.ndarray:
    """PyTorch's depthwise (C, 1, k, k) kernel as (k, k, C)."""
    return np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))


def relu6(x: np.ndarray) -> np.ndarray:
    """min(max(x, 0), 6), in place."""
    return np.clip(x, 0.0, 6.0, out=x)


def fold_batch_norm(w: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
                    var: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """A convolution (PyTorch layout, output channels first) followed by inference-time batch
    norm, as one convolution with a bias: w * s, beta - mean * s with s = gamma / sqrt(var+eps)."""
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    folded = w.astype(np.float64) * scale.reshape(-1, *([1] * (w.ndim - 1)))
    bias = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return folded.astype(np.float32), bias.astype(np.float32)
