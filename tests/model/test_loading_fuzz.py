"""Files are checked before they are trusted: property and fuzz tests of checkpoint and feature
loading. Whatever the bytes, loading a checkpoint returns one or raises CheckpointError (never
another error, never an allocation the header does not allow, never a read of an entry the
header does not name); non-finite feature rows are an error naming the file and the rows."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capx.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from capx.data_files import DataError, check_finite_rows
from capx.datasets.coco import _read_id_features
from tests.support import small_solver, word_tokenizer_dict


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "c.npz"
    solver = small_solver()
    solver.train()
    save_checkpoint(path, solver.state_dict(), word_tokenizer_dict(), "seed: 0\n")
    return path.read_bytes()


def _load(tmp_path: Path, data: bytes):
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(data)
    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        assert str(path) in str(exc)  # the error names the file
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_corruption_of_a_checkpoint_loads_or_is_a_checkpoint_error(valid_bytes, tmp_path,
                                                                      data):
    damaged = bytearray(valid_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(damaged) - 1))
        damaged[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    _load(tmp_path, bytes(damaged[:cut] if data.draw(st.booleans()) else damaged))


def _rezip(valid: bytes, replace: dict[str, bytes]) -> bytes:
    """The checkpoint with the entries in ``replace`` (name.npy -> raw bytes) swapped or added."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(valid)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename not in replace:
                target.writestr(info, source.read(info))
        for name, raw in replace.items():
            target.writestr(name, raw)
    return out.getvalue()


def _npy_header_only(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    """An .npy entry that declares ``shape`` but holds no data (what a crafted file may do)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entry=st.sampled_from(["params/W_embed", "loss_history", "optim/flat/m",
                              "header_json", "tokenizer_json"]),
       size=st.integers(10 ** 9, 10 ** 15))
def test_an_entry_declaring_more_than_its_header_allows_is_refused_unread(valid_bytes, tmp_path,
                                                                        entry, size):
    crafted = _rezip(valid_bytes, {f"{entry}.npy": _npy_header_only((size,))})
    with pytest.raises(CheckpointError, match="its header allows|has shape|holds|not an .npy"):
        load_checkpoint(_write(tmp_path, crafted))


def test_an_entry_the_header_does_not_name_is_never_read(valid_bytes, tmp_path, monkeypatch):
    crafted = _rezip(valid_bytes, {"extra/huge.npy": _npy_header_only((10 ** 14,)),
                                   "notes.npy": b"not even an array"})
    read = []
    original = zipfile.ZipFile.open

    def watched(archive, name, *args, **kwargs):
        read.append(getattr(name, "filename", name))
        return original(archive, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", watched)
    assert load_checkpoint(_write(tmp_path, crafted)).state["iteration"] > 0
    assert "extra/huge.npy" not in read and "notes.npy" not in read


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "crafted.npz"
    path.write_bytes(data)
    return path


@settings(max_examples=100, deadline=None)
@given(rows=st.integers(1, 40), dim=st.integers(1, 6), data=st.data())
def test_non_finite_feature_rows_are_named(rows, dim, data):
    features = np.random.default_rng(rows * 7 + dim).normal(size=(rows, dim)).astype(np.float32)
    bad = sorted(data.draw(st.sets(st.integers(0, rows - 1), max_size=rows)))
    for row in bad:
        features[row, data.draw(st.integers(0, dim - 1))] = data.draw(
            st.sampled_from([np.nan, np.inf, -np.inf]))
    if not bad:
        assert check_finite_rows(features, "f.h5") is features
        return
    with pytest.raises(DataError) as caught:
        check_finite_rows(features, "f.h5")
    message = str(caught.value)
    assert f"{len(bad)} of {rows} feature rows hold NaN or inf" in message
    assert f"(rows {', '.join(map(str, bad[:10]))}" in message and "f.h5" in message


def test_a_features_file_with_nan_rows_is_refused_when_loaded(tmp_path):
    path = tmp_path / "features.h5"
    features = np.ones((5, 3), dtype=np.float32)
    features[[1, 3], 0] = np.nan
    with h5py.File(path, "w") as h5:
        h5["image_ids"] = np.arange(5)
        h5["features"] = features
    with pytest.raises(DataError, match=r"features.h5 key 'features': 2 of 5 feature rows hold "
                                        r"NaN or inf \(rows 1, 3\)"):
        _read_id_features(path)


def test_files_larger_than_the_memory_available_are_refused_before_they_are_read(
        valid_bytes, tmp_path, monkeypatch):
    """The sizes a file declares (an h5 dataset's shape, a JSON file's length, a checkpoint
    entry's .npy header) are compared with the memory available before anything is read."""
    import capx.runtime
    from capx.data_files import read_float32, read_json

    features = tmp_path / "features.h5"
    with h5py.File(features, "w") as h5:
        h5["image_ids"] = np.arange(200)
        h5["features"] = np.ones((200, 8), dtype=np.float32)
    (tmp_path / "captions.json").write_text('{"images": []}' + " " * 5000)
    checkpoint = _write(tmp_path, valid_bytes)
    monkeypatch.setattr(capx.runtime, "available_memory", lambda: 4096)  # 4 KB
    with pytest.raises(DataError, match=r"features.h5 key 'features' holds \(200, 8\) values: "
                                        r"0.0 GB, more than the 0.0 GB of memory available"):
        _read_id_features(features)
    with h5py.File(features, "r") as h5, pytest.raises(DataError, match="memory available"):
        read_float32(h5["features"])
    with pytest.raises(DataError, match="bytes of JSON: parsed, .* memory available"):
        read_json(tmp_path / "captions.json")
    monkeypatch.setattr(capx.runtime, "available_memory", lambda: 64)  # below every entry
    with pytest.raises(CheckpointError, match="needs .* more than the .* memory available"):
        load_checkpoint(checkpoint)
