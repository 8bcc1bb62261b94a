"""The blind dataset: real captions, constant features, a stable split without coco-mini images."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from capx.data import DataError
from capx.datasets.blind import blind, excluded_image_ids, is_val_image
from capx.registry import DATASETS


def _write_captions(path: Path, image_ids: list[int], per_image: int = 2) -> Path:
    annotations = [{"id": 1000 * i + k, "image_id": i, "caption": f"caption {k} of image {i}."}
                   for i in image_ids for k in range(per_image)]
    images = [{"id": i, "file_name": f"{i:012d}.jpg"} for i in image_ids]
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def test_split_follows_the_md5_rule_and_is_stable(tmp_path):
    ids = list(range(1, 201))
    captions = _write_captions(tmp_path / "caps.json", ids)
    first = blind(captions, exclude_files=[], val_percent=20)
    again = blind(captions, exclude_files=[], val_percent=20)
    assert first.val.image_ids.tolist() == again.val.image_ids.tolist()
    expected_val = [i for i in ids if int(hashlib.md5(str(i).encode()).hexdigest(), 16) % 100 < 20]
    assert first.val.image_ids.tolist() == expected_val
    assert set(first.train.image_ids) | set(first.val.image_ids) == set(ids)
    assert not set(first.train.image_ids) & set(first.val.image_ids)
    assert len(first.train.captions) == 2 * first.train.num_images


def test_features_are_one_constant_row_per_image(tmp_path):
    captions = _write_captions(tmp_path / "caps.json", list(range(1, 41)))
    data = blind(captions, exclude_files=[], feature_dim=5, feature_value=0.5)
    for split in (data.train, data.val):
        assert split.features.shape == (split.num_images, 5)
        assert split.features.dtype == np.float32
        assert np.all(split.features == 0.5)
    assert data.feature_dim == 5


def test_excluded_files_remove_their_images(tmp_path):
    captions = _write_captions(tmp_path / "caps.json", list(range(1, 61)))
    exclude = _write_captions(tmp_path / "other.json", [3, 7, 11, 999])
    data = blind(captions, exclude_files=[str(exclude)])
    kept = set(data.train.image_ids) | set(data.val.image_ids)
    assert kept == set(range(1, 61)) - {3, 7, 11}
    assert data.info["excluded_images"] == 3


def test_bad_options_and_paths_are_named(tmp_path):
    captions = _write_captions(tmp_path / "caps.json", list(range(1, 41)))
    with pytest.raises(DataError, match="exclude_files entry"):
        blind(captions, exclude_files=[str(tmp_path / "missing.json")])
    with pytest.raises(DataError, match="captions file"):
        blind(tmp_path / "none.json", exclude_files=[])
    with pytest.raises(ValueError, match="val_percent"):
        blind(captions, exclude_files=[], val_percent=0)
    assert DATASETS.get("blind") is blind


def test_real_val2017_captions_leave_out_the_coco_mini_images(val2017_captions, coco_mini):
    data = blind(val2017_captions)
    mini_val2017 = {
        image["id"] for name in ("captions_train.json", "captions_val.json")
        for image in json.loads((coco_mini / name).read_text())["images"]
        if "val2017" in image.get("coco_url", "")}
    assert len(mini_val2017) == 240
    kept = set(data.train.image_ids.tolist()) | set(data.val.image_ids.tolist())
    assert not kept & mini_val2017
    assert len(kept) == 5000 - 240
    assert excluded_image_ids([coco_mini / "captions_val.json"]) & kept == set()
    assert all(is_val_image(i, 15) for i in data.val.image_ids.tolist())
    assert len(data.train.captions) + len(data.val.captions) < 25014
