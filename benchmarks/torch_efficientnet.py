"""EfficientNet-Lite0 in PyTorch, built from ``torch.nn`` layers: the reference for capx's NumPy
encoder (tests) and its speed baseline (``benchmarks.bench_encoder``).

Written from the architecture, not taken from the weights package: TF "same" padding as an
explicit ``ZeroPad2d`` (odd pixel after), BN eps 1e-3, ReLU6, no squeeze-and-excitation. Its
parameter names are the package's, with each convolution one level down (``_conv_stem.1.weight``
for ``_conv_stem.weight``), so :func:`build_lite0` loads that state dict with ``strict=True``.
torch is optional (the ``bench`` extra); importing this module without it raises ImportError.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

from capx.encoders.efficientnet_lite0 import block_specs


class SameConv(nn.Sequential):
    """TF "same" padding (odd pixel after) then an unpadded convolution."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1, size=224):
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        super().__init__(nn.ZeroPad2d((total // 2, total - total // 2) * 2),
                         nn.Conv2d(cin, cout, kernel, stride, groups=groups, bias=False))


class Block(nn.Module):
    def __init__(self, spec, size):
        super().__init__()
        mid = spec.in_channels * spec.expand
        self.spec = spec
        if spec.expand != 1:
            self._expand_conv = SameConv(spec.in_channels, mid, 1, size=size)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
        self._depthwise_conv = SameConv(mid, mid, spec.kernel, spec.stride, mid, size)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self._project_conv = SameConv(mid, spec.out_channels, 1, size=-(-size // spec.stride))
        self._bn2 = nn.BatchNorm2d(spec.out_channels, eps=1e-3)

    def forward(self, x):
        h = x
        if self.spec.expand != 1:
            h = nn.functional.relu6(self._bn0(self._expand_conv(h)))
        h = nn.functional.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.spec.residual else h


class Lite0(nn.Module):
    def __init__(self):
        super().__init__()
        self._conv_stem, self._bn0 = SameConv(3, 32, 3, 2), nn.BatchNorm2d(32, eps=1e-3)
        blocks, size = [], 112
        for spec in block_specs():
            blocks.append(Block(spec, size))
            size = -(-size // spec.stride)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1, size=7)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x):
        x = nn.functional.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return nn.functional.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))


def torch_state_dict(state: Mapping[str, np.ndarray]) -> dict[str, "torch.Tensor"]:
    """The package's state dict (NumPy arrays) under this module's names."""
    out = {}
    for key, value in state.items():
        if key in ("_conv_stem.weight", "_conv_head.weight") or key.endswith("conv.weight"):
            key = key[: -len("weight")] + "1.weight"
        out[key] = torch.from_numpy(np.array(value))
    return out


def build_lite0(state: Mapping[str, np.ndarray]) -> Lite0:
    """The model in eval mode with the weights of ``state``; forward takes NCHW float32."""
    model = Lite0().eval()
    model.load_state_dict(torch_state_dict(state), strict=True)
    return model
