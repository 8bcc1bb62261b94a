"""A "blind" captioning dataset: real COCO captions, an image feature that says nothing.

Every image gets the same constant feature row, so a captioner trained on it is a caption
language model: it compares tokenizers on real English captions at a larger scale than the
captioned image sets, without the image side. Images are split into train/val by a hash of their
id (stable across machines and runs), and images listed in ``exclude_files`` (e.g. coco-mini's
caption files, whose val2017 images are also in captions_val2017.json) are left out, so a model
trained here never saw them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from capx.data import DataError
from capx.datasets.base import CaptionData, CaptionSplit
from capx.datasets.coco import choose_images, read_annotations
from capx.registry import DATASETS

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CAPTIONS_ENV = "CAPX_BLIND_CAPTIONS"
DEFAULT_CAPTIONS = SHARED_DATA / "coco-val2017-captions" / "captions_val2017.json"
DEFAULT_EXCLUDE = (str(SHARED_DATA / "coco-mini" / "captions_train.json"),
                   str(SHARED_DATA / "coco-mini" / "captions_val.json"))


def is_val_image(image_id: int, val_percent: int) -> bool:
    """Deterministic split: ``int(md5(str(id)), 16) % 100 < val_percent`` goes to val."""
    digest = hashlib.md5(str(int(image_id)).encode()).hexdigest()
    return int(digest, 16) % 100 < val_percent


def excluded_image_ids(files: Sequence[str | os.PathLike]) -> set[int]:
    """Every image id that has a caption or an entry in the given COCO caption files."""
    ids: set[int] = set()
    for name in files:
        path = Path(name).expanduser()
        if not path.is_file():
            raise DataError(f"blind dataset: exclude_files entry {str(path)!r} does not exist; "
                            f"fix the path or set exclude_files: [] to keep every image")
        captions_of, url_of = read_annotations(path)
        ids.update(captions_of)
        ids.update(url_of)
    return ids


@DATASETS.register("blind")
def blind(
    captions_file: str | os.PathLike | None = None,
    exclude_files: Sequence[str | os.PathLike] | None = None,
    val_percent: int = 15,
    feature_dim: int = 8,
    feature_value: float = 1.0,
    max_train: int | None = None,
    max_val: int | None = None,
    seed: int = 0,
) -> CaptionData:
    """Captions of a COCO caption json, each image's feature the constant ``feature_value``.

    ``captions_file``: null means ``$CAPX_BLIND_CAPTIONS`` or the official captions_val2017.json
    beside the checkout (``../shared/data/coco-val2017-captions``). ``exclude_files``: caption
    json files whose image ids are left out; null means coco-mini's two caption files when they
    sit beside the checkout (``../shared/data/coco-mini``), else none. ``max_train`` /
    ``max_val`` keep a seeded subset of images (with all their captions).
    """
    if not isinstance(val_percent, int) or not 0 < val_percent < 100:
        raise ValueError(f"blind dataset: val_percent must be an integer in 1..99, "
                         f"got {val_percent!r}")
    if not isinstance(feature_dim, int) or feature_dim < 1:
        raise ValueError(f"blind dataset: feature_dim must be a positive integer, "
                         f"got {feature_dim!r}")
    path = Path(captions_file or os.environ.get(CAPTIONS_ENV) or DEFAULT_CAPTIONS).expanduser()
    if not path.is_file():
        raise DataError(f"blind dataset: captions file {str(path)!r} does not exist; set "
                        f"dataset.captions_file (or ${CAPTIONS_ENV}) to a COCO caption json")
    captions_of, _ = read_annotations(path)
    if exclude_files is None:
        exclude_files = [name for name in DEFAULT_EXCLUDE if Path(name).is_file()]
    excluded = excluded_image_ids(list(exclude_files))
    kept = sorted(set(captions_of) - excluded)
    split_ids = {"train": [i for i in kept if not is_val_image(i, val_percent)],
                 "val": [i for i in kept if is_val_image(i, val_percent)]}
    splits = {}
    for stream, (name, limit) in enumerate((("train", max_train), ("val", max_val))):
        ids = np.asarray(split_ids[name], dtype=np.int64)
        if ids.size == 0:
            raise DataError(f"blind dataset: no {name} image left in {path} after the split "
                            f"and the exclusions; lower val_percent or exclude fewer files")
        rows = choose_images(len(ids), limit, seed, stream)
        ids = ids if rows is None else ids[rows]
        splits[name] = _constant_split(ids, captions_of, feature_dim, feature_value)
    info = {"layout": "blind", "captions_file": str(path.resolve()),
            "exclude_files": [str(f) for f in exclude_files],
            "excluded_images": len(set(captions_of) & excluded), "val_percent": val_percent,
            "feature_dim": feature_dim, "feature_value": feature_value,
            **{f"{k}_images": int(v.num_images) for k, v in splits.items()},
            **{f"{k}_captions": len(v.captions) for k, v in splits.items()}}
    return CaptionData(name="blind", train=splits["train"], val=splits["val"], info=info)


def _constant_split(image_ids: np.ndarray, captions_of: dict[int, list[str]], feature_dim: int,
                    feature_value: float) -> CaptionSplit:
    captions: list[str] = []
    image_idxs: list[int] = []
    for row, image_id in enumerate(image_ids.tolist()):
        texts = captions_of[image_id]
        captions.extend(texts)
        image_idxs.extend([row] * len(texts))
    return CaptionSplit(
        features=np.full((len(image_ids), feature_dim), feature_value, dtype=np.float32),
        captions=captions, image_idxs=np.asarray(image_idxs, dtype=np.int64),
        image_ids=image_ids, urls=None,
    )
