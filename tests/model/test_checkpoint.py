"""Checkpoints: exact round trip of solver state, atomic writes, clear errors on bad files."""

from __future__ import annotations

import numpy as np
import pytest

from capx.captioner import CaptioningRNN
from capx.checkpoint import CheckpointError, check_compatible, load_checkpoint, save_checkpoint
from capx.solver import CaptioningSolver

from tests.support import VOCAB, small_solver, word_tokenizer_dict



def test_round_trip_continues_identically(tmp_path):
    reference = small_solver()
    reference.train()

    first = small_solver()
    first.num_epochs = 1
    first.train()
    path = save_checkpoint(tmp_path / "c.npz", first.state_dict(), word_tokenizer_dict(),
                           "seed: 0\n", {"run_id": "abc"})
    loaded = load_checkpoint(path)
    assert loaded.meta["run_id"] == "abc" and loaded.config_yaml == "seed: 0\n"
    assert loaded.tokenizer["idx_to_word"] == VOCAB
    assert isinstance(loaded.state["rng_state"], tuple)

    resumed = small_solver(seed=99)  # other initial weights and RNG: all must come from the file
    resumed.load_state_dict(loaded.state)
    resumed.train()
    assert resumed.loss_history == reference.loss_history
    for name, value in reference.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], value)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    solver = small_solver()
    save_checkpoint(tmp_path / "c.npz", solver.state_dict(), word_tokenizer_dict(), "")
    save_checkpoint(tmp_path / "c.npz", solver.state_dict(), word_tokenizer_dict(), "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_truncated_file_is_rejected(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", small_solver().state_dict(), word_tokenizer_dict(), "")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_not_a_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a capx checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.npz")


def test_other_model_shape_is_rejected(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", small_solver(hidden=8).state_dict(), word_tokenizer_dict(), "")
    bigger = small_solver(hidden=12)
    with pytest.raises(CheckpointError, match="shape"):
        check_compatible(load_checkpoint(path), bigger.model.params, VOCAB)
    rnn = small_solver(cell="rnn")
    with pytest.raises(CheckpointError, match="shape"):
        check_compatible(load_checkpoint(path), rnn.model.params, VOCAB)


def test_other_vocabulary_is_rejected(tmp_path):
    solver = small_solver()
    path = save_checkpoint(tmp_path / "c.npz", solver.state_dict(), word_tokenizer_dict(), "")
    other = VOCAB[:4] + ["a", "blue", "circle", "square"]
    with pytest.raises(CheckpointError, match="vocabulary.*id 5: 'red' vs 'blue'"):
        check_compatible(load_checkpoint(path), solver.model.params, other)
