"""The benchmark harness on tiny sizes, and proof that its three implementations are one model.

No timing is asserted. The seed baseline and the PyTorch model must give capx's loss and gradients
for the same weights (float64 everywhere), otherwise the speed comparison would be meaningless.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import bench_captioner as bench
from benchmarks import machine, memory_full_scale, seed_baseline, torch_baseline
from capx.captioner import CaptioningRNN

needs_torch = pytest.mark.skipif(not torch_baseline.torch_available(),
                                 reason="PyTorch not installed (optional 'bench' extra)")

N, T, D, W, H = 4, 6, 6, 5, 7
CASES = [("rnn", 12), ("lstm", 12), ("rnn", 60), ("lstm", 60)]  # V < N*T folds the embedding


def tiny_problem(cell: str, vocab_size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    vocab = bench.make_vocab(vocab_size)
    model = CaptioningRNN(vocab, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell,
                          dtype=np.float64, seed=seed)
    # Non-zero biases, so a misplaced bias or gate permutation shows up.
    for name in ("b_proj", "b", "b_vocab"):
        model.params[name] = rng.standard_normal(model.params[name].shape)
    features = rng.standard_normal((N, D))
    captions = bench.make_captions(N, T, vocab_size, rng)
    return model, vocab, features, captions


def capx_params(model: CaptioningRNN) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.params.items()}


# -- synthetic data -----------------------------------------------------------------------------

def test_captions_are_padded_like_coco():
    captions = bench.make_captions(4000, 16, 1004, np.random.default_rng(1))
    targets = captions[:, 1:]
    assert (captions[:, 0] == 1).all()
    assert ((targets == 2).sum(axis=1) == 1).all(), "exactly one <END> per caption"
    end = np.argmax(targets == 2, axis=1)
    after_end = np.arange(16)[None, :] > end[:, None]
    assert (targets[after_end] == 0).all() and (targets[~after_end] != 0).all()
    assert abs((targets == 0).mean() - bench.PAD_FRACTION) < 0.02


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="vocab_size"):
        bench.make_vocab(3)
    with pytest.raises(ValueError, match="pad_fraction"):
        bench.make_captions(2, 5, 10, np.random.default_rng(0), pad_fraction=0.7)


# -- the seed baseline is capx's model ----------------------------------------------------------

@pytest.mark.parametrize("cell,vocab_size", CASES)
def test_seed_baseline_matches_capx_loss_and_grads(cell, vocab_size):
    model, vocab, features, captions = tiny_problem(cell, vocab_size)
    seed_model = seed_baseline.SeedCaptioningRNN(vocab, capx_params(model), cell)
    loss, grads = model.loss(features, captions)
    seed_loss, seed_grads = seed_model.loss(features, captions)
    assert seed_loss == pytest.approx(loss, rel=1e-12)
    for name in model.params:
        np.testing.assert_allclose(seed_grads[name], grads[name], rtol=1e-9, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_seed_training_step_matches_capx_adam(cell):
    model, vocab, features, captions = tiny_problem(cell, 12)
    seed_model = seed_baseline.SeedCaptioningRNN(vocab, capx_params(model), cell)
    seed_configs: dict = {}
    capx_step = bench.capx_trainer(model, features, captions)
    for _ in range(3):
        assert seed_baseline.train_step(seed_model, seed_configs, features, captions) == \
            pytest.approx(capx_step(), rel=1e-10)
    for name, value in model.params.items():
        np.testing.assert_allclose(seed_model.params[name], value, rtol=1e-8, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_seed_sampling_matches_capx(cell):
    model, vocab, features, _ = tiny_problem(cell, 12)
    model.params["b_vocab"][2] += 1.5  # make <END> likely, so stopping is exercised
    seed_model = seed_baseline.SeedCaptioningRNN(vocab, capx_params(model), cell)
    np.testing.assert_array_equal(seed_model.sample(features, 9), model.sample(features, 9))


def test_seed_baseline_uses_only_the_reference_layers():
    """The seed reuses capx's readable reference (layers, reference loss), none of its fast code."""
    import ast
    import importlib
    import inspect

    def capx_imports(module):
        tree = ast.parse(inspect.getsource(module))
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        return {name for name in names if name.split(".")[0] == "capx"}

    reference = {"capx.layers", "capx.reference"}
    assert capx_imports(seed_baseline) <= reference, capx_imports(seed_baseline)
    for name in reference:
        assert capx_imports(importlib.import_module(name)) <= reference, name


# -- the PyTorch model is capx's model ----------------------------------------------------------

@needs_torch
@pytest.mark.parametrize("cell,vocab_size", CASES)
def test_torch_matches_capx_loss_and_grads(cell, vocab_size):
    import torch

    model, vocab, features, captions = tiny_problem(cell, vocab_size)
    torch_model = torch_baseline.build_torch_model(capx_params(model), cell, vocab,
                                                   dtype=torch.float64, threads=None)
    trainer = torch_baseline.TorchTrainer(torch_model, features, captions)
    loss, grads = model.loss(features, captions)
    torch_loss = torch_model.loss(trainer.features, trainer.captions)
    torch_loss.backward()
    assert float(torch_loss.detach()) == pytest.approx(loss, rel=1e-12)
    torch_grads = torch_model.capx_grads()
    for name in model.params:
        np.testing.assert_allclose(torch_grads[name], grads[name], rtol=1e-9, atol=1e-12,
                                   err_msg=name)


@needs_torch
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_torch_sampling_matches_capx(cell):
    import torch

    model, vocab, features, _ = tiny_problem(cell, 12)
    model.params["b_vocab"][2] += 1.5
    torch_model = torch_baseline.build_torch_model(capx_params(model), cell, vocab,
                                                   dtype=torch.float64, threads=None)
    trainer = torch_baseline.TorchTrainer(torch_model, features, np.zeros((1, 2), np.int64))
    np.testing.assert_array_equal(trainer.sample(features, 9), model.sample(features, 9))


def test_gate_permutation_round_trips():
    a = np.arange(2 * 12).reshape(2, 12)
    moved = torch_baseline.capx_to_torch_gates(a, 3, "lstm")
    assert not np.array_equal(moved, a)
    np.testing.assert_array_equal(moved[:, 6:9], a[:, 9:12])  # g moves to third place
    np.testing.assert_array_equal(torch_baseline.torch_to_capx_gates(moved, 3, "lstm"), a)
    np.testing.assert_array_equal(torch_baseline.capx_to_torch_gates(a, 12, "rnn"), a)


# -- harness smoke runs -------------------------------------------------------------------------

def tiny_settings() -> bench.Settings:
    return bench.Settings(
        batch_sizes=(3,), repeats=1, seed_repeats=1, sample_repeats=1, warmup=0, threads=None,
        run_torch=torch_baseline.torch_available(), input_dim=D, wordvec_dim=W, hidden_dim=H,
        tokenizations=(bench.Tokenization("word", 5, 20, 6), bench.Tokenization("char", 7, 10, 8)),
        sample_images=4)


def test_harness_runs_on_tiny_sizes():
    settings = tiny_settings()
    results = bench.run_benchmark(settings, log=lambda msg: None)
    train, sample = results["train"], results["sample"]
    assert len(train) == 4 and len(sample) == 4
    has_torch = settings.run_torch
    for row in train:
        assert row.capx_ms > 0 and row.seed_ms > 0 and row.gflop > 0
        assert (row.torch_ms is not None) == has_torch
        assert 0 < row.real_tokens < row.batch * row.steps
    # float32 capx/torch against the float64 seed: the same loss up to float32 rounding
    assert bench.max_loss_gap(train) < 1e-4
    text = bench.train_table(train) + bench.sample_table(sample)
    assert text.count("| word |") == 4 and text.count("| char |") == 4


def test_flop_count_grows_with_work():
    base = bench.training_gflop(10, 100, "rnn", 50, D, W, H)
    assert bench.training_gflop(10, 200, "rnn", 50, D, W, H) > base
    assert bench.training_gflop(10, 100, "lstm", 50, D, W, H) > base
    assert bench.training_gflop(10, 100, "rnn", 500, D, W, H) > base


def test_quick_flag_shrinks_the_grid():
    quick = bench.settings_from_args(bench.parse_args(["--quick", "--no-torch"]))
    full = bench.settings_from_args(bench.parse_args([]))
    assert quick.batch_sizes == (50,) and full.batch_sizes == bench.BATCH_SIZES
    assert quick.repeats < full.repeats and full.repeats >= 20
    assert not quick.run_torch and full.run_torch


def test_machine_probes():
    report = machine.check_busy(seconds=0.05)
    assert report.other_cores_busy >= 0 and isinstance(report.busy, bool)
    assert "machine" in report.describe()
    assert machine.gemm_peak_gflops(size=64, repeats=2) > 0
    info = machine.machine_info()
    assert info["cpu_model"] and info["numpy"] == np.__version__
    assert set(info["env"]) >= {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}


def test_memory_measure_on_tiny_data():
    row = memory_full_scale.measure("rnn", iterations=2, timed_iterations=1, num_captions=300,
                                    num_images=40, batch_size=10)
    assert row["peak_traced_mb"] >= row["data_mb"] > 0
    assert row["seconds_per_iteration"] > 0 and row["iterations_per_epoch"] == 30
    assert np.isfinite(row["final_loss"])


# -- the GEMM floor lists the step's products -----------------------------------------------------

@pytest.mark.parametrize("cell,vocab_size", CASES)
@pytest.mark.parametrize("fold", [False, True])
def test_the_floor_lists_the_products_of_the_step(cell, vocab_size, fold):
    """Unfolded, the listed products are the FLOP formula's work: 3 x forward, less the image
    projection's second backward product (only dW_proj is needed, not d(features)). Folded, the
    input products run over the batch's distinct tokens instead of the P positions."""
    from benchmarks import gemm_floor

    model, _, _, captions = tiny_problem(cell, vocab_size)
    model.fold_embedding = fold
    gemms = gemm_floor.training_gemms(model, captions)
    real = int((captions[:, 1:] != 0).sum())
    formula = bench.training_gflop(N, real, cell, vocab_size, D, W, H) * 1e9
    flop = sum(g.flop for g in gemms)
    width = model.params["Wh"].shape[1]
    if not fold:
        assert flop == pytest.approx(formula - 2 * N * D * H)
    else:
        input_work = 3 * 2 * W * width  # forward and both gradient products, per row
        tokens = len(np.unique(captions[:, :-1][captions[:, 1:] != 0]))
        assert tokens < real
        assert flop == pytest.approx(formula - 2 * N * D * H + input_work * (tokens - real))


def test_the_floor_of_sampling_follows_the_decode():
    from benchmarks import gemm_floor

    model, _, features, _ = tiny_problem("lstm", 12)
    gemms = gemm_floor.sampling_gemms(model, features, max_length=5)
    assert gemms[0].label.startswith("h0") and len(gemms) >= 3
    assert gemm_floor.floor_ms(gemms, repeats=1) > 0


@pytest.mark.parametrize("cell,vocab_size,fold", [(c, v, f) for c, v in CASES for f in (False, True)]
                         + [("lstm", 200, True)])
def test_the_profiled_step_is_the_models_step_bit_for_bit(cell, vocab_size, fold):
    """benchmarks/profile_step.py mirrors CaptioningRNN.loss with laps; the same loss and
    gradients (bit for bit) keep the mirror from drifting, and its products are the floor's."""
    from benchmarks import gemm_floor, profile_step

    model, _, features, captions = tiny_problem(cell, vocab_size)
    model.fold_embedding = fold
    loss, grads = model.loss(features, captions)
    clock = profile_step.Clock()
    profiled_loss, profiled_grads = profile_step.profiled_loss(model, features, captions, clock)
    assert profiled_loss == loss
    for name in grads:
        assert np.array_equal(profiled_grads[name], grads[name]), name
    lapped = {p for p, g in clock.groups.items() if g == profile_step.GEMM}
    assert lapped == {g.label for g in gemm_floor.training_gemms(model, captions)}


def test_the_profile_table_accounts_for_the_step():
    from benchmarks import profile_step

    model, _, features, captions = tiny_problem("lstm", 12)
    result = profile_step.profile(model, features, captions, repeats=2, warmup=1)
    assert set(result["alone"]) <= set(result["phases"])
    assert result["plain_step"] > 0 and all(s > 0 for s in result["alone"].values())
    table = profile_step.profile_table(result)
    for phase in result["phases"]:
        assert f"| {phase} |" in table
    assert "Adam" in table and "(floor)" in table
    row = profile_step.summary_row("lstm", result)
    assert row.count("|") == profile_step.SUMMARY_HEADER.splitlines()[0].count("|")


def test_compare_checkouts_tabulates_medians_and_refuses_a_folder_that_is_not_capx(tmp_path):
    from benchmarks import compare_checkouts

    before = [{"word rnn, N=25": 10.0}, {"word rnn, N=25": 14.0}, {"word rnn, N=25": 12.0}]
    after = [{"word rnn, N=25": 6.0}, {"word rnn, N=25": 9.0}, {"word rnn, N=25": 5.0}]
    table = compare_checkouts.table(before, after)
    assert "| word rnn, N=25 | 12.0 (10.0-14.0) | 6.0 (5.0-9.0) | 0.50 |" in table
    with pytest.raises(SystemExit, match="not a capx checkout"):
        compare_checkouts.main([str(tmp_path)])


def test_the_columns_take_turns_with_the_floor():
    calls = []
    settings = bench.Settings(repeats=6, rounds=3, warmup=1)
    times = bench.in_turns({"capx": lambda: calls.append("capx"),
                            "torch": lambda: calls.append("torch")},
                           [], settings)
    assert set(times) == {"capx", "torch", "floor"} and times["floor"] == 0.0
    # per turn: one warm-up and two timed calls each, capx then torch
    assert calls == (["capx"] * 3 + ["torch"] * 3) * 3


def test_zipf_ids_keep_the_special_tokens_and_repeat_words_more_than_uniform_ids():
    from benchmarks import bench_fold

    rng = np.random.default_rng(0)
    captions = bench.make_captions(50, 16, 1004, rng)
    zipf = bench_fold.zipf_ids(captions, 1004, rng)
    special = captions < len(bench.SPECIALS)
    assert np.array_equal(zipf[special], captions[special])
    assert (zipf[~special] >= len(bench.SPECIALS)).all() and (zipf < 1004).all()
    assert len(np.unique(zipf[~special])) < 0.7 * len(np.unique(captions[~special]))
