"""Dropout on the word vectors and on the hidden states before the scores (capx.dropout):
gradients against numerical ones with a fixed mask, the fast path equal to the reference with
the same mask, masks drawn from the solver's RNG (reproducible, resumable), and dropout 0 the
CS231n model: no draw, the same numbers."""

import numpy as np
import pytest

from capx.captioner import CaptioningRNN
from capx.dropout import DropoutMasks, check_rate, draw_masks, inverted_mask
from capx.gradcheck import eval_numerical_gradient
from capx.reference import captioning_loss
from capx.solver import CaptioningSolver
from tests.support import toy_data

V = 9
WORD_TO_IDX = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, V)}}


def problem(cell_type, rate=0.4, pack=True, fold="auto", n=6, t=7, seed=0):
    """A float64 model with non-zero biases, captions with <NULL> padding and inside, masks."""
    rng = np.random.RandomState(seed)
    model = CaptioningRNN(WORD_TO_IDX, input_dim=5, wordvec_dim=4, hidden_dim=6,
                          cell_type=cell_type, dtype=np.float64, seed=0, pack=pack,
                          fold_embedding=fold, dropout=rate)
    for name, value in model.params.items():
        model.params[name] = rng.randn(*value.shape) * 0.5
    captions = rng.randint(1, V, size=(n, t + 1))
    captions[rng.rand(n, t + 1) < 0.15] = 0
    for row, length in enumerate(rng.randint(2, t + 2, size=n)):
        captions[row, length:] = 0
    features = rng.randn(n, 5)
    masks = model.dropout_masks(captions, rng)
    return model, features, captions, masks


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
@pytest.mark.parametrize("pack", [True, False])
def test_gradients_with_a_fixed_mask_match_numerical_ones(cell_type, pack):
    model, features, captions, masks = problem(cell_type, pack=pack)
    assert (masks.embed == 0).any() and (masks.hidden == 0).any()
    loss, grads = model.loss(features, captions, dropout=masks)
    for name in model.params:
        numeric = eval_numerical_gradient(
            lambda _: model.loss(features, captions, dropout=masks)[0], model.params[name],
            verbose=False)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("fold", [True, False])
def test_the_fast_path_equals_the_reference_with_the_same_mask(cell_type, pack, fold):
    model, features, captions, masks = problem(cell_type, pack=pack, fold=fold)
    loss, grads = model.loss(features, captions, dropout=masks)
    params = {name: np.array(value) for name, value in model.params.items()}
    ref_loss, ref_grads = captioning_loss(params, features, captions, cell_type, null_id=0,
                                          dropout=masks)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for name, g in ref_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-10, atol=1e-13, err_msg=name)
    # and the mask matters: without it both give another loss
    assert abs(model.loss(features, captions)[0] - loss) > 1e-3


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_an_all_ones_mask_is_no_dropout(cell_type):
    model, features, captions, masks = problem(cell_type)
    ones = DropoutMasks(np.ones_like(masks.embed), np.ones_like(masks.hidden))
    loss, grads = model.loss(features, captions, dropout=ones)
    plain_loss, plain_grads = model.loss(features, captions)
    assert loss == pytest.approx(plain_loss, rel=1e-12)
    np.testing.assert_allclose(grads.flat, plain_grads.flat, rtol=1e-10, atol=1e-13)


def test_masks_are_inverted_dropout_of_the_given_rate():
    rng = np.random.RandomState(5)
    mask = inverted_mask(rng, (200, 300), 0.25, np.float32)
    assert mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.75)}
    dropped = float((mask == 0).mean())
    assert abs(dropped - 0.25) < 5 * np.sqrt(0.25 * 0.75 / mask.size)  # 5 standard errors
    masks = draw_masks(np.random.RandomState(0), np.zeros((3, 8)), 4, 6, 0.5, np.float64)
    assert masks.embed.shape == (3, 7, 4) and masks.hidden.shape == (3, 7, 6)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_a_rate_outside_0_1_is_refused(rate):
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        check_rate(rate)
    with pytest.raises(ValueError, match="dropout"):
        CaptioningRNN(WORD_TO_IDX, input_dim=5, wordvec_dim=4, hidden_dim=6, dropout=rate)


def test_no_dropout_draws_nothing_from_the_rng():
    model, _, captions, masks = problem("lstm", rate=0.0)
    assert masks is None
    rng = np.random.RandomState(3)
    before = rng.get_state()[1].copy()
    assert model.dropout_masks(captions, rng) is None
    np.testing.assert_array_equal(rng.get_state()[1], before)


def solver_for(rate, seed=0, num_epochs=2):
    data = toy_data(num=20, T=6, V=V, D=5)
    model = CaptioningRNN(data["word_to_idx"], input_dim=5, wordvec_dim=4, hidden_dim=6,
                          cell_type="lstm", seed=seed, dropout=rate)
    return CaptioningSolver(model, data, optim_config={"learning_rate": 1e-2}, batch_size=5,
                            num_epochs=num_epochs, verbose=False, seed=seed)


def test_training_with_dropout_is_reproducible_and_resumes_exactly():
    first, second = solver_for(0.3), solver_for(0.3)
    first.train()
    second.train()
    assert first.loss_history == second.loss_history
    np.testing.assert_array_equal(first.model.params.flat, second.model.params.flat)
    plain = solver_for(0.0)
    plain.train()
    assert plain.loss_history[1:] != first.loss_history[1:]
    # one epoch, a checkpoint's state into a fresh solver, one more epoch: the same run
    half = solver_for(0.3, num_epochs=1)
    half.train()
    resumed = solver_for(0.3)
    resumed.load_state_dict(half.state_dict())
    resumed.train()
    assert resumed.loss_history == first.loss_history
    np.testing.assert_array_equal(resumed.model.params.flat, first.model.params.flat)


def test_dropout_0_trains_the_model_without_dropout_bit_for_bit():
    """A model without the dropout hook (CS231n-style) and capx's at dropout 0: same run."""

    class NoHook:
        def __init__(self, model):
            self.model, self.params, self.vocab_size = model, model.params, model.vocab_size

        def loss(self, features, captions):
            return self.model.loss(features, captions)

    with_zero, without = solver_for(0.0), solver_for(0.0)
    without.model = NoHook(without.model)
    with_zero.train()
    without.train()
    assert with_zero.loss_history == without.loss_history
    np.testing.assert_array_equal(with_zero.model.params.flat, without.model.params.flat)
