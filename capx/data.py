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

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from capx.runtime import room_for

COCO_DIR_ENV = "CAPX_COCO_DIR"
DATA_DIR_ENV = "CAPX_DATA_DIR"  # the folder `capx download` writes coco_captioning/ into
DEFAULT_COCO_DIR = Path("data") / "coco_captioning"
HOW_TO_GET_DATA = (
    "get the data with `capx download coco` (or `python -m capx.datasets.download coco`), "
    f"or point the {COCO_DIR_ENV} environment variable (with run.py: dataset.base_dir=...) at an "
    "existing coco_captioning folder"
)

CAPTIONS_FILE = "coco2014_captions.h5"
VOCAB_FILE = "coco2014_vocab.json"
SPLITS = ("train", "val")
# CS231n's file spells the index keys "*_image_idxs"; some re-packaged copies write "*_image_idxes".
IMAGE_IDXS_SPELLINGS = ("{split}_image_idxs", "{split}_image_idxes")


class DataError(ValueError):
    """Data on disk that capx cannot use; the message names the file, the key and the fix."""


class MissingDataError(DataError, FileNotFoundError):
    """A data folder or file does not exist (also a ``FileNotFoundError``)."""


# ----------------------------------------------------------------------------------- file helpers


def default_coco_dir() -> Path:
    """``$CAPX_COCO_DIR`` if set, else ``coco_captioning`` in ``$CAPX_DATA_DIR`` (where
    ``capx download coco`` puts it), else ``data/coco_captioning`` under the current directory."""
    if os.environ.get(COCO_DIR_ENV):
        return Path(os.environ[COCO_DIR_ENV])
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]) / DEFAULT_COCO_DIR.name
    return DEFAULT_COCO_DIR


def require_dir(path: str | os.PathLike, how_to_fix: str = HOW_TO_GET_DATA) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise MissingDataError(f"data folder not found: {path.resolve()}; {how_to_fix}")
    return path


def require_file(path: str | os.PathLike, how_to_fix: str = HOW_TO_GET_DATA) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"data file not found: {path.resolve()}; {how_to_fix}")
    return path


@contextmanager
def open_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open an HDF5 file for reading; a truncated or corrupt file becomes a :class:`DataError`."""
    path = require_file(path)
    corrupt = (
        f"could not read HDF5 file {path.resolve()} (truncated or corrupt?); download it again"
    )
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{corrupt}: {exc}") from exc
    try:
        yield h5
    except OSError as exc:  # h5py raises OSError when a dataset's bytes are missing
        raise DataError(f"{corrupt}: {exc}") from exc
    finally:
        h5.close()


def h5_dataset(h5: h5py.File, *keys: str) -> h5py.Dataset:
    """The first of ``keys`` present in ``h5`` (alternative spellings); a miss names file, keys."""
    for key in keys:
        if key in h5 and isinstance(h5[key], h5py.Dataset):
            return h5[key]
    raise DataError(
        f"{h5.filename} has no dataset {' or '.join(repr(k) for k in keys)}; "
        f"it holds {sorted(h5.keys())}. Is it the right file?"
    )


def read_float32(dset: h5py.Dataset) -> np.ndarray:
    """Read a whole dataset as float32 with one allocation (HDF5 converts other float types),
    once its size, read from the file's header, fits in the memory available."""
    too_big = room_for(int(dset.size) * 4)
    if too_big:
        raise DataError(f"{dset.file.filename} key {dset.name.lstrip('/')!r} holds "
                        f"{dset.shape} values: {too_big}; use a smaller file or a larger machine")
    if dset.dtype == np.float32:
        return dset[()]
    if dset.dtype.kind != "f":
        raise DataError(
            f"{dset.file.filename} key {dset.name.lstrip('/')!r} holds {dset.dtype}, "
            f"expected floats"
        )
    out = np.empty(dset.shape, dtype=np.float32)
    if out.size:
        dset.read_direct(out)
    return out


def check_finite_rows(features: np.ndarray, path: str | os.PathLike, key: str = "features"
                      ) -> np.ndarray:
    """``features``, once every value is finite; a NaN or inf is a :class:`DataError` naming
    the file and the rows (so it is not found later as a diverging training)."""
    bad = np.flatnonzero(~np.isfinite(features).all(axis=tuple(range(1, features.ndim))))
    if bad.size:
        shown = ", ".join(str(r) for r in bad[:10]) + (", ..." if bad.size > 10 else "")
        raise DataError(f"{Path(path).resolve()} key {key!r}: {bad.size} of {len(features)} "
                        f"feature rows hold NaN or inf (rows {shown}); recompute the features "
                        f"of those images or drop them")
    return features


def read_json(path: str | os.PathLike, how_to_fix: str = "download it again") -> Any:
    """The JSON in ``path``; malformed JSON is a :class:`DataError` naming where, with
    ``how_to_fix`` (a downloaded file: download it again; a user's own: fix it there)."""
    path = require_file(path)
    too_big = room_for(path.stat().st_size * 4)  # Python's objects take several times the text
    if too_big:
        raise DataError(f"{path.resolve()} is {path.stat().st_size:,} bytes of JSON: parsed, "
                        f"{too_big}; use a smaller file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.resolve()} is not valid JSON ({exc}); {how_to_fix}") from exc


def read_lines(path: str | os.PathLike) -> list[str]:
    """Stripped lines of a text file, without trailing blank lines."""
    lines = [line.strip() for line in require_file(path).read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


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
