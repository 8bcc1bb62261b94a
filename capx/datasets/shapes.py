"""The ``shapes`` dataset: procedurally drawn scenes of coloured shapes with grammar captions.

Made by capx itself (no download) and deterministic for a seed: one to three shapes per 48x48
image, five captions per image from a paraphrasing grammar with a long tail of rare words, and
405 pixel descriptors per image (colour means, colour-name and edge histograms on grids),
computed from the pixels alone. The defaults generate in a couple of seconds and are cached as
an ``.npz`` keyed by every option and the format version.

    data = DATASETS.get("shapes")(num_train=2000, num_val=300, seed=0)
    images = shapes_images("val", indices=[0, 1, 2])   # the pictures, to show beside captions
    save_png("val0.png", images[0], scale=4)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from capx.datasets.base import CaptionData, CaptionSplit
from capx.atomic_files import atomic_savez
from capx.datasets.shapes_features import FIXED_DIM, image_features, standardize
from capx.datasets.shapes_grammar import captions_for
from capx.datasets.shapes_scene import Scene, sample_scenes
from capx.datasets.shapes_render import render_images, save_png
from capx.registry import DATASETS

__all__ = ["shapes", "shapes_images", "shapes_scenes", "save_png", "render_images",
           "default_cache_dir", "FORMAT_VERSION"]

FORMAT_VERSION = 3  # bump whenever scenes, captions, features or the file layout change
CAPTIONS_PER_IMAGE = 5
SPLITS = ("train", "val")
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 24, 256


def default_cache_dir() -> Path:
    """``$CAPX_CACHE_DIR/shapes`` if that variable is set, else ``~/.cache/capx/shapes``."""
    root = os.environ.get("CAPX_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "capx") / "shapes"


def _check_options(num_train: Any, num_val: Any, seed: Any, image_size: Any, feature_dim: Any,
                   caption_seed: Any) -> None:
    def need(name: str, value: Any, low: int, high: int | None = None) -> None:
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low
        if not ok or (high is not None and value > high):
            bound = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
            raise ValueError(f"shapes dataset option {name!r} must be {bound}, got {value!r} "
                             f"(set dataset.{name} in the config)")

    need("num_train", num_train, 1)
    need("num_val", num_val, 0)
    need("seed", seed, 0)
    need("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    if feature_dim is not None:
        need("feature_dim", feature_dim, 1)
    if caption_seed is not None:
        need("caption_seed", caption_seed, 0)


def shapes_scenes(split: str, count: int, seed: int = 0) -> list[Scene]:
    """The first ``count`` scenes of a split; a split's scenes don't depend on the other's size."""
    if split not in SPLITS:
        raise ValueError(f"unknown shapes split {split!r}; expected one of {list(SPLITS)}")
    return sample_scenes(count, random.Random(f"capx-shapes/scenes/{seed}/{split}"))


def _split_captions(scenes: Sequence[Scene], split: str, caption_seed: int) -> list[str]:
    rng = random.Random(f"capx-shapes/captions/{caption_seed}/{split}")
    return [text for scene in scenes for text in captions_for(scene, rng, CAPTIONS_PER_IMAGE)]


def _generate(options: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every array of the dataset, keyed as in the cache file."""
    arrays: dict[str, np.ndarray] = {}
    features = {}
    caption_seed = options["seed"] if options["caption_seed"] is None else options["caption_seed"]
    for split in SPLITS:
        scenes = shapes_scenes(split, options[f"num_{split}"], options["seed"])
        images = render_images(scenes, options["image_size"])
        features[split] = image_features(images)
        arrays[f"{split}_captions"] = np.asarray(_split_captions(scenes, split, caption_seed),
                                                 dtype=np.str_)
        arrays[f"{split}_image_idxs"] = np.repeat(np.arange(len(scenes)), CAPTIONS_PER_IMAGE)
    arrays["train_features"], arrays["val_features"] = standardize(
        features["train"], features["val"],
        feature_dim=None if options["feature_dim"] == FIXED_DIM else options["feature_dim"])
    return arrays


def _cache_key(options: dict[str, Any]) -> str:
    return json.dumps({"format_version": FORMAT_VERSION, **options}, sort_keys=True)


def _cache_path(cache_dir: Path, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"shapes-v{FORMAT_VERSION}-{digest}.npz"


def _read_cache(path: Path, key: str, options: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The cached arrays if ``path`` holds exactly this dataset, else None (never half-trusted)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        _validate(arrays, key, options)
        return arrays
    except Exception as exc:  # noqa: BLE001 - any unreadable or wrong file is regenerated
        warnings.warn(f"shapes cache file {path} is unusable ({type(exc).__name__}: {exc}); "
                      f"regenerating it", RuntimeWarning, stacklevel=3)
        return None


def _validate(arrays: dict[str, np.ndarray], key: str, options: dict[str, Any]) -> None:
    if str(arrays["key"]) != key:
        raise ValueError("it was written for other options")
    for split in SPLITS:
        n = options[f"num_{split}"]
        features = arrays[f"{split}_features"]
        if features.shape != (n, options["feature_dim"]) or features.dtype != np.float32:
            raise ValueError(f"{split}_features has shape {features.shape}, dtype {features.dtype}")
        if not np.isfinite(features).all():
            raise ValueError(f"{split}_features holds non-finite values")
        if arrays[f"{split}_captions"].shape != (n * CAPTIONS_PER_IMAGE,):
            raise ValueError(f"{split}_captions has shape {arrays[f'{split}_captions'].shape}")
        idxs = arrays[f"{split}_image_idxs"]
        if not np.array_equal(idxs, np.repeat(np.arange(n), CAPTIONS_PER_IMAGE)):
            raise ValueError(f"{split}_image_idxs does not list each image "
                             f"{CAPTIONS_PER_IMAGE} times")
    float(arrays["seconds_to_generate"])


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically (temp file in the same folder, then os.replace); failure only warns."""
    try:
        atomic_savez(path, arrays)
    except OSError as exc:
        warnings.warn(f"could not write the shapes cache file {path} ({exc}); the data is used "
                      f"without caching. Set dataset.cache_dir or CAPX_CACHE_DIR to a writable "
                      f"folder", RuntimeWarning, stacklevel=3)


@DATASETS.register("shapes")
def shapes(
    num_train: int = 2000,
    num_val: int = 300,
    seed: int = 0,
    image_size: int = 48,
    feature_dim: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    caption_seed: int | None = None,
) -> CaptionData:
    """Procedural scenes of coloured shapes, five grammar captions each, pixel-only features.

    ``seed`` picks the scenes (and the captions, unless ``caption_seed`` is given: the same
    pictures and features with other captions). Features are pixel descriptors z-scored on the
    training split and scaled to an RMS of 0.4, like PCA output; ``feature_dim`` (default: the
    descriptor count, ``FIXED_DIM``) asks for a fixed orthogonal map to another size. Results
    are cached under ``cache_dir`` (default:
    :func:`default_cache_dir`); ``use_cache=False`` neither reads nor writes the cache.
    """
    _check_options(num_train, num_val, seed, image_size, feature_dim, caption_seed)
    options = {"num_train": int(num_train), "num_val": int(num_val), "seed": int(seed),
               "image_size": int(image_size),
               "feature_dim": FIXED_DIM if feature_dim is None else int(feature_dim),
               "caption_seed": None if caption_seed is None else int(caption_seed)}
    key = _cache_key(options)
    path = _cache_path(Path(cache_dir).expanduser() if cache_dir else default_cache_dir(), key)
    started = time.perf_counter()
    arrays = _read_cache(path, key, options) if use_cache else None
    from_cache = arrays is not None
    if arrays is None:
        arrays = _generate(options)
        arrays["seconds_to_generate"] = np.float64(time.perf_counter() - started)
        arrays["key"] = np.str_(key)
        if use_cache:
            _write_cache(path, arrays)
    info = {
        "generator": "capx.datasets.shapes",
        "format_version": FORMAT_VERSION,
        "options": options,
        "seconds_to_generate": float(arrays["seconds_to_generate"]),
        "seconds_to_load": time.perf_counter() - started,
        "from_cache": from_cache,
        "cache_path": str(path) if use_cache else None,
        "captions_per_image": CAPTIONS_PER_IMAGE,
    }
    first_id = {"train": 0, "val": num_train}  # image ids unique across splits (kfold pools them)
    splits = {split: _split(arrays, split, first_id[split]) for split in SPLITS}
    return CaptionData(name="shapes", train=splits["train"], val=splits["val"], info=info)


def _split(arrays: dict[str, np.ndarray], split: str, first_id: int) -> CaptionSplit:
    features = arrays[f"{split}_features"]
    return CaptionSplit(
        features=features,
        captions=arrays[f"{split}_captions"].tolist(),
        image_idxs=arrays[f"{split}_image_idxs"],
        image_ids=first_id + np.arange(len(features), dtype=np.int64),
        urls=None,
    )


def shapes_images(split: str = "train", indices: Sequence[int] | np.ndarray | None = None, *,
                  num_train: int = 2000, num_val: int = 300, seed: int = 0, image_size: int = 48,
                  feature_dim: int | None = None, cache_dir: Any = None, use_cache: bool = True,
                  caption_seed: int | None = None) -> np.ndarray:
    """The pictures of a split as uint8 (n, H, W, 3), re-rendered (fast and exact).

    Takes the same options as :func:`shapes`, so a dataset config can be passed as is (those
    that don't change the pictures are ignored); ``indices`` selects rows (image ids), e.g. the
    images whose captions are being shown.
    """
    del feature_dim, cache_dir, use_cache, caption_seed  # they don't change the pictures
    _check_options(num_train, num_val, seed, image_size, 1, None)
    count = num_train if split == "train" else num_val
    rows = np.arange(count) if indices is None else np.asarray(indices, dtype=np.int64).ravel()
    if rows.size and (rows.min() < 0 or rows.max() >= count):
        raise IndexError(f"shapes {split} image indices must be in [0, {count}), got "
                         f"[{rows.min()}, {rows.max()}]")
    scenes = shapes_scenes(split, int(rows.max()) + 1 if rows.size else 0, seed)
    return render_images([scenes[i] for i in rows], image_size)


def shapes_pictures(image_ids: Sequence[int] | np.ndarray, *, num_train: int = 2000,
                    **options: Any) -> np.ndarray:
    """The pictures of images by id (train ids first, then val ids from ``num_train``), for the
    sample-caption grid whatever split scheme put them in the dev split."""
    ids = np.asarray(image_ids, dtype=np.int64).ravel()
    out = np.empty((len(ids), options.get("image_size", 48), options.get("image_size", 48), 3),
                   dtype=np.uint8)
    is_val = ids >= num_train
    for split, mask, rows in (("train", ~is_val, ids), ("val", is_val, ids - num_train)):
        if mask.any():
            out[mask] = shapes_images(split, rows[mask], num_train=num_train, **options)
    return out


shapes.images_for = shapes_pictures  # the pictures beside sample captions (datasets.base.pictures_of)
