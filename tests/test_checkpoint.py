"""Checkpoints: exact round trip of solver state, atomic writes, clear errors on bad files."""

from __future__ import annotations

import numpy as np
import pytest

from capx.captioner import CaptioningRNN
from capx.checkpoint import CheckpointError, check_compatible, load_checkpoint, save_checkpoint
from capx.solver import CaptioningSolver

VOCAB = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "red", "circle", "square"]


def _solver(hidden: int = 8, seed: int = 0, cell: str = "lstm") -> CaptioningSolver:
    word_to_idx = {w: i for i, w in enumerate(VOCAB)}
    model = CaptioningRNN(word_to_idx, input_dim=6, wordvec_dim=4, hidden_dim=hidden,
                          cell_type=cell, seed=seed)
    rng = np.random.RandomState(0)  # the same data whatever the model seed
    captions = rng.randint(4, len(VOCAB), size=(30, 6)).astype(np.int32)
    captions[:, 0], captions[:, -1] = 1, 2
    data = {"train_captions": captions, "train_image_idxs": rng.randint(0, 10, 30),
            "train_features": rng.randn(10, 6).astype(np.float32),
            "word_to_idx": word_to_idx, "idx_to_word": VOCAB}
    return CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                            batch_size=5, num_epochs=2, verbose=False, seed=seed)


def _tokenizer_dict() -> dict:
    return {"name": "word", "options": {"max_length": 4}, "idx_to_word": VOCAB}


def test_round_trip_continues_identically(tmp_path):
    reference = _solver()
    reference.train()

    first = _solver()
    first.num_epochs = 1
    first.train()
    path = save_checkpoint(tmp_path / "c.npz", first.state_dict(), _tokenizer_dict(),
                           "seed: 0\n", {"run_id": "abc"})
    loaded = load_checkpoint(path)
    assert loaded.meta["run_id"] == "abc" and loaded.config_yaml == "seed: 0\n"
    assert loaded.tokenizer["idx_to_word"] == VOCAB
    assert isinstance(loaded.state["rng_state"], tuple)

    resumed = _solver(seed=99)  # other initial weights and RNG: all must come from the file
    resumed.load_state_dict(loaded.state)
    resumed.train()
    assert resumed.loss_history == reference.loss_history
    for name, value in reference.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], value)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    solver = _solver()
    save_checkpoint(tmp_path / "c.npz", solver.state_dict(), _tokenizer_dict(), "")
    save_checkpoint(tmp_path / "c.npz", solver.state_dict(), _tokenizer_dict(), "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_truncated_file_is_rejected(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", _solver().state_dict(), _tokenizer_dict(), "")
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
    path = save_checkpoint(tmp_path / "c.npz", _solver(hidden=8).state_dict(), _tokenizer_dict(), "")
    bigger = _solver(hidden=12)
    with pytest.raises(CheckpointError, match="shape"):
        check_compatible(load_checkpoint(path), bigger.model.params, VOCAB)
    rnn = _solver(cell="rnn")
    with pytest.raises(CheckpointError, match="shape"):
        check_compatible(load_checkpoint(path), rnn.model.params, VOCAB)


def test_other_vocabulary_is_rejected(tmp_path):
    solver = _solver()
    path = save_checkpoint(tmp_path / "c.npz", solver.state_dict(), _tokenizer_dict(), "")
    other = VOCAB[:4] + ["a", "blue", "circle", "square"]
    with pytest.raises(CheckpointError, match="vocabulary.*id 5: 'red' vs 'blue'"):
        check_compatible(load_checkpoint(path), solver.model.params, other)
