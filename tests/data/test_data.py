"""The CS231n data API (capx.data): real coco-mini data, and every kind of bad folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from capx.data import (
    DataError,
    MissingDataError,
    decode_captions,
    load_coco_data,
    sample_coco_minibatch,
)

CS231N_KEYS = {
    "train_captions", "train_image_idxs", "val_captions", "val_image_idxs",
    "train_features", "val_features", "idx_to_word", "word_to_idx", "train_urls", "val_urls",
}
WORDS = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "dog", "cat", "runs"]


# ------------------------------------------------------------------------ a small valid folder


def write_h5(path: Path, **arrays: np.ndarray) -> None:
    with h5py.File(path, "w") as h5:
        for key, value in arrays.items():
            h5.create_dataset(key, data=value)


def make_cs231n_dir(root: Path, n_images: int = 4, dim: int = 6, features_dtype=np.float32) -> Path:
    """A tiny but complete coco_captioning/ folder: 2 captions per image in each split."""
    base = root / "coco_captioning"
    base.mkdir()
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val"):
        image_idxs = np.repeat(np.arange(n_images), 2).astype(np.int32)
        words = rng.integers(3, len(WORDS), size=(len(image_idxs), 3))
        captions = np.zeros((len(image_idxs), 6), dtype=np.int32)
        captions[:, 0], captions[:, 1:4], captions[:, 4] = 1, words, 2
        arrays[f"{split}_captions"], arrays[f"{split}_image_idxs"] = captions, image_idxs
        features = rng.standard_normal((n_images, dim)).astype(features_dtype)
        write_h5(base / f"{split}2014_vgg16_fc7_pca.h5", features=features)
        urls = [f"http://images.cocodataset.org/{split}2014/{i:012d}.jpg" for i in range(n_images)]
        (base / f"{split}2014_urls.txt").write_text("\n".join(urls) + "\n")
    write_h5(base / "coco2014_captions.h5", **arrays)
    vocab = {"idx_to_word": WORDS, "word_to_idx": {w: i for i, w in enumerate(WORDS)}}
    (base / "coco2014_vocab.json").write_text(json.dumps(vocab))
    return base


@pytest.fixture
def small_dir(tmp_path: Path) -> Path:
    return make_cs231n_dir(tmp_path)


def rewrite_h5(path: Path, drop: str | None = None, **replace: np.ndarray) -> None:
    with h5py.File(path, "r") as h5:
        arrays = {k: h5[k][()] for k in h5.keys() if k != drop}
    arrays.update(replace)
    path.unlink()
    write_h5(path, **arrays)


def raises_naming(exc_type, *fragments: str):
    """pytest.raises whose message must contain every fragment (literally)."""
    lookaheads = "".join(f"(?=.*{re.escape(fragment)})" for fragment in fragments)
    return pytest.raises(exc_type, match="(?s)" + lookaheads)


# --------------------------------------------------------------------------- real coco-mini data


def test_real_data_shapes_and_dtypes(cs231n_dir: Path) -> None:
    data = load_coco_data(cs231n_dir)
    assert set(data) == CS231N_KEYS
    with h5py.File(cs231n_dir / "coco2014_captions.h5", "r") as h5:
        stored_train = h5["train_captions"][()]
    np.testing.assert_array_equal(data["train_captions"], stored_train)
    for split in ("train", "val"):
        captions, idxs = data[f"{split}_captions"], data[f"{split}_image_idxs"]
        features, urls = data[f"{split}_features"], data[f"{split}_urls"]
        assert captions.ndim == 2 and captions.dtype.kind == "i"
        assert idxs.shape == (captions.shape[0],)
        assert features.dtype == np.float32 and features.shape[1] == 512
        assert urls.shape == (features.shape[0],) and urls.dtype.kind == "U"
        assert 0 <= idxs.min() and idxs.max() < features.shape[0]
        assert captions.max() < len(data["idx_to_word"])
    assert data["train_captions"].shape[0] == 1555 and data["val_captions"].shape[0] == 295
    assert data["train_features"].shape[0] == 311 and data["val_features"].shape[0] == 59
    assert all(data["word_to_idx"][w] == i for i, w in enumerate(data["idx_to_word"]))


def test_default_base_dir_env_then_current_directory(cs231n_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CAPX_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("CAPX_COCO_DIR", str(cs231n_dir))
    assert load_coco_data()["train_features"].shape[0] == 311

    monkeypatch.setenv("CAPX_DATA_DIR", str(cs231n_dir.parent))
    monkeypatch.delenv("CAPX_COCO_DIR")
    assert load_coco_data()["val_features"].shape[0] == 59

    monkeypatch.delenv("CAPX_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    with raises_naming(MissingDataError, str(tmp_path / "data" / "coco_captioning")):
        load_coco_data()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "coco_captioning").symlink_to(cs231n_dir)
    assert load_coco_data()["val_features"].shape[0] == 59


def test_max_train_subsets_captions_like_cs231n(cs231n_dir: Path) -> None:
    full = load_coco_data(cs231n_dir)
    np.random.seed(231)
    subset = load_coco_data(cs231n_dir, max_train=40)
    np.random.seed(231)
    mask = np.random.randint(full["train_captions"].shape[0], size=40)
    np.testing.assert_array_equal(subset["train_captions"], full["train_captions"][mask])
    np.testing.assert_array_equal(subset["train_image_idxs"], full["train_image_idxs"][mask])
    np.testing.assert_array_equal(subset["train_features"], full["train_features"])
    np.testing.assert_array_equal(subset["val_captions"], full["val_captions"])


def test_decode_captions_round_trips_through_the_vocabulary(cs231n_dir: Path) -> None:
    data = load_coco_data(cs231n_dir)
    captions = data["val_captions"]
    idx_to_word, word_to_idx = data["idx_to_word"], data["word_to_idx"]
    decoded = decode_captions(captions, idx_to_word)
    assert isinstance(decoded, list) and len(decoded) == len(captions)
    for row, text in zip(captions, decoded):
        words = text.split()
        assert words[0] == "<START>" and words[-1] == "<END>" and "<NULL>" not in words
        ids = [word_to_idx[w] for w in words]
        np.testing.assert_array_equal(ids, row[: len(ids)])
        assert (row[len(ids):] == word_to_idx["<NULL>"]).all()
    single = decode_captions(captions[0], idx_to_word)
    assert isinstance(single, str) and single == decoded[0]


def test_decode_stops_at_end_and_skips_null() -> None:
    ids = np.array([[1, 4, 0, 5, 2, 6, 7], [4, 5, 0, 0, 0, 0, 0]])
    assert decode_captions(ids, WORDS) == ["<START> a dog <END>", "a dog"]


def test_minibatch_shapes_and_alignment(cs231n_dir: Path) -> None:
    data = load_coco_data(cs231n_dir)
    captions, features, urls = sample_coco_minibatch(data, batch_size=7, split="val")
    assert captions.shape == (7, data["val_captions"].shape[1])
    assert features.shape == (7, 512) and features.dtype == np.float32
    assert urls.shape == (7,)
    row_of_url = {url: row for row, url in enumerate(data["val_urls"])}
    for feature, url in zip(features, urls):
        np.testing.assert_array_equal(feature, data["val_features"][row_of_url[url]])


@pytest.mark.parametrize("make_rng", [np.random.RandomState, np.random.default_rng])
def test_minibatch_own_rng_is_reproducible_and_leaves_global_alone(small_dir, make_rng) -> None:
    data = load_coco_data(small_dir)
    before = np.random.get_state()[1].copy()
    first = sample_coco_minibatch(data, batch_size=5, rng=make_rng(3))
    again = sample_coco_minibatch(data, batch_size=5, rng=make_rng(3))
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_minibatch_global_rng_by_default(small_dir: Path) -> None:
    data = load_coco_data(small_dir)
    np.random.seed(5)
    first = sample_coco_minibatch(data, batch_size=6)
    np.random.seed(5)
    np.testing.assert_array_equal(sample_coco_minibatch(data, batch_size=6)[0], first[0])


def test_unprojected_features_missing_says_use_pca(cs231n_dir: Path) -> None:
    with raises_naming(MissingDataError, "train2014_vgg16_fc7.h5", "pca_features=True"):
        load_coco_data(cs231n_dir, pca_features=False)


# ------------------------------------------------------------------------------- small folders


def test_small_folder_loads_and_accepts_both_index_spellings(small_dir: Path) -> None:
    data = load_coco_data(small_dir)
    rewrite_h5(small_dir / "coco2014_captions.h5", drop="val_image_idxs",
               val_image_idxes=data["val_image_idxs"])
    again = load_coco_data(small_dir)
    np.testing.assert_array_equal(again["val_image_idxs"], data["val_image_idxs"])
    assert set(again) == CS231N_KEYS


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_float_features_become_float32(tmp_path: Path, dtype) -> None:
    base = make_cs231n_dir(tmp_path, features_dtype=dtype)
    data = load_coco_data(base)
    with h5py.File(base / "train2014_vgg16_fc7_pca.h5", "r") as h5:
        stored = h5["features"][()]
    assert data["train_features"].dtype == np.float32
    np.testing.assert_array_equal(data["train_features"], stored.astype(np.float32))


def test_missing_folder_says_how_to_get_the_data(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with raises_naming(MissingDataError, str(missing), "capx download coco", "CAPX_COCO_DIR"):
        load_coco_data(missing)
    with pytest.raises(FileNotFoundError):
        load_coco_data(missing)


@pytest.mark.parametrize("name", [
    "coco2014_captions.h5", "coco2014_vocab.json", "train2014_vgg16_fc7_pca.h5",
    "val2014_vgg16_fc7_pca.h5", "train2014_urls.txt", "val2014_urls.txt",
])
def test_missing_file_is_named(small_dir: Path, name: str) -> None:
    (small_dir / name).unlink()
    with raises_naming(MissingDataError, str(small_dir / name), "capx download coco"):
        load_coco_data(small_dir)


@pytest.mark.parametrize("name", ["coco2014_captions.h5", "val2014_vgg16_fc7_pca.h5"])
def test_truncated_h5_is_named(small_dir: Path, name: str) -> None:
    path = small_dir / name
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with raises_naming(DataError, str(path), "truncated or corrupt"):
        load_coco_data(small_dir)


def test_not_json_vocab_is_named(small_dir: Path) -> None:
    (small_dir / "coco2014_vocab.json").write_text('{"idx_to_word": [')
    with raises_naming(DataError, "coco2014_vocab.json", "not valid JSON"):
        load_coco_data(small_dir)


@pytest.mark.parametrize("file_name, key", [
    ("coco2014_captions.h5", "val_captions"),
    ("coco2014_captions.h5", "train_image_idxs"),
    ("train2014_vgg16_fc7_pca.h5", "features"),
])
def test_missing_h5_key_names_file_and_key(small_dir: Path, file_name: str, key: str) -> None:
    rewrite_h5(small_dir / file_name, drop=key, unexpected=np.zeros(3))
    with raises_naming(DataError, file_name, repr(key), "unexpected"):
        load_coco_data(small_dir)


def test_missing_vocab_key_names_file_and_key(small_dir: Path) -> None:
    (small_dir / "coco2014_vocab.json").write_text(json.dumps({"idx_to_word": WORDS}))
    with raises_naming(DataError, "coco2014_vocab.json", "'word_to_idx'"):
        load_coco_data(small_dir)


def test_image_idxs_past_feature_rows(small_dir: Path) -> None:
    shifted = np.repeat(np.arange(4, dtype=np.int32), 2) + 1
    rewrite_h5(small_dir / "coco2014_captions.h5", train_image_idxs=shifted)
    with raises_naming(DataError, "coco2014_captions.h5", "'train_image_idxs'",
                       "train2014_vgg16_fc7_pca.h5", "4 rows"):
        load_coco_data(small_dir)


def test_url_count_differs_from_feature_rows(small_dir: Path) -> None:
    path = small_dir / "val2014_urls.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]))
    with raises_naming(DataError, "val2014_urls.txt", "3 urls", "val2014_vgg16_fc7_pca.h5",
                       "'features'", "4 rows"):
        load_coco_data(small_dir)


def test_caption_ids_beyond_vocabulary(small_dir: Path) -> None:
    captions = np.full((8, 6), len(WORDS), dtype=np.int32)
    rewrite_h5(small_dir / "coco2014_captions.h5", val_captions=captions)
    with raises_naming(DataError, "coco2014_captions.h5", "'val_captions'", "8 words"):
        load_coco_data(small_dir)


def test_empty_split(small_dir: Path) -> None:
    rewrite_h5(small_dir / "coco2014_captions.h5", val_captions=np.zeros((0, 6), np.int32),
               val_image_idxs=np.zeros(0, np.int32))
    with raises_naming(DataError, "coco2014_captions.h5", "'val_captions'", "empty"):
        load_coco_data(small_dir)


def test_caption_and_index_counts_differ(small_dir: Path) -> None:
    rewrite_h5(small_dir / "coco2014_captions.h5", train_image_idxs=np.zeros(5, np.int32))
    with raises_naming(DataError, "coco2014_captions.h5", "'train_image_idxs'", "8 integer"):
        load_coco_data(small_dir)
