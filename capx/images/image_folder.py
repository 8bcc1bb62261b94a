"""The ``image_folder`` dataset: your own captioned photos, a folder plus a COCO captions json.

Features come from an image encoder plugin (EfficientNet-Lite0 by default, optionally projected
to coco-mini's 512-d layout) and are cached in an h5 file (coco-mini's layout, see
:mod:`capx.images.features_file`) that later runs reuse and extend. The json is COCO caption format:
``images`` with ``id`` and ``file_name`` (relative to the folder), ``annotations`` with
``image_id`` and ``caption``. Images go to val when ``int(md5(str(id)), 16) % 100 <
val_percent`` (coco-mini's rule), else to train. Images that are missing or unreadable are left
out and reported.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from capx.data_files import DataError, check_finite_rows, read_json, require_dir, require_file
from capx.datasets.base import CaptionData, CaptionSplit
from capx.datasets.coco import DataWarning, choose_images, read_annotations, take_images
from capx.encoders.preprocess import ImageReadError, centre_crop, open_image, resize_shorter_side
from capx.images.features_file import (
    FeatureFile, ImageItem, encode_into, feature_settings, read_features,
)
from capx.registry import DATASETS

DEFAULT_CAPTIONS_FILE = "captions.json"


#: the captions json of an image folder is the user's own file: fix it, not download it
FIX_YOUR_JSON = ("fix the JSON there (line and column above), or point dataset.captions_file "
                 "at another")

def default_cache_dir() -> Path:
    """``$CAPX_CACHE_DIR/image_folder`` if that variable is set, else ``~/.cache/capx/...``."""
    root = os.environ.get("CAPX_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "capx") / "image_folder"


def features_cache_path(image_dir: Path, attributes: dict[str, str],
                        cache_dir: str | os.PathLike | None = None) -> Path:
    """One features file per folder and encoder settings."""
    key = repr((str(image_dir.resolve()), sorted(attributes.items())))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    base = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return base / f"{image_dir.name}-{attributes['encoder']}-{digest}.h5"


def is_val(image_id: int, val_percent: int) -> bool:
    return int(hashlib.md5(str(image_id).encode()).hexdigest(), 16) % 100 < val_percent


@DATASETS.register("image_folder")
def image_folder(
    image_dir: str | os.PathLike | None = None,
    captions_file: str = DEFAULT_CAPTIONS_FILE,
    val_percent: int = 15,
    encoder: str = "efficientnet_lite0",
    weights: str | None = None,
    project_512: bool = False,
    centre_from: str | None = None,
    features_file: str | None = None,
    cache_dir: str | None = None,
    batch_size: int = 16,
    max_train: int | None = None,
    max_val: int | None = None,
    seed: int = 0,
) -> CaptionData:
    """Captioned images of ``image_dir`` (``captions_file`` relative to it, or absolute).

    ``features_file`` (default: a file in ``cache_dir``, see :func:`features_cache_path`) holds
    the encoder's features; images already in it are not encoded again.
    """
    from tqdm import tqdm


    if image_dir is None:
        raise DataError("dataset image_folder needs dataset.image_dir: the folder of images")
    if not (isinstance(val_percent, int) and 0 < val_percent < 100):
        raise ValueError(f"dataset.val_percent must be an integer in [1, 99], got {val_percent!r}")
    folder = require_dir(image_dir, how_to_fix="set dataset.image_dir to a folder of images")
    json_path = require_file(folder / captions_file, how_to_fix=(
        "set dataset.captions_file to a COCO caption json (images with id and file_name, "
        "annotations with image_id and caption)"))
    captions_of, _ = read_annotations(json_path, FIX_YOUR_JSON)
    file_of = _file_names(json_path)
    _warn(json_path, "are listed without any caption", sorted(set(file_of) - set(captions_of)))

    items, missing = {}, []
    for image_id in sorted(captions_of):
        name = file_of.get(image_id)
        if name and (folder / name).is_file():
            items[image_id] = ImageItem(name, folder / name)
        else:
            missing.append(image_id)
    settings = feature_settings(encoder, weights, project_512, centre_from)
    path = Path(features_file).expanduser() if features_file else \
        features_cache_path(folder, settings.attributes, cache_dir)
    with FeatureFile(path, settings.feature_dim, settings.dtype, settings.attributes) as out:
        pending = [item for item in items.values() if item.name not in set(out.names)]
        with tqdm(total=len(pending), unit="img", desc="image features", disable=None) as bar:
            failures = encode_into(settings.encoder, pending, out, settings.transform,
                                   batch_size, bar)
    names, features = read_features(path)
    check_finite_rows(features, path)
    row_of_name = {name: row for row, name in enumerate(names)}
    unreadable = {item.name for item, _ in failures}
    _warn(json_path, "are listed with captions but have no file in " + str(folder), missing)
    _warn(json_path, "could not be decoded", sorted(i for i, it in items.items()
                                                    if it.name in unreadable))
    usable = [i for i, item in items.items() if item.name in row_of_name]

    splits = {}
    for stream, (split, limit) in enumerate((("train", max_train), ("val", max_val))):
        ids = np.asarray([i for i in usable if is_val(i, val_percent) == (split == "val")],
                         dtype=np.int64)
        if ids.size == 0:
            raise DataError(f"image_folder {folder}: no usable {split} images among "
                            f"{len(usable)} (val_percent={val_percent}); add captioned images "
                            f"or change dataset.val_percent")
        full = _split(ids, captions_of, features, [row_of_name[items[i].name] for i in ids],
                      [items[i].name for i in ids])
        splits[split] = take_images(full, choose_images(full.num_images, limit, seed, stream))
    info: dict[str, Any] = {"layout": "image_folder", "image_dir": str(folder.resolve()),
                            "captions_file": str(json_path), "features_file": str(path),
                            **settings.attributes, "missing_image_ids": missing,
                            "unreadable": sorted(unreadable)}
    for name, split in splits.items():
        info[f"{name}_images"], info[f"{name}_captions"] = split.num_images, len(split.captions)
    return CaptionData(name="image_folder", train=splits["train"], val=splits["val"], info=info)


def _file_names(path: Path) -> dict[int, str]:
    images = read_json(path, FIX_YOUR_JSON)["images"]
    return {image["id"]: str(image["file_name"]) for image in images
            if isinstance(image, dict) and image.get("file_name")}


def _split(ids: np.ndarray, captions_of: dict[int, list[str]], features: np.ndarray,
           rows: list[int], names: list[str]) -> CaptionSplit:
    captions, image_idxs = [], []
    for row, image_id in enumerate(ids.tolist()):
        captions.extend(captions_of[image_id])
        image_idxs.extend([row] * len(captions_of[image_id]))
    return CaptionSplit(features=features[rows], captions=captions,
                        image_idxs=np.asarray(image_idxs, np.int64), image_ids=ids, urls=names)


def _warn(path: Path, problem: str, image_ids: list[int]) -> None:
    if image_ids:
        shown = ", ".join(map(str, image_ids[:10])) + (" ..." if len(image_ids) > 10 else "")
        warnings.warn(f"{len(image_ids)} image(s) of {path.name} {problem} and are left out: "
                      f"{shown}", DataWarning, stacklevel=3)


def image_folder_pictures(image_ids: Any, *, image_dir: str | os.PathLike | None = None,
                          captions_file: str = DEFAULT_CAPTIONS_FILE, size: int = 96,
                          **_options: Any) -> np.ndarray:
    """The pictures of images by id as uint8 (n, size, size, 3) thumbnails (centre crops), to
    show beside sample captions; an image that cannot be read is grey."""
    folder = Path(image_dir) if image_dir is not None else Path(".")
    file_of = _file_names(folder / captions_file)
    ids = np.asarray(image_ids, dtype=np.int64).ravel()
    out = np.full((len(ids), size, size, 3), 128, dtype=np.uint8)
    for row, image_id in enumerate(ids.tolist()):
        try:
            image = open_image(folder / file_of[image_id])
        except (ImageReadError, KeyError):
            continue
        out[row] = np.asarray(centre_crop(resize_shorter_side(image, size), size))
    return out


image_folder.images_for = image_folder_pictures  # the pictures beside sample captions
