"""The image-bytes model's input: what it takes and the errors for what it cannot."""

from __future__ import annotations

import pandas as pd
import pytest

from capx.images.bytes_model import SIGNATURE, image_bytes_column


def test_it_takes_a_dataframe_column_a_dict_a_list_or_one_image():
    png, jpeg = b"\x89PNG...", b"\xff\xd8\xff..."
    assert image_bytes_column(pd.DataFrame({"image": [png, jpeg]})) == [png, jpeg]
    assert image_bytes_column({"image": [png]}) == [png]
    assert image_bytes_column([png, bytearray(jpeg)]) == [png, jpeg]
    assert image_bytes_column(png) == [png]


def test_a_missing_column_or_a_path_instead_of_bytes_is_a_clear_error():
    with pytest.raises(ValueError, match=r"column 'image' of encoded image bytes; got columns "
                                         r"\['photo'\]"):
        image_bytes_column(pd.DataFrame({"photo": [b"x"]}))
    with pytest.raises(ValueError, match=r"row 1 of 'image' is a str, not the bytes of an image "
                                         r"file: pass open\(path, 'rb'\).read\(\)"):
        image_bytes_column(pd.DataFrame({"image": [b"x", "photo.jpg"]}))


def test_the_signature_names_the_column_and_the_decoder_params():
    assert SIGNATURE.inputs.input_names() == ["image"]
    assert {p.name for p in SIGNATURE.params} == {"decoder", "beam_width"}
