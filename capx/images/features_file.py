"""Features of image files into an h5 file in coco-mini's layout, resumably.

The file holds ``image_ids`` int64 (N,), ``features`` (N, D) (float16 for the encoder's own
features, as in coco-mini's ``features_effl0.h5``; float32 once projected), gzip, and
``file_names`` (each image's path relative to its folder), with the encoder and projection as
attributes. Rows are appended batch by batch and flushed, so an interrupted run keeps its work
and the next run skips the images already in the file. An image whose name ends with a COCO id
(``000000397133.jpg``) gets that id; any other a stable id from the MD5 of its name.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from capx.datasets.coco import image_id_from_url
from capx.encoders.preprocess import ImageReadError, open_image
from capx.encoders.projection import OUT_DIM, coco_mini_centre, project
from capx.registry import ENCODERS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
LAYOUT_VERSION = 1


class FeatureFileError(ValueError):
    """An existing features file that does not match what is asked (other encoder, layout)."""


@dataclass(frozen=True)
class ImageItem:
    """One image to encode: its name in the features file and its path on disk."""

    name: str
    path: Path


def list_images(inputs: Sequence[str | os.PathLike], unique_names: bool = True) -> list[ImageItem]:
    """Image files named directly (named by their file name), plus those under folders
    (recursive, by suffix; named by their path below the folder), sorted by name. With
    ``unique_names=False`` two files may share a name (each is still listed once) and the
    order is the order given (folders sorted)."""
    items: dict[str, ImageItem] = {}
    for entry in inputs:
        path = Path(entry).expanduser()
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if file.suffix.lower() in IMAGE_SUFFIXES:
                    _add(items, ImageItem(file.relative_to(path).as_posix(), file), unique_names)
        elif path.is_file():
            _add(items, ImageItem(path.name, path), unique_names)
        else:
            raise FileNotFoundError(f"image or folder {path} does not exist")
    if not unique_names:
        return list(items.values())
    return sorted(items.values(), key=lambda item: item.name)


def _add(items: dict[str, ImageItem], item: ImageItem, unique_names: bool) -> None:
    """Add ``item``; the same file twice is one image, two files of one name are an error."""
    key = item.name if unique_names else str(item.path.resolve())
    known = items.get(key)
    if known is None:
        items[key] = item
    elif known.path.resolve() != item.path.resolve():
        raise ValueError(f"two images would both be named {item.name!r} in the features file "
                         f"({known.path} and {item.path}); pass a folder above both instead, so "
                         f"their names include their sub-folders")


def image_id_for(name: str) -> int:
    """The COCO id a file name ends with, else 60 bits of the MD5 of the name (stable)."""
    coco_id = image_id_from_url(name)
    if coco_id is not None:
        return coco_id
    return int(hashlib.md5(name.encode()).hexdigest()[:15], 16)


class FeatureFile:
    """An h5 features file to add rows to (created if missing; an existing one is only read
    until rows are appended, so a complete file is left as it was); a context manager."""

    def __init__(self, path: str | os.PathLike, feature_dim: int, dtype: Any,
                 attributes: dict[str, str]):
        import h5py

        self.path = Path(path).expanduser()
        self.attributes = dict(attributes)
        exists = self.path.exists()
        if exists:
            self._h5 = self._open_existing(h5py, feature_dim, dtype)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._h5 = h5py.File(self.path, "w")
            self._create(h5py, feature_dim, dtype)
        self.names = [n.decode() if isinstance(n, bytes) else str(n)
                      for n in self._h5["file_names"][()]]

    def _open_existing(self, h5py: Any, feature_dim: int, dtype: Any) -> Any:
        try:
            h5 = h5py.File(self.path, "r")  # reopened for appending by the first append
        except OSError as exc:
            raise FeatureFileError(f"{self.path} exists but is not a readable h5 file ({exc}); "
                                   f"move it away or choose another --out") from exc
        problems = [key for key in ("image_ids", "features", "file_names") if key not in h5]
        if not problems:
            if h5["features"].shape[1:] != (feature_dim,) or h5["features"].dtype != dtype:
                problems.append(f"features {h5['features'].shape[1:]} {h5['features'].dtype}, "
                                f"not ({feature_dim},) {np.dtype(dtype)}")
            for key, value in self.attributes.items():
                if str(h5.attrs.get(key, "")) != value:
                    problems.append(f"{key} {h5.attrs.get(key, '(none)')!r}, not {value!r}")
        if problems:
            h5.close()
            raise FeatureFileError(
                f"{self.path} already exists and was not written by this command with these "
                f"settings ({'; '.join(problems)}); it is left untouched. Choose another "
                f"--out, or the settings it was made with, to add to it")
        return h5

    def _create(self, h5py: Any, feature_dim: int, dtype: Any) -> None:
        h5 = self._h5
        h5.create_dataset("image_ids", shape=(0,), maxshape=(None,), dtype=np.int64,
                          chunks=(1024,))
        h5.create_dataset("features", shape=(0, feature_dim), maxshape=(None, feature_dim),
                          dtype=dtype, chunks=(64, feature_dim), compression="gzip")
        h5.create_dataset("file_names", shape=(0,), maxshape=(None,),
                          dtype=h5py.string_dtype(), chunks=(1024,))
        h5.attrs["layout_version"] = LAYOUT_VERSION
        for key, value in self.attributes.items():
            h5.attrs[key] = value
        h5.flush()

    def append(self, names: Sequence[str], features: np.ndarray) -> None:
        """Add rows and flush, so they survive an interruption."""
        if self._h5.mode == "r":
            import h5py

            self._h5.close()
            self._h5 = h5py.File(self.path, "a")
        used = set(self._h5["image_ids"][()].tolist())
        ids = []
        for name in names:
            image_id = image_id_for(name)
            if image_id in used:  # two names with one COCO id: fall back to the name's hash
                image_id = int(hashlib.md5(name.encode()).hexdigest()[:15], 16)
            used.add(image_id)
            ids.append(image_id)
        start = len(self.names)
        for key, values in (("image_ids", np.asarray(ids, np.int64)),
                            ("features", features), ("file_names", list(names))):
            dset = self._h5[key]
            dset.resize(start + len(names), axis=0)
            dset[start:] = values
        self.names.extend(names)
        self._h5.flush()

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> "FeatureFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def encode_into(encoder: Any, items: Iterable[ImageItem], out: FeatureFile,
                transform: Callable[[np.ndarray], np.ndarray] | None = None,
                batch_size: int = 16, progress: Any = None) -> list[tuple[ImageItem, str]]:
    """Encode the ``items`` not yet in ``out``, batch by batch; returns the unreadable ones with
    their error (they are skipped, the rest go on). ``progress`` is a tqdm-like bar or None."""
    done = set(out.names)
    failures: list[tuple[ImageItem, str]] = []
    names: list[str] = []
    pixels: list[np.ndarray] = []

    def flush() -> None:
        if names:
            features = encoder.encode(np.stack(pixels))
            if transform is not None:
                features = transform(features)
            out.append(names, features)
            names.clear()
            pixels.clear()

    for item in items:
        if item.name in done:
            continue
        try:
            pixels.append(encoder.preprocess(open_image(item.path)))
            names.append(item.name)
        except ImageReadError as exc:
            failures.append((item, str(exc)))
        if len(names) >= batch_size:
            flush()
        if progress is not None:
            progress.update(1)
    flush()
    return failures


@dataclass
class FeatureSettings:
    """An encoder and what follows it: the features a model was (or will be) trained on."""

    encoder: Any
    transform: Callable[[np.ndarray], np.ndarray] | None
    feature_dim: int
    dtype: Any
    attributes: dict[str, str]
    centre: np.ndarray | None = None  # the 512-d projection's train mean, when projecting


def feature_settings(encoder: str = "efficientnet_lite0", weights: str | None = None,
                     project_512: bool = False, centre_from: str | os.PathLike | None = None,
                     centre: np.ndarray | None = None) -> FeatureSettings:
    """The named encoder, optionally followed by coco-mini's 512-d projection centred on its
    train mean: ``centre`` itself, or computed from ``centre_from`` (the coco-mini folder)."""
    model = ENCODERS.get(encoder)(weights=weights)
    if not project_512:
        return FeatureSettings(model, None, model.feature_dim, np.float16,
                               {"encoder": encoder, "projection": "none"})

    if centre is None and centre_from is None:
        raise ValueError("the 512-d projection is centred on coco-mini's train mean: name the "
                         "coco-mini folder (--centre-from ../shared/data/coco-mini on the "
                         "command line, dataset.centre_from in a config)")
    mean = np.asarray(centre if centre is not None else coco_mini_centre(centre_from),
                      dtype=np.float32)
    settings = FeatureSettings(model, lambda f: project(f, mean), OUT_DIM, np.float32,
                               {"encoder": encoder, "projection": "coco_mini_512"})
    settings.centre = mean
    return settings


def read_features(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """File names and float32 features of a features file."""
    import h5py

    with h5py.File(path, "r") as h5:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in h5["file_names"][()]]
        return names, h5["features"][()].astype(np.float32)
