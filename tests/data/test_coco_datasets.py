"""The two COCO dataset plugins: CS231n layout ("coco") and annotation json ("coco_json")."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from capx.data import DataError, decode_captions, load_coco_data
from capx.datasets.base import CaptionData
from capx.datasets.coco import (
    DataWarning,
    coco,
    coco_json,
    image_id_from_url,
    word_ids_to_text,
)
from capx.registry import DATASETS


def json_counts(coco_mini: Path, split: str) -> Counter:
    """Captions per image id, straight from the annotation file."""
    content = json.loads((coco_mini / f"captions_{split}.json").read_text())
    return Counter(ann["image_id"] for ann in content["annotations"])


def references_by_id(split) -> dict[int, list[str]]:
    return dict(zip(split.image_ids.tolist(), split.references()))


def test_both_plugins_are_registered() -> None:
    assert DATASETS.get("coco") is coco
    assert DATASETS.get("coco_json") is coco_json


def test_image_id_from_url() -> None:
    assert image_id_from_url("http://images.cocodataset.org/val2017/000000397133.jpg") == 397133
    assert image_id_from_url("COCO_train2014_000000000009.jpg") == 9
    flickr = "http://farm4.staticflickr.com/3153/2970773875_164f0c0b83_z.jpg"
    assert image_id_from_url(flickr) is None


def test_word_ids_to_text_drops_markers_and_keeps_unk() -> None:
    words = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "dog"]
    ids = np.array([[1, 4, 3, 5, 2, 0], [1, 5, 2, 4, 4, 0]])
    assert word_ids_to_text(ids, words) == ["a <UNK> dog", "dog"]


# ----------------------------------------------------------------------------------- "coco"


def test_coco_plugin_on_coco_mini(cs231n_dir: Path, coco_mini: Path) -> None:
    data = coco(base_dir=cs231n_dir)
    assert isinstance(data, CaptionData) and data.name == "coco"
    raw = load_coco_data(cs231n_dir)
    for split, n_captions, n_images in (("train", 1555, 311), ("val", 295, 59)):
        part = getattr(data, split)
        assert len(part.captions) == n_captions and part.num_images == n_images
        assert part.features.dtype == np.float32
        np.testing.assert_array_equal(part.features, raw[f"{split}_features"])
        assert part.urls == raw[f"{split}_urls"].tolist()
        assert Counter(part.image_ids[part.image_idxs].tolist()) == json_counts(coco_mini, split)
        expected = [" ".join(t.split()[1:-1]) for t in decode_captions(raw[f"{split}_captions"],
                                                                       raw["idx_to_word"])]
        assert part.captions == expected
    words = Counter(w for text in data.train.captions for w in text.split())
    assert words["<UNK>"] > 0
    assert not {"<START>", "<END>", "<NULL>"} & set(words)
    assert data.info["train_captions"] == 1555
    assert data.info["vocab_size"] == len(raw["idx_to_word"])


def test_coco_plugin_subset_keeps_whole_images_deterministically(cs231n_dir: Path) -> None:
    full = coco(base_dir=cs231n_dir)
    small = coco(base_dir=cs231n_dir, max_train=20, max_val=6, seed=1)
    again = coco(base_dir=cs231n_dir, max_train=20, max_val=6, seed=1)
    other = coco(base_dir=cs231n_dir, max_train=20, max_val=6, seed=2)
    assert small.train.num_images == 20 and small.val.num_images == 6
    assert small.train.image_ids.tolist() == again.train.image_ids.tolist()
    assert small.train.image_ids.tolist() != other.train.image_ids.tolist()
    full_refs = references_by_id(full.train)
    for image_id, refs in references_by_id(small.train).items():
        assert refs == full_refs[image_id]  # every caption of a kept image, in order
    row_of_id = {i: r for r, i in enumerate(full.train.image_ids.tolist())}
    rows = [row_of_id[i] for i in small.train.image_ids.tolist()]
    np.testing.assert_array_equal(small.train.features, full.train.features[rows])
    val_only = coco(base_dir=cs231n_dir, max_val=6, seed=1)
    assert val_only.val.image_ids.tolist() == small.val.image_ids.tolist()
    assert val_only.train.num_images == 311
    with pytest.raises(ValueError, match="max_train/max_val"):
        coco(base_dir=cs231n_dir, max_train=0)


# ------------------------------------------------------------------------------ "coco_json"


def test_coco_json_plugin_on_coco_mini(coco_mini: Path) -> None:
    with h5py.File(coco_mini / "features_effl0.h5", "r") as h5:
        stored_ids, stored = h5["image_ids"][()], h5["features"][()]
    row_of_id = {i: r for r, i in enumerate(stored_ids.tolist())}
    data = coco_json(base_dir=coco_mini)
    assert data.name == "coco_json"
    for split, n_captions, n_images in (("train", 1555, 311), ("val", 295, 59)):
        part = getattr(data, split)
        assert len(part.captions) == n_captions and part.num_images == n_images
        assert part.features.dtype == np.float32
        rows = [row_of_id[i] for i in part.image_ids.tolist()]
        np.testing.assert_array_equal(part.features, stored[rows].astype(np.float32))
        assert Counter(part.image_ids[part.image_idxs].tolist()) == json_counts(coco_mini, split)
        content = json.loads((coco_mini / f"captions_{split}.json").read_text())
        assert sorted(part.captions) == sorted(a["caption"].strip() for a in content["annotations"])
        assert data.info[f"{split}_image_ids_without_features"] == []
        assert all(u.endswith(f"{i:012d}.jpg") for u, i in zip(part.urls, part.image_ids.tolist()))


def test_both_layouts_agree_on_images_and_references(cs231n_dir: Path, coco_mini: Path) -> None:
    cs231n, official = coco(base_dir=cs231n_dir), coco_json(base_dir=coco_mini)
    for split in ("train", "val"):
        a, b = references_by_id(getattr(cs231n, split)), references_by_id(getattr(official, split))
        assert set(a) == set(b)
        assert all(len(a[i]) == len(b[i]) for i in a)


def write_json_dataset(base: Path, feature_ids: list[int], captioned: dict[int, list[str]],
                       listed: list[int], dtype=np.float16) -> Path:
    """A tiny coco_json folder whose train and val files are the same."""
    base.mkdir(exist_ok=True)
    annotations = [{"id": 100 * image_id + k, "image_id": image_id, "caption": text}
                   for image_id, texts in captioned.items() for k, text in enumerate(texts)]
    images = [{"id": i, "coco_url": f"http://x/{i:012d}.jpg"} for i in listed]
    for name in ("captions_train.json", "captions_val.json"):
        (base / name).write_text(json.dumps({"images": images, "annotations": annotations}))
    with h5py.File(base / "features_effl0.h5", "w") as h5:
        h5["image_ids"] = np.asarray(feature_ids, dtype=np.int64)
        h5["features"] = np.arange(len(feature_ids) * 3, dtype=dtype).reshape(-1, 3)
    return base


def test_coco_json_reports_images_without_features_or_captions(tmp_path: Path) -> None:
    base = write_json_dataset(
        tmp_path / "d", feature_ids=[1, 2, 4],
        captioned={1: ["  A dog. ", "a DOG"], 2: ["cat"], 3: ["no features here"]},
        listed=[1, 2, 3, 4],
    )
    with pytest.warns(DataWarning) as record:
        data = coco_json(base_dir=base)
    messages = " ".join(str(w.message) for w in record)
    assert "have no features" in messages and "without any caption" in messages
    assert data.info["train_image_ids_without_features"] == [3]
    assert data.info["val_image_ids_without_captions"] == [4]
    assert data.train.image_ids.tolist() == [1, 2]
    assert data.train.references() == [["A dog.", "a DOG"], ["cat"]]
    assert data.train.features.dtype == np.float32
    np.testing.assert_array_equal(data.train.features, [[0, 1, 2], [3, 4, 5]])


def test_coco_json_with_no_overlap_is_an_error(tmp_path: Path) -> None:
    base = write_json_dataset(tmp_path / "d", feature_ids=[7, 8], captioned={1: ["x"]}, listed=[1])
    with pytest.raises(DataError, match="(?s)captions_train.json.*features_effl0.h5"):
        coco_json(base_dir=base)


def test_coco_json_bad_files_are_named(tmp_path: Path) -> None:
    base = write_json_dataset(tmp_path / "d", feature_ids=[1, 1], captioned={1: ["x"]}, listed=[1])
    with pytest.raises(DataError, match="(?s)features_effl0.h5.*'image_ids'.*repeated"):
        coco_json(base_dir=base)
    base = write_json_dataset(tmp_path / "e", feature_ids=[1], captioned={1: ["x"]}, listed=[1])
    (base / "captions_val.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="(?s)captions_val.json.*'annotations'"):
        coco_json(base_dir=base)
    with pytest.raises(FileNotFoundError, match="features.h5"):
        coco_json(base_dir=base, features_file="features.h5")


def test_coco_json_subset_is_deterministic(coco_mini: Path) -> None:
    first = coco_json(base_dir=coco_mini, max_train=15, max_val=4, seed=3)
    second = coco_json(base_dir=coco_mini, max_train=15, max_val=4, seed=3)
    assert first.train.num_images == 15 and first.val.num_images == 4
    assert first.train.captions == second.train.captions
    counts = json_counts(coco_mini, "train")
    assert len(first.train.captions) == sum(counts[i] for i in first.train.image_ids.tolist())
