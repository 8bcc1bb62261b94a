"""The same captioner and solver train with every tokenizer, on generated and real data."""

import numpy as np
import pytest

from capx.captioner import CaptioningRNN
from capx.registry import DATASETS, TOKENIZERS, load_plugins
from capx.solver import CaptioningSolver


def train(data, tokenizer_name, cell_type, max_length, epochs=4):
    tokenizer = TOKENIZERS.get(tokenizer_name)(max_length=max_length).fit(data.train.captions)
    solver_data = data.to_solver_data(tokenizer)
    model = CaptioningRNN(tokenizer.word_to_idx, input_dim=data.feature_dim, wordvec_dim=32,
                          hidden_dim=64, cell_type=cell_type, seed=0)
    solver = CaptioningSolver(model, solver_data, num_epochs=epochs, batch_size=50,
                              optim_config={"learning_rate": 1e-2}, verbose=False, seed=0)
    solver.train()
    val_loss, _ = model.loss(solver_data["val_features"][solver_data["val_image_idxs"]],
                             solver_data["val_captions"])
    return solver.loss_history, val_loss, model, tokenizer


SLOW = pytest.mark.slow  # 4-12 s each: the default suite keeps one case of each test


@pytest.mark.parametrize("tokenizer_name,max_length,cell_type", [
    ("word", 24, "rnn"),
    *[pytest.param(t, n, c, marks=SLOW) for t, n in [("word", 24), ("char", 110)]
      for c in ["rnn", "lstm", "gru"] if (t, c) != ("word", "rnn")]])
def test_trains_on_shapes(tokenizer_name, max_length, cell_type):
    load_plugins(["plugins.gru"])
    data = DATASETS.get("shapes")(num_train=100, num_val=20, image_size=32)
    history, val_loss, model, tokenizer = train(data, tokenizer_name, cell_type, max_length)
    first, last = np.mean(history[:2]), np.mean(history[-2:])
    assert last < 0.7 * first, (first, last)
    assert np.isfinite(val_loss)
    captions = tokenizer.decode(model.sample(data.val.features[:3], max_length + 1))
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)


@pytest.mark.parametrize("tokenizer_name,max_length", [("word", 16),
                                                        pytest.param("char", 80, marks=SLOW)])
def test_trains_on_coco_mini(coco_mini, tokenizer_name, max_length):
    data = DATASETS.get("coco_json")(base_dir=str(coco_mini), max_train=100)
    history, val_loss, _, _ = train(data, tokenizer_name, "lstm", max_length, epochs=6)
    first, last = np.mean(history[:2]), np.mean(history[-2:])
    assert last < 0.8 * first, (first, last)
    assert np.isfinite(val_loss)
