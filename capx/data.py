"""The CS231n assignment-3 COCO data API: ``load_coco_data``, ``sample_coco_minibatch``,
``decode_captions``.

Same names, signatures and returned dict as CS231n's ``coco_utils``, so the assignment's notebook
runs on capx with only its imports changed. Unlike the original, bad input stops with a
:class:`DataError` that names the file, the key and what to do, and big feature files are read
straight into float32 arrays without extra copies.

Folder layout read by :func:`load_coco_data` (CS231n's ``coco_captioning/``)::

    coco2014_captions.h5          train_captions, train_image_idxs, val_captions, val_image_idxs
    coco2014_vocab.json           {"idx_to_word": [...], "word_to_idx": {...}}
    train2014_vgg16_fc7_pca.h5    'features' (pca_features=True; train2014_vgg16_fc7.h5 otherwise)
    val2014_vgg16_fc7_pca.h5      'features'
    train2014_urls.txt            one image url per feature row
    val2014_urls.txt
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from capx.data_files import (  # DataError, MissingDataError: the errors of this API too
    HOW_TO_GET_DATA, DataError, MissingDataError, check_finite_rows, default_coco_dir, h5_dataset,
    open_h5, read_float32, read_json, read_lines, require_dir,
)

CAPTIONS_FILE = "coco2014_captions.h5"
VOCAB_FILE = "coco2014_vocab.json"
SPLITS = ("train", "val")
# CS231n's file spells the index keys "*_image_idxs"; some re-packaged copies write "*_image_idxes".
IMAGE_IDXS_SPELLINGS = ("{split}_image_idxs", "{split}_image_idxes")


# ----------------------------------------------------------------------------------- CS231n API


def load_coco_data(
    base_dir: str | os.PathLike | None = None,
    max_train: int | None = None,
    pca_features: bool = True,
) -> dict[str, Any]:
    """Load the CS231n ``coco_captioning/`` folder into CS231n's data dict.

    Keys: train_captions, train_image_idxs, val_captions, val_image_idxs (int arrays),
    train_features, val_features (float32), idx_to_word (list), word_to_idx (dict),
    train_urls, val_urls (str arrays). ``max_train`` draws that many training captions with
    replacement from the global ``np.random`` (CS231n's behaviour; features are not subset).
    ``base_dir`` defaults to :func:`default_coco_dir`.
    """
    base = require_dir(default_coco_dir() if base_dir is None else base_dir)
    data: dict[str, Any] = {}

    captions_path = base / CAPTIONS_FILE
    with open_h5(captions_path) as h5:
        for split in SPLITS:
            data[f"{split}_captions"] = h5_dataset(h5, f"{split}_captions")[()]
            spellings = [s.format(split=split) for s in IMAGE_IDXS_SPELLINGS]
            data[f"{split}_image_idxs"] = h5_dataset(h5, *spellings)[()]

    feature_suffix = "_pca" if pca_features else ""
    feature_paths = {split: base / f"{split}2014_vgg16_fc7{feature_suffix}.h5" for split in SPLITS}
    for split, path in feature_paths.items():
        if not pca_features and not path.is_file():
            raise MissingDataError(
                f"data file not found: {path.resolve()}; this copy of the data may only have the "
                f"PCA features (use pca_features=True), or {HOW_TO_GET_DATA}"
            )
        with open_h5(path) as h5:
            data[f"{split}_features"] = check_finite_rows(
                read_float32(h5_dataset(h5, "features")), path)

    vocab_path = base / VOCAB_FILE
    vocab = read_json(vocab_path)
    for key in ("idx_to_word", "word_to_idx"):
        if not isinstance(vocab, dict) or key not in vocab:
            raise DataError(f"{vocab_path.resolve()} has no key {key!r}; is it the right file?")
        data[key] = vocab[key]

    url_paths = {split: base / f"{split}2014_urls.txt" for split in SPLITS}
    for split, path in url_paths.items():
        data[f"{split}_urls"] = np.asarray(read_lines(path))

    _check_consistency(data, captions_path, vocab_path, feature_paths, url_paths)

    if max_train is not None:
        num_train = data["train_captions"].shape[0]
        mask = np.random.randint(num_train, size=max_train)
        data["train_captions"] = data["train_captions"][mask]
        data["train_image_idxs"] = data["train_image_idxs"][mask]
    return data


def _check_consistency(
    data: dict[str, Any],
    captions_path: Path,
    vocab_path: Path,
    feature_paths: dict[str, Path],
    url_paths: dict[str, Path],
) -> None:
    """Shapes and ranges that must agree across the files; each failure names file and key."""
    idx_to_word, word_to_idx = data["idx_to_word"], data["word_to_idx"]
    if not isinstance(idx_to_word, list) or not isinstance(word_to_idx, dict):
        raise DataError(
            f"{vocab_path.resolve()}: 'idx_to_word' must be a list and 'word_to_idx' a mapping"
        )
    if len(idx_to_word) != len(word_to_idx):
        raise DataError(
            f"{vocab_path.resolve()}: 'idx_to_word' has {len(idx_to_word)} words but "
            f"'word_to_idx' has {len(word_to_idx)}"
        )
    for split in SPLITS:
        captions = data[f"{split}_captions"]
        image_idxs = data[f"{split}_image_idxs"]
        features = data[f"{split}_features"]
        urls = data[f"{split}_urls"]
        where = f"{captions_path.resolve()} key '{split}_captions'"
        if captions.ndim != 2 or captions.shape[0] == 0 or captions.dtype.kind not in "iu":
            raise DataError(
                f"{where}: expected a non-empty 2-D integer array (captions, time), got shape "
                f"{captions.shape} {captions.dtype}; the {split} split is empty or malformed"
            )
        if captions.min() < 0 or captions.max() >= len(idx_to_word):
            raise DataError(
                f"{where}: word ids span [{captions.min()}, {captions.max()}] but the vocabulary "
                f"in {vocab_path.resolve()} has {len(idx_to_word)} words; the files do not match"
            )
        where = f"{captions_path.resolve()} key '{split}_image_idxs'"
        if image_idxs.shape != (captions.shape[0],) or image_idxs.dtype.kind not in "iu":
            raise DataError(
                f"{where}: expected {captions.shape[0]} integer image indices (one per caption), "
                f"got shape {image_idxs.shape} {image_idxs.dtype}"
            )
        if features.ndim != 2 or features.shape[0] == 0:
            raise DataError(
                f"{feature_paths[split].resolve()} key 'features': expected a non-empty 2-D "
                f"array (images, dims), got shape {features.shape}"
            )
        if image_idxs.min() < 0 or image_idxs.max() >= features.shape[0]:
            raise DataError(
                f"{where}: image indices span [{image_idxs.min()}, {image_idxs.max()}] but "
                f"{feature_paths[split].resolve()} key 'features' has {features.shape[0]} rows; "
                f"the files do not match"
            )
        if len(urls) != features.shape[0]:
            raise DataError(
                f"{url_paths[split].resolve()} has {len(urls)} urls but "
                f"{feature_paths[split].resolve()} key 'features' has {features.shape[0]} rows; "
                f"there must be one url per feature row"
            )


def sample_coco_minibatch(
    data: dict[str, Any],
    batch_size: int = 100,
    split: str = "train",
    rng: np.random.RandomState | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``batch_size`` captions (with replacement): ``(captions, image_features, urls)``.

    ``rng`` is a ``RandomState`` or ``Generator`` to draw from; None uses the global
    ``np.random`` like CS231n (a solver passes its own to resume reproducibly).
    """
    split_size = data[f"{split}_captions"].shape[0]
    mask = (np.random if rng is None else rng).choice(split_size, batch_size)
    captions = data[f"{split}_captions"][mask]
    image_idxs = data[f"{split}_image_idxs"][mask]
    image_features = data[f"{split}_features"][image_idxs]
    urls = data[f"{split}_urls"][image_idxs] if f"{split}_urls" in data else None
    return captions, image_features, urls


def decode_captions(captions: np.ndarray, idx_to_word: Any) -> str | list[str]:
    """Word ids to text, CS231n style: ``<NULL>`` skipped, stop after ``<END>`` (kept, as is
    ``<START>``). A 1-D input gives one string, a 2-D input a list of strings."""
    captions = np.asarray(captions)
    singleton = captions.ndim == 1
    if singleton:
        captions = captions[None]
    decoded = []
    for row in captions:
        words = []
        for idx in row:
            word = idx_to_word[int(idx)]
            if word != "<NULL>":
                words.append(word)
            if word == "<END>":
                break
        decoded.append(" ".join(words))
    return decoded[0] if singleton else decoded
