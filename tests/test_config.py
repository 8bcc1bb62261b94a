"""Config composition and validation: presets, lengths that follow the tokenizer, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import copy

import pytest
import yaml
from omegaconf import OmegaConf
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException

from capx.config import ConfigError, validate

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture(scope="module")
def defaults() -> dict:
    return OmegaConf.to_container(_compose(), resolve=True)


def _edit(base: dict, override: str) -> dict:
    """``base`` with one ``a.b=value`` override applied (a leading + adds a key)."""
    config = copy.deepcopy(base)
    dotted, _, value = override.lstrip("+").partition("=")
    *path, key = dotted.split(".")
    section = config
    for part in path:
        section = section[part]
    section[key] = yaml.safe_load(value)
    return config


def test_defaults_are_valid():
    plain = validate(_compose())
    assert plain["dataset"]["name"] == "shapes"
    assert plain["tokenizer"]["name"] == "word"
    assert plain["solver"]["grad_clip"] is None


def test_caption_length_follows_the_tokenizer():
    word, char = _compose("tokenizer=word").tokenizer, _compose("tokenizer=char").tokenizer
    assert (word.name, char.name) == ("word", "char")
    assert char.max_length > 3 * word.max_length


def test_model_preset_picks_its_tokenizer():
    cfg = _compose("model=char")
    assert cfg.tokenizer.name == "char" and cfg.tokenizer.max_length > 50
    assert cfg.model.wordvec_dim < _compose("model=word").model.wordvec_dim
    assert _compose("model=char", "tokenizer=word").tokenizer.name == "word"  # command line wins


def test_unknown_group_option_lists_the_choices():
    with pytest.raises(MissingConfigException, match="(?s)cell/gruu.*lstm.*rnn"):
        _compose("cell=gruu")


def test_overriding_a_missing_key_is_refused():
    with pytest.raises(ConfigCompositionException, match="learnig_rate"):
        _compose("solver.learnig_rate=0.1")


@pytest.mark.parametrize("override, key, allowed", [
    ("+solver.learnig_rate=0.1", "solver.learnig_rate", "did you mean 'learning_rate'"),
    ("+dataset.num_trian=5", "dataset.num_trian", "num_train"),
    ("+tokenizer.lowercase=true", "tokenizer.lowercase", "max_length"),
    ("+colour=red", "colour", "allowed keys"),
])
def test_misspelled_key_is_named_with_allowed_keys(defaults, override, key, allowed):
    with pytest.raises(ConfigError) as info:
        validate(_edit(defaults, override))
    assert f"{key}: unknown key" in str(info.value) and allowed in str(info.value)


@pytest.mark.parametrize("override, key, expected", [
    ("solver.learning_rate=-0.1", "solver.learning_rate", "positive"),
    ("model.hidden_dim=0", "model.hidden_dim", "positive integer"),
    ("solver.batch_size=0", "solver.batch_size", ">= 1"),
    ("solver.lr_decay=1.5", "solver.lr_decay", "(0, 1]"),
    ("solver.update_rule=adamw", "solver.update_rule", "adam, rmsprop, sgd, sgd_momentum"),
    ("model.hidden_dim=big", "model.hidden_dim", "expected an integer"),
    ("progress=sometimes", "progress", "auto, true, false"),
])
def test_bad_values_name_the_key(defaults, override, key, expected):
    with pytest.raises(ConfigError) as info:
        validate(_edit(defaults, override))
    assert key in str(info.value) and expected in str(info.value)


def test_plugin_cell_needs_its_module(defaults):
    gru = _edit(defaults, "cell.name=gru")
    if "gru" not in __import__("capx.registry").registry.CELLS:  # not imported by another test
        with pytest.raises(ConfigError, match="cell.name: unknown cell 'gru'.*plugins"):
            validate(gru)
    assert validate(_edit(gru, "plugins=[plugins.gru]"))["cell"]["name"] == "gru"


def test_several_problems_are_reported_together(defaults):
    with pytest.raises(ConfigError) as info:
        validate(_edit(_edit(defaults, "solver.learning_rate=-1"), "model.hidden_dim=0"))
    assert "solver.learning_rate" in str(info.value) and "model.hidden_dim" in str(info.value)


def test_run_py_stops_on_a_bad_value_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "solver.learning_rate=-1",
         f"hydra.run.dir={tmp_path}/out"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "solver.learning_rate: must be a positive number" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mlflow.db").exists()  # stopped before any work
