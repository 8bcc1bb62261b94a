"""Reading CS231n's data files with errors that name the file, the key and what to do: the
:class:`DataError` every data loader raises, where the COCO folder is, and HDF5, JSON and text
readers (big feature arrays straight into float32). Used by :mod:`capx.data` (CS231n's API) and
the dataset plugins."""

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
