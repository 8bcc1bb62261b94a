"""Diverging training: a clear FAILED run that keeps its last good checkpoint, and metrics that
give inf for a diverged model instead of raising OverflowError."""

from __future__ import annotations

import math

import numpy as np
import pytest

import capx.solver
from capx.captioner import CaptioningRNN
from capx.checkpoint import load_checkpoint
from capx.metrics.likelihood import Likelihood
from capx.solver import CaptioningSolver, TrainingDivergedError, uniform_guess_loss
from tests.support import artifact_paths, read_runs, run_in_process, toy_data


def _toy_solver(update_rule: str, learning_rate: float) -> CaptioningSolver:
    data = toy_data()
    model = CaptioningRNN(data["word_to_idx"], input_dim=10, wordvec_dim=4, hidden_dim=5, seed=0)
    return CaptioningSolver(model, data, update_rule=update_rule,
                            optim_config={"learning_rate": learning_rate}, num_epochs=2,
                            batch_size=4, verbose=False, seed=0)


@pytest.mark.parametrize("update_rule, learning_rate, why", [
    ("adam", 1e3, "times a uniform guess's"),
    ("sgd", 1e20, "times a uniform guess's"),
    ("sgd", 1e300, "the update made .* non-finite"),  # the rate is inf in float32
])
def test_a_huge_learning_rate_stops_training_as_diverged(update_rule, learning_rate, why):
    solver = _toy_solver(update_rule, learning_rate)
    with pytest.raises(TrainingDivergedError,
                       match=f"training diverged at iteration \\d+ \\(.*{why}.*lower the "
                             f"learning rate \\(solver.learning_rate, now .* with {update_rule}"
                       ) as caught:
        solver.train()
    # clipping is advice for plain SGD only: Adam's step does not grow with the gradient
    assert ("solver.grad_clip" in str(caught.value)) == (update_rule == "sgd")
    assert len(solver.loss_history) == solver.iteration  # the diverged step is not counted
    assert all(math.isfinite(loss) for loss in solver.loss_history)


def test_an_ordinary_rate_does_not_trip_the_divergence_check():
    solver = _toy_solver("adam", 1e-1)
    solver.train()
    assert solver.iteration == solver.num_iterations


def test_uniform_guess_loss_counts_non_null_targets():
    captions = np.array([[1, 5, 6, 2, 0, 0], [1, 5, 2, 0, 0, 0]])  # 3 and 2 targets
    assert uniform_guess_loss(captions, 10) == pytest.approx(2.5 * math.log(10))


def test_perplexity_of_a_diverged_model_is_inf_not_an_overflow():
    nll = np.array([5e4, 6e4])  # nats per caption: beyond what math.exp can take per token
    summary = Likelihood(nll=nll, tokens=np.array([10, 12]), chars=np.array([40, 50]),
                         unk_tokens=0, tokenizer_name="word").summary()
    assert summary["word_token_perplexity"] == math.inf
    assert summary["bits_per_char"] == pytest.approx(nll.sum() / math.log(2) / 90)


def _error_text(client, run_id: str, folder) -> str:
    path = client.download_artifacts(run_id, "error.txt", str(folder))
    with open(path) as f:
        return f.read()


@pytest.mark.parametrize("overrides", [
    ["solver.learning_rate=1e3"],
    pytest.param(["solver.update_rule=sgd", "solver.learning_rate=1e20"], marks=pytest.mark.slow),
])
def test_a_diverging_run_ends_failed_with_a_one_line_reason(workdir, overrides, caplog):
    assert run_in_process(workdir, *overrides, "tracking.log_model=false") == "FAILED"
    client, (r,) = read_runs(workdir)
    assert r.info.status == "FAILED"
    assert r.data.tags["error_type"] == "TrainingDivergedError"
    assert r.data.tags["error"].startswith("TrainingDivergedError: training diverged at "
                                           "iteration 2 (loss ")
    assert "OverflowError" not in _error_text(client, r.info.run_id, workdir)
    failed = [rec.getMessage() for rec in caplog.records if "diverged" in rec.getMessage()]
    assert failed and "no epoch finished, so there is no checkpoint" in failed[0]
    assert not (workdir / "outputs" / "job" / "checkpoints" / "last.npz").exists()


def _from_call(monkeypatch, first_bad_call: int, spoil) -> None:
    """From the ``first_bad_call``-th update on, ``spoil(params, optim_configs)`` first."""
    calls = {"n": 0}
    update = capx.solver.apply_update

    def spoiled(rule, params, grads, configs):
        calls["n"] += 1
        if calls["n"] >= first_bad_call:
            spoil(params, configs)
        return update(rule, params, grads, configs)

    monkeypatch.setattr(capx.solver, "apply_update", spoiled)


def _raise_rate(params, configs):
    configs["flat"]["learning_rate"] = 1e3


def _poison(params, configs):
    params.flat[0] = np.nan


@pytest.mark.parametrize("spoil, why", [
    (_raise_rate, "times a uniform guess's"),
    pytest.param(_poison, "the update made W_proj non-finite", marks=pytest.mark.slow),
])
def test_divergence_after_an_epoch_keeps_that_epochs_checkpoint(workdir, monkeypatch, spoil,
                                                                 why):
    """The smoke run has 10 iterations per epoch; from the 11th update training goes bad."""
    _from_call(monkeypatch, 11, spoil)
    assert run_in_process(workdir, "solver.num_epochs=3", "tracking.log_model=false") == "FAILED"
    client, (r,) = read_runs(workdir)
    assert r.info.status == "FAILED" and why in r.data.tags["error"]
    last = load_checkpoint(workdir / "outputs" / "job" / "checkpoints" / "last.npz")
    assert last.state["epoch"] == 1 and last.state["iteration"] == 10  # loads: all finite
    assert {"checkpoints/last.npz", "checkpoints/best.npz"} <= artifact_paths(client, r.info.run_id)


def test_the_checkpointer_keeps_its_files_when_the_parameters_are_not_finite(tmp_path, caplog):
    from capx.run.callbacks import Checkpointer, RunState
    from tests.support import small_solver, word_tokenizer_dict

    state, solver = RunState(), small_solver()
    checkpointer = Checkpointer(state, tmp_path, word_tokenizer_dict(), "", {"run_id": "r"})
    last = checkpointer.save(solver)
    state.best_checkpoint = checkpointer.save(solver, "best.npz")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    solver.model.params.flat[3] = np.inf
    assert checkpointer.save(solver) == last == state.last_checkpoint
    assert checkpointer.save(solver, "best.npz") == state.best_checkpoint
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert "not writing" in caplog.text and "W_proj" in caplog.text
