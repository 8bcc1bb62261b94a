"""CaptioningSolver: the CS231n overfitting runs, callbacks, clipping, state round trip."""

import numpy as np
import pytest

from capx.captioner import CaptioningRNN
from capx.data import decode_captions, load_coco_data
from capx.solver import Callback, CaptioningSolver, NonFiniteLossError

from tests.support import toy_data


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_overfits_toy_data(cell_type):
    data = toy_data()
    model = CaptioningRNN(data["word_to_idx"], input_dim=10, wordvec_dim=16, hidden_dim=32,
                          cell_type=cell_type, seed=0)
    solver = CaptioningSolver(model, data, update_rule="adam", num_epochs=150, batch_size=12,
                              optim_config={"learning_rate": 1e-2}, verbose=False, seed=0)
    solver.train()
    assert len(solver.loss_history) == 150
    assert solver.loss_history[-1] < 0.05 * solver.loss_history[0]


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, solver):
        self.events.append("begin")

    def on_iteration_end(self, solver, loss):
        self.events.append(("it", solver.iteration))

    def on_epoch_end(self, solver):
        self.events.append(("epoch", solver.epoch, solver.learning_rate))

    def on_train_end(self, solver):
        self.events.append("end")


def test_callbacks_epochs_and_lr_decay():
    data = toy_data(num=12)
    model = CaptioningRNN(data["word_to_idx"], input_dim=10, wordvec_dim=4, hidden_dim=5, seed=0)
    rec = Recorder()
    solver = CaptioningSolver(model, data, num_epochs=2, batch_size=4, lr_decay=0.5,
                              optim_config={"learning_rate": 0.1}, verbose=False,
                              callbacks=[rec], seed=0)
    solver.train()
    assert rec.events[0] == "begin" and rec.events[-1] == "end"
    assert [e for e in rec.events if e[0] == "epoch"] == [("epoch", 1, 0.05), ("epoch", 2, 0.025)]
    assert solver.iteration == 6 and solver.epoch == 2
    assert len(solver.epoch_seconds) == 2 and all(s > 0 for s in solver.epoch_seconds)
    assert solver.epoch_learning_rate == pytest.approx(0.05)  # the rate epoch 2 trained with


def test_stop_training_from_a_callback():
    class StopAt(Callback):
        def on_iteration_end(self, solver, loss):
            if solver.iteration == 3:
                solver.stop_training = True

    data = toy_data()
    model = CaptioningRNN(data["word_to_idx"], input_dim=10, wordvec_dim=4, hidden_dim=5, seed=0)
    solver = CaptioningSolver(model, data, num_epochs=5, batch_size=4, verbose=False,
                              callbacks=[StopAt()], seed=0)
    solver.train()
    assert solver.iteration == 3


def test_state_dict_resume_matches_uninterrupted_run():
    data = toy_data()

    def make(seed=0):
        model = CaptioningRNN(data["word_to_idx"], input_dim=10, wordvec_dim=4, hidden_dim=5,
                              cell_type="lstm", seed=seed)
        return CaptioningSolver(model, data, num_epochs=4, batch_size=4, lr_decay=0.9,
                                verbose=False, seed=7)

    full = make()
    full.train()
    first = make()
    first.num_epochs = 2
    first.train()
    state = first.state_dict()
    resumed = make(seed=99)  # different initial weights: the state must overwrite them
    resumed.load_state_dict(state)
    resumed.train()
    np.testing.assert_allclose(resumed.loss_history, full.loss_history, rtol=1e-6)
    np.testing.assert_array_equal(resumed.model.params.flat, full.model.params.flat)


def test_non_finite_loss_stops_with_clear_error_and_keeps_parameters():
    data = toy_data()
    model = CaptioningRNN(data["word_to_idx"], input_dim=10, wordvec_dim=4, hidden_dim=5, seed=0)
    solver = CaptioningSolver(model, data, num_epochs=1, batch_size=4, verbose=False, seed=0)
    solver.train()
    before = model.params.flat.copy()
    data["train_features"][:] = np.nan
    solver.num_epochs = 2
    with pytest.raises(NonFiniteLossError, match="learning rate"):
        solver.train()
    np.testing.assert_array_equal(model.params.flat, before)


def test_gradient_clipping_bounds_global_norm():
    data = toy_data()
    model = CaptioningRNN(data["word_to_idx"], input_dim=10, wordvec_dim=4, hidden_dim=5, seed=0)
    solver = CaptioningSolver(model, data, update_rule="sgd", grad_clip=1e-3,
                              optim_config={"learning_rate": 1.0}, num_epochs=1, batch_size=4,
                              verbose=False, seed=0)
    before = model.params.flat.copy()
    solver._step()
    assert np.linalg.norm(model.params.flat - before) == pytest.approx(1e-3, rel=1e-3)


def test_per_parameter_path_equals_flat_path():
    """A model whose params are a plain dict trains with CS231n-style per-parameter configs,
    along exactly the same trajectory as the flat-buffer path."""
    data = toy_data()
    inner = CaptioningRNN(data["word_to_idx"], input_dim=10, wordvec_dim=4, hidden_dim=5, seed=0)

    class PlainModel:
        params = {k: v.copy() for k, v in inner.params.items()}

        def loss(self, features, captions):
            for k, v in self.params.items():
                inner.params[k] = v
            loss, grads = inner.loss(features, captions)
            return loss, {k: v.copy() for k, v in grads.items()}

    def train(model):
        solver = CaptioningSolver(model, data, num_epochs=8, batch_size=4, verbose=False,
                                  seed=0, optim_config={"learning_rate": 1e-2})
        solver.train()
        return solver

    plain = train(PlainModel())
    flat_model = CaptioningRNN(data["word_to_idx"], input_dim=10, wordvec_dim=4, hidden_dim=5,
                               seed=0)
    flat = train(flat_model)
    assert set(plain.optim_configs) == set(inner.params) and set(flat.optim_configs) == {"flat"}
    np.testing.assert_allclose(plain.loss_history, flat.loss_history, rtol=1e-6)
    for name, value in PlainModel.params.items():
        np.testing.assert_allclose(value, flat_model.params[name], rtol=1e-5, atol=1e-7)


@pytest.mark.slow  # 10-17 s; the memorising and fingerprint tests train real steps by default
def test_cs231n_small_data_overfit_on_coco_mini(cs231n_dir, capsys):
    """The assignment's run: loss from ~77 to below 0.5 in 100 iterations."""
    np.random.seed(231)
    data = load_coco_data(cs231n_dir, max_train=50)
    model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1],
                          hidden_dim=512, wordvec_dim=256, cell_type="rnn")
    solver = CaptioningSolver(model, data, update_rule="adam", num_epochs=50, batch_size=25,
                              optim_config={"learning_rate": 5e-3}, lr_decay=0.95, verbose=True,
                              print_every=10)
    solver.train()
    history = solver.loss_history
    print(f"loss {history[0]:.2f} -> {history[-1]:.3f} in {len(history)} iterations")
    assert len(history) == 100
    assert 60 < history[0] < 95
    assert history[-1] < 0.5
    assert "(Iteration 1 / 100) loss:" in capsys.readouterr().out


@pytest.mark.parametrize("cell_type,lr_decay", [
    ("rnn", 0.95), pytest.param("lstm", 0.995, marks=pytest.mark.slow)])  # lstm: 2x the rnn
def test_first_captions_of_50_images_are_memorised(cs231n_dir, cell_type, lr_decay):
    np.random.seed(231)
    data = load_coco_data(cs231n_dir)
    _, first = np.unique(data["train_image_idxs"], return_index=True)
    keep = first[:50]
    data["train_captions"] = data["train_captions"][keep]
    data["train_image_idxs"] = data["train_image_idxs"][keep]
    model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1],
                          hidden_dim=512, wordvec_dim=256, cell_type=cell_type)
    solver = CaptioningSolver(model, data, update_rule="adam", num_epochs=50, batch_size=25,
                              optim_config={"learning_rate": 5e-3}, lr_decay=lr_decay,
                              verbose=False)
    solver.train()
    assert solver.loss_history[-1] < 0.3
    features = data["train_features"][data["train_image_idxs"]]
    samples = decode_captions(model.sample(features, max_length=30), data["idx_to_word"])
    truth = decode_captions(data["train_captions"], data["idx_to_word"])
    strip = lambda s: s.replace("<START>", "").replace("<END>", "").split()  # noqa: E731
    exact = sum(strip(a) == strip(b) for a, b in zip(samples, truth))
    print(f"{cell_type}: final loss {solver.loss_history[-1]:.3f}, {exact}/50 exact")
    assert exact >= 45
