"""COCO caption datasets: the CS231n ``coco_captioning/`` folder and official COCO annotation json.

Both plugins return caption *text* (word ids of the CS231n files are decoded back to words) and
float32 image features. ``max_train``/``max_val`` count *images*: a seeded random subset of images
is kept with all of their captions, so every kept image still has its full set of references.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from capx.data import load_coco_data
from capx.data_files import (
    DataError,
    check_finite_rows,
    default_coco_dir,
    h5_dataset,
    open_h5,
    read_json,
    require_dir,
)
from capx.datasets.base import CaptionData, CaptionSplit
from capx.datasets.splits import select_images
from capx.runtime import room_for
from capx.registry import DATASETS

COCO_JSON_DIR_ENV = "CAPX_COCO_JSON_DIR"
DEFAULT_COCO_JSON_DIR = Path("data") / "coco"
SPECIAL_WORDS_DROPPED = ("<NULL>", "<START>")
# A COCO image url or file name ends with its zero-padded id: .../000000397133.jpg or
# COCO_train2014_000000397133.jpg.
COCO_FILE_NAME = re.compile(r"^(?:COCO_[A-Za-z]+\d*_)?(\d+)\.jpe?g$")


class DataWarning(UserWarning):
    """Data that was usable but incomplete (e.g. images without features), reported not hidden."""


# ------------------------------------------------------------------------------ shared helpers


def choose_images(
    num_images: int, max_images: int | None, seed: int, stream: int
) -> np.ndarray | None:
    """Sorted rows of a seeded random subset of ``max_images`` images; None keeps all.

    ``stream`` separates train from val so that changing one split's size leaves the other alone.
    """
    if max_images is None:
        return None
    is_int = isinstance(max_images, (int, np.integer)) and not isinstance(max_images, bool)
    if not is_int or max_images < 1:
        raise ValueError(
            f"max_train/max_val must be a positive integer or None, got {max_images!r}"
        )
    if max_images >= num_images:
        return None
    rng = np.random.default_rng([seed, stream])
    return np.sort(rng.choice(num_images, size=int(max_images), replace=False))


def take_images(split: CaptionSplit, rows: np.ndarray | None) -> CaptionSplit:
    """The split restricted to image ``rows`` (sorted), with all of their captions."""
    return split if rows is None else select_images(split, rows)


def image_id_from_url(url: str) -> int | None:
    """The COCO image id at the end of a url or file name, or None if it has none."""
    match = COCO_FILE_NAME.match(url.rstrip("/").rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


def image_ids_from_urls(urls: Sequence[str]) -> np.ndarray | None:
    """Image ids of all urls, or None unless every url ends with a COCO id."""
    ids = [image_id_from_url(url) for url in urls]
    if not ids or any(i is None for i in ids):
        return None
    return np.asarray(ids, dtype=np.int64)


def word_ids_to_text(captions: np.ndarray, idx_to_word: Sequence[str]) -> list[str]:
    """Caption text of each row of word ids: up to ``<END>``, without ``<NULL>``/``<START>``.

    Other words, ``<UNK>`` included, are kept literally.
    """
    words = list(idx_to_word)
    dropped = {i for i, w in enumerate(words) if w in SPECIAL_WORDS_DROPPED}
    end_id = words.index("<END>") if "<END>" in words else None
    texts = []
    for row in np.asarray(captions).tolist():
        if end_id is not None and end_id in row:
            row = row[: row.index(end_id)]
        texts.append(" ".join(words[i] for i in row if i not in dropped))
    return texts


# ----------------------------------------------------------------------- CS231n layout: "coco"


@DATASETS.register("coco")
def coco(
    base_dir: str | os.PathLike | None = None,
    pca_features: bool = True,
    max_train: int | None = None,
    max_val: int | None = None,
    seed: int = 0,
) -> CaptionData:
    """The CS231n ``coco_captioning/`` folder (see :func:`capx.data.load_coco_data`) as text.

    ``base_dir`` defaults to :func:`capx.data_files.default_coco_dir`. ``max_train`` and
    ``max_val`` keep a ``seed``-determined subset of that many images with all their captions.
    """
    base = default_coco_dir() if base_dir is None else Path(base_dir)
    data = load_coco_data(base, max_train=None, pca_features=pca_features)
    splits = {}
    for stream, (split, limit) in enumerate((("train", max_train), ("val", max_val))):
        urls = [str(u) for u in data[f"{split}_urls"]]
        full = CaptionSplit(
            features=data[f"{split}_features"],
            captions=word_ids_to_text(data[f"{split}_captions"], data["idx_to_word"]),
            image_idxs=data[f"{split}_image_idxs"],
            image_ids=image_ids_from_urls(urls),
            urls=urls,
        )
        splits[split] = take_images(full, choose_images(full.num_images, limit, seed, stream))
    info = {
        "layout": "cs231n",
        "base_dir": str(base.resolve()),
        "pca_features": pca_features,
        "seed": seed,
        "max_train": max_train,
        "max_val": max_val,
        "vocab_size": len(data["idx_to_word"]),
        **_counts(splits),
    }
    return CaptionData(name="coco", train=splits["train"], val=splits["val"], info=info)


def _counts(splits: dict[str, CaptionSplit]) -> dict[str, int]:
    counts = {}
    for name, split in splits.items():
        counts[f"{name}_images"] = split.num_images
        counts[f"{name}_captions"] = len(split.captions)
    return counts


# ------------------------------------------------------------ official annotations: "coco_json"


@DATASETS.register("coco_json")
def coco_json(
    base_dir: str | os.PathLike | None = None,
    train_file: str = "captions_train.json",
    val_file: str = "captions_val.json",
    features_file: str = "features_effl0.h5",
    max_train: int | None = None,
    max_val: int | None = None,
    seed: int = 0,
) -> CaptionData:
    """COCO caption annotation json files plus one features h5 (``image_ids``, ``features``).

    Captions are matched to feature rows by image id. Images without features, and listed
    images without captions, are left out and reported (a :class:`DataWarning` and
    ``info``); a split where no captioned image has features is an error. ``base_dir`` defaults
    to ``$CAPX_COCO_JSON_DIR`` or ``data/coco``; file names are relative to it.
    """
    base = require_dir(
        base_dir or os.environ.get(COCO_JSON_DIR_ENV) or DEFAULT_COCO_JSON_DIR,
        how_to_fix=(
            "set base_dir to a folder holding COCO caption json files and a features h5 "
            f"(or set the {COCO_JSON_DIR_ENV} environment variable)"
        ),
    )
    features_path = base / features_file
    feature_ids, features = _read_id_features(features_path)
    row_of_id = {int(image_id): row for row, image_id in enumerate(feature_ids)}

    info: dict[str, Any] = {
        "layout": "coco_json",
        "base_dir": str(base.resolve()),
        "features_file": features_file,
        "seed": seed,
        "max_train": max_train,
        "max_val": max_val,
    }
    splits = {}
    for stream, (split, file_name, limit) in enumerate(
        (("train", train_file, max_train), ("val", val_file, max_val))
    ):
        info[f"{split}_file"] = file_name
        splits[split] = _json_split(
            split, base / file_name, features_path, features, row_of_id, limit, seed, stream, info
        )
    info.update(_counts(splits))
    return CaptionData(name="coco_json", train=splits["train"], val=splits["val"], info=info)


def _read_id_features(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Image ids and features as stored (float16 stays float16 until the rows are picked)."""
    with open_h5(path) as h5:
        ids = h5_dataset(h5, "image_ids")[()]
        stored = h5_dataset(h5, "features")
        too_big = room_for(int(stored.size) * stored.dtype.itemsize)
        if too_big:
            raise DataError(f"{path.resolve()} key 'features' holds {stored.shape} values: "
                            f"{too_big}; use a smaller file or a larger machine")
        features = stored[()]
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise DataError(f"{path.resolve()} key 'image_ids': expected a 1-D integer array, got "
                        f"shape {ids.shape} {ids.dtype}")
    if features.ndim != 2 or features.shape[0] != ids.shape[0] or features.dtype.kind != "f":
        raise DataError(
            f"{path.resolve()} key 'features': expected a float array with one row per image id "
            f"({ids.shape[0]}, D), got shape {features.shape} {features.dtype}"
        )
    check_finite_rows(features, path)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{path.resolve()} key 'image_ids': repeated ids "
                        f"{unique[counts > 1][:10].tolist()}; each image needs one row")
    return ids, features


def _json_split(
    split: str,
    json_path: Path,
    features_path: Path,
    features: np.ndarray,
    row_of_id: dict[int, int],
    limit: int | None,
    seed: int,
    stream: int,
    info: dict[str, Any],
) -> CaptionSplit:
    """One split: captioned images with features, sorted by id, captions in annotation order."""
    captions_of, url_of = read_annotations(json_path)
    without_captions = sorted(set(url_of) - set(captions_of))
    without_features = sorted(set(captions_of) - set(row_of_id))
    usable = np.asarray(sorted(set(captions_of) & set(row_of_id)), dtype=np.int64)
    if usable.size == 0:
        raise DataError(
            f"no image id in {json_path.resolve()} has features in {features_path.resolve()} "
            f"key 'image_ids'; the two files belong to different datasets"
        )
    _report(split, json_path, "have no features in " + features_path.name, without_features, info,
            key=f"{split}_image_ids_without_features")
    _report(split, json_path, "are listed without any caption", without_captions, info,
            key=f"{split}_image_ids_without_captions")

    rows = choose_images(len(usable), limit, seed, stream)
    image_ids = usable if rows is None else usable[rows]
    captions: list[str] = []
    image_idxs: list[int] = []
    for new_row, image_id in enumerate(image_ids.tolist()):
        texts = captions_of[image_id]
        captions.extend(texts)
        image_idxs.extend([new_row] * len(texts))
    feature_rows = [row_of_id[i] for i in image_ids.tolist()]
    return CaptionSplit(
        features=features[feature_rows].astype(np.float32, copy=False),
        captions=captions,
        image_idxs=np.asarray(image_idxs, dtype=np.int64),
        image_ids=image_ids,
        urls=[url_of.get(i, "") for i in image_ids.tolist()],
    )


def read_annotations(path: Path, how_to_fix: str = "download it again"
                     ) -> tuple[dict[int, list[str]], dict[int, str]]:
    """Captions per image id (annotation-id order, whitespace stripped), and listed images' urls."""
    content = read_json(path, how_to_fix)
    for key in ("images", "annotations"):
        if not isinstance(content, dict) or not isinstance(content.get(key), list):
            raise DataError(f"{path.resolve()} has no list {key!r}; expected a COCO caption "
                            f"annotation file (keys 'images' and 'annotations')")
    url_of: dict[int, str] = {}
    for i, image in enumerate(content["images"]):
        if not isinstance(image, dict) or not isinstance(image.get("id"), int):
            raise DataError(f"{path.resolve()} key 'images'[{i}]: needs an integer 'id'")
        url_of[image["id"]] = str(image.get("coco_url") or image.get("file_name") or "")
    annotated: dict[int, list[tuple[Any, str]]] = defaultdict(list)
    for i, ann in enumerate(content["annotations"]):
        if (not isinstance(ann, dict) or not isinstance(ann.get("image_id"), int)
                or not isinstance(ann.get("caption"), str)):
            raise DataError(f"{path.resolve()} key 'annotations'[{i}]: needs an integer "
                            f"'image_id' and a string 'caption'")
        annotated[ann["image_id"]].append((ann.get("id", i), ann["caption"].strip()))
    captions_of = {
        image_id: [text for _, text in sorted(anns, key=lambda a: a[0])]
        for image_id, anns in annotated.items()
    }
    return captions_of, url_of


def _report(
    split: str, path: Path, problem: str, image_ids: list[int], info: dict[str, Any], key: str
) -> None:
    """Record left-out images in ``info`` and warn about them (never drop them silently)."""
    info[key] = image_ids
    if image_ids:
        shown = ", ".join(map(str, image_ids[:10])) + (" ..." if len(image_ids) > 10 else "")
        warnings.warn(
            f"{split}: {len(image_ids)} image(s) in {path.name} {problem} and are left out: "
            f"{shown}",
            DataWarning,
            stacklevel=4,
        )
