"""Reading a checkpoint's entries one by one, each checked before its data is read.

A checkpoint is a zip of ``.npy`` entries. :class:`EntryReader` reads only the entries asked for
(the header, tokenizer and config texts, then the arrays the header names: the parameters with
the shapes it gives, the optimiser and RNG state it refers to, the loss history); an entry the
header does not name is never read. Before an entry's data is read, its ``.npy`` header is read
and its shape, dtype and size are checked against what the checkpoint's header allows, so a
crafted file cannot make capx allocate more than the model it describes (nor unpickle anything).
"""

from __future__ import annotations

import math
import zipfile
from typing import Any

import numpy as np

from capx.runtime import room_for

TEXT_LIMIT = 64 * 1024 ** 2  # bytes of a text entry (header, tokenizer, config)
RNG_LIMIT = 1024 ** 2        # bytes of one RNG state array (MT19937's is 2.5 KB)
HEADER_SLACK = 4096          # an .npy entry's own header, beyond its data


class EntryError(ValueError):
    """An entry is missing, too large, or not the shape or type the header says."""


class EntryReader:
    """The ``.npy`` entries of an open checkpoint zip, read one at a time on request."""

    def __init__(self, archive: zipfile.ZipFile):
        self.archive = archive
        self.infos = {info.filename[:-4]: info for info in archive.infolist()
                      if info.filename.endswith(".npy")}

    def __contains__(self, name: str) -> bool:
        return name in self.infos

    def read(self, name: str, max_bytes: int, shape: tuple[int, ...] | None = None,
             kinds: str = "biufcSU") -> np.ndarray:
        """Entry ``name``, once its stored size, declared shape and dtype fit: at most
        ``max_bytes`` of data, ``shape`` if given, a dtype kind in ``kinds``."""
        info = self.infos.get(name)
        if info is None:
            raise EntryError(f"it has no entry {name!r}")
        if info.file_size > max_bytes + HEADER_SLACK:
            raise EntryError(f"entry {name!r} is {info.file_size:,} bytes, more than the "
                             f"{max_bytes:,} its header allows")
        with self.archive.open(info) as handle:
            declared, dtype = _array_header(handle, name)
        if dtype.kind not in kinds or dtype.hasobject:
            raise EntryError(f"entry {name!r} holds {dtype}, not a plain array")
        if shape is not None and declared != tuple(shape):
            raise EntryError(f"entry {name!r} has shape {declared}, its header says "
                             f"{tuple(shape)}")
        size = math.prod(declared) * dtype.itemsize
        if size > max_bytes:
            raise EntryError(f"entry {name!r} declares {size:,} bytes ({declared} {dtype}), "
                             f"more than the {max_bytes:,} its header allows")
        too_big = room_for(size)
        if too_big:
            raise EntryError(f"entry {name!r} ({declared} {dtype}) needs {too_big}")
        with self.archive.open(info) as handle:
            return np.lib.format.read_array(handle, allow_pickle=False)


def _array_header(handle: Any, name: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = np.lib.format.read_magic(handle)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(handle)
    except ValueError as exc:
        raise EntryError(f"entry {name!r} is not an .npy array ({exc})") from exc
    return tuple(int(d) for d in shape), np.dtype(dtype)


def referenced(value: Any, ref_key: str) -> list[str]:
    """The entry names a JSON-encoded structure refers to (``{ref_key: name}`` leaves)."""
    if isinstance(value, dict):
        if ref_key in value:
            return [str(value[ref_key])]
        return [name for v in value.values() for name in referenced(v, ref_key)]
    if isinstance(value, list):
        return [name for v in value for name in referenced(v, ref_key)]
    return []


def shape_list(value: Any) -> tuple[int, ...] | None:
    """``value`` as an array shape (a list of non-negative ints), or None if it is not one."""
    if not isinstance(value, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        return None
    return tuple(value)

