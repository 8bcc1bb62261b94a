"""Sizes checked before they are allocated: a job whose config asks for more memory than the limit
is refused before any data is read or any array made, naming the setting and the estimate."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hydra import compose, initialize_config_dir

from capx.budget import hidden_for_budget
from capx.run.config import ConfigError
from capx.run.sizes import GB, MIN_VOCAB, check_sizes, estimate
from tests.support import REPO, SMOKE, smoke_config


def test_the_estimate_is_the_sum_of_its_lower_bounds():
    config = smoke_config("dataset.num_train=1000", "dataset.num_val=100",
                          "model.wordvec_dim=10", "model.hidden_dim=20", "solver.batch_size=5",
                          "tokenizer.max_length=30")
    data, parameters, activations = estimate(config)
    length = 30 + 2  # <START> and <END> around the caption
    assert data.bytes == 1100 * (1 * 4 + length * 4)  # a feature row of at least 1 float32
    count = 10 * 20 + 20 * 20 + 20 + 1 * 20 + 20 + MIN_VOCAB * 10 + 20 * MIN_VOCAB + MIN_VOCAB
    assert parameters.bytes == count * 4 * (2 + 2)  # float32; gradient and Adam's two moments
    assert activations.bytes == 5 * length * (10 + 20 + MIN_VOCAB) * 4


@pytest.mark.parametrize("override, setting", [
    ("dataset.num_train=99999999999999", "dataset.num_train=99999999999999"),
    ("model.param_budget=1000000000000", "model.param_budget=1000000000000"),
    ("model.wordvec_dim=100000000", "model.wordvec_dim=100000000"),
])
def test_sizes_far_above_the_machine_are_refused_before_any_work(workdir, capsys, override,
                                                                 setting):
    import capx.run.main

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*SMOKE, override])
    assert capx.run.main.main(cfg) == 2
    err = capsys.readouterr().err
    assert "memory: this job needs at least" in err and setting in err
    assert "memory_limit_gb" in err and "Traceback" not in err
    assert not (workdir / "mlflow.db").exists()  # refused before the store was opened


def test_the_limit_is_a_setting():
    config = smoke_config()
    needed = sum(part.bytes for part in estimate(config))
    check_sizes(replace(config, memory_limit_gb=needed / GB * 1.01))  # fits
    with pytest.raises(ConfigError, match=r"above the limit of .* \(memory_limit_gb=") as caught:
        check_sizes(replace(config, memory_limit_gb=needed / GB / 2))
    assert "dataset.num_train=40" in str(caught.value)


def test_a_budget_no_hidden_size_reaches_is_an_error_not_a_smaller_model():
    with pytest.raises(ValueError, match=r"model.param_budget=1,000,000,000,000 is above"):
        hidden_for_budget(10 ** 12, "lstm", vocab_size=50, input_dim=16, wordvec_dim=8)
