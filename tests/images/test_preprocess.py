"""Preprocessing as coco-mini's README states: RGB, shorter side 256 bicubic (longer side
rounded), centre crop 224, (x - 127) / 128."""

from __future__ import annotations

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image", reason="preprocessing needs Pillow (the images extra)")

from capx.encoders.preprocess import ImageReadError, open_image, preprocess_image  # noqa: E402


def test_preprocessing_follows_coco_minis_recipe():
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (250, 333, 3), dtype=np.uint8)  # 333 * 256/250 = 340.99
    resized = Image.fromarray(picture).resize((341, 256), Image.BICUBIC)
    crop = np.asarray(resized.crop((58, 16, 282, 240)), dtype=np.float32)
    out = preprocess_image(picture)
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, (crop - 127) / 128)


def test_grey_and_transparent_images_become_rgb(tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((300, 260), 200, np.uint8), mode="L").save(grey)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((260, 300, 4), 90, np.uint8), mode="RGBA").save(rgba)
    for path, level in ((grey, 200), (rgba, 90)):
        out = preprocess_image(open_image(path))
        np.testing.assert_allclose(out, (level - 127) / 128, atol=1e-6)


def test_an_undecodable_file_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.jpg"
    buffer = tmp_path / "whole.jpg"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buffer)
    path.write_bytes(buffer.read_bytes()[:100])  # a truncated JPEG
    with pytest.raises(ImageReadError, match="cannot decode image .*cut.jpg"):
        open_image(path)
