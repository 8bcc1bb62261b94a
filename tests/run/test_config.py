"""Config composition and validation: presets, lengths that follow the tokenizer, clear errors."""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from capx.run.config import ConfigError, as_dict, check, validate
from capx.run.schemas import (
    FIXED_GROUPS, ModelConfig, SolverConfig, TopLevelConfig, plugins_from_overrides,
    register_plugin_options,
)
from test_registry import fresh_plugins, install_demo_plugin  # noqa: F401 - a fixture, a helper

from tests.support import REPO, run_py

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
    config = validate(_compose())
    assert config.dataset["name"] == "shapes"
    assert config.tokenizer["name"] == "word"
    assert config.solver.grad_clip is None


def test_validation_returns_the_typed_config_and_as_dict_its_record():
    """Each part reads its own typed section; the dict a record holds is the checked one."""
    composed = _compose("solver.learning_rate=0.02", "model.param_budget=50000")
    config = validate(composed)
    assert isinstance(config, TopLevelConfig)
    assert isinstance(config.solver, SolverConfig) and isinstance(config.model, ModelConfig)
    assert config.solver.learning_rate == 0.02 and config.model.param_budget == 50000
    record = as_dict(config)
    assert record == check(composed)  # the same values, so params and fingerprints stay
    assert list(record) == [f.name for f in dataclasses.fields(TopLevelConfig)]
    assert validate(record) == config  # a checkpoint's saved config reads back the same


def test_an_integer_for_a_float_setting_becomes_a_float_in_a_plain_dict():
    record = as_dict(validate(_compose()))
    record["solver"]["learning_rate"] = 1
    assert validate(record).solver.learning_rate == 1.0
    assert isinstance(validate(record).solver.learning_rate, float)


def test_caption_length_follows_the_tokenizer():
    word, char = _compose("tokenizer=word").tokenizer, _compose("tokenizer=char").tokenizer
    assert (word.name, char.name) == ("word", "char")
    assert char.max_length > 3 * word.max_length


def test_model_preset_picks_its_tokenizer():
    cfg = _compose("model=char")
    assert cfg.tokenizer.name == "char" and cfg.tokenizer.max_length > 50
    assert cfg.model.wordvec_dim < _compose("model=word").model.wordvec_dim
    assert _compose("model=char", "tokenizer=word").tokenizer.name == "word"  # command line wins


@pytest.mark.parametrize("name", ["char", "bpe", "word"])
def test_a_tokenizer_brings_the_sizes_its_preset_gives(name):
    """`-m tokenizer=char,word` and `-m model=char,word` give the same runs."""
    by_tokenizer = OmegaConf.to_container(_compose(f"tokenizer={name}"))
    by_preset = OmegaConf.to_container(_compose(f"model={name}"))
    assert by_tokenizer == by_preset
    assert by_tokenizer["tokenizer"]["name"] == name


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
    ("model.dropout=1.0", "model.dropout", "[0, 1)"),
    ("model.dropout=-0.2", "model.dropout", "[0, 1)"),
    ("model.image_features=zeros", "model.image_features", "real, constant"),
    ("evaluation.real_words_file=no/such/words.json", "evaluation.real_words_file",
     "must be an existing file"),
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
    assert validate(_edit(gru, "plugins=[plugins.gru]")).cell["name"] == "gru"


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


# -- types and defaults: Hydra checks the schemas of capx/run/schemas.py while composing -------------


def test_wrong_type_is_refused_by_hydra_naming_the_key():
    with pytest.raises(ConfigCompositionException, match="solver.learning_rate=abc") as info:
        _compose("solver.learning_rate=abc")
    assert isinstance(info.value.__cause__, ValidationError)
    assert "full_key: solver.learning_rate" in str(info.value.__cause__)
    with pytest.raises(ConfigCompositionException) as info:
        _compose("model.hidden_dim=big")
    assert "full_key: model.hidden_dim" in str(info.value.__cause__)


def test_run_py_cfg_job_fails_on_a_wrong_type(tmp_path):
    result = run_py(tmp_path, None, '--cfg', 'job', 'solver.learning_rate=abc')
    assert result.returncode != 0
    assert "Value 'abc' of type 'str' could not be converted to Float" in result.stderr
    assert "full_key: solver.learning_rate" in result.stderr
    assert "learning_rate: abc" not in result.stdout


@pytest.fixture
def conf_copy(tmp_path) -> Path:
    shutil.copytree(CONF, tmp_path / "conf")
    return tmp_path / "conf"


def _compose_from(conf: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("line, bad_line, key, message", [
    ("learning_rate: 1.0e-2", "learnig_rate: 1.0e-2", "full_key: solver.learnig_rate",
     "not in 'SolverConfig'"),
    ("num_epochs: 10", "num_epochs: ten", "full_key: solver.num_epochs",
     "could not be converted to Integer"),
])
def test_a_bad_key_or_value_in_a_yaml_file_is_refused(conf_copy, line, bad_line, key, message):
    adam = conf_copy / "solver" / "adam.yaml"
    assert line in adam.read_text()
    adam.write_text(adam.read_text().replace(line, bad_line))
    with pytest.raises(ConfigCompositionException) as info:
        _compose_from(conf_copy)
    text = f"{info.value}\n{info.value.__cause__}"
    assert key in text and message in text


def test_a_bad_key_in_a_tokenizers_model_section_is_refused(conf_copy):
    char = conf_copy / "tokenizer" / "char.yaml"
    char.write_text(char.read_text().replace("  hidden_dim: 128", "  hiden_dim: 128"))
    with pytest.raises(ConfigCompositionException, match="hiden_dim"):
        _compose_from(conf_copy, "tokenizer=char")


def test_the_schemas_declare_types_only():
    """No dataclass default can disagree with the YAML: every value of the schema is missing."""
    keys = {f"{f.name}.{g.name}" for f in dataclasses.fields(TopLevelConfig)
            if f.name in FIXED_GROUPS for g in dataclasses.fields(FIXED_GROUPS[f.name])}
    keys |= {f.name for f in dataclasses.fields(TopLevelConfig) if f.name not in FIXED_GROUPS}
    assert OmegaConf.missing_keys(OmegaConf.structured(TopLevelConfig)) == keys


def test_defaults_come_from_the_yaml_files(defaults):
    def load(path: str) -> dict:
        return yaml.safe_load((CONF / path).read_text())

    top = load("config.yaml")
    for key in ("seed", "plugins", "resume", "progress", "study", "split", "checkpoint",
                "evaluation"):
        assert defaults[key] == top[key], key
    assert defaults["model"] == {**top["model"], **load("tokenizer/word.yaml")["model"]}
    assert defaults["tokenizer"] == load("tokenizer/word.yaml")["tokenizer"]
    assert defaults["solver"] == load("solver/adam.yaml")
    assert defaults["tracking"] == load("tracking/local.yaml")
    assert defaults["dataset"] == load("dataset/shapes.yaml")
    assert defaults["cell"] == load("cell/lstm.yaml")
    assert defaults["decoding"] == load("decoding/greedy.yaml")


def test_a_config_with_missing_values_names_them():
    with pytest.raises(ConfigError) as info:
        validate(OmegaConf.structured(TopLevelConfig))
    assert "solver.learning_rate: no value" in str(info.value)
    assert "seed: no value" in str(info.value)


# -- plugin cells and tokenizers as group options ------------------------------------------------


@pytest.fixture
def config_store(monkeypatch):
    """Nodes a test stores in Hydra's ConfigStore are forgotten afterwards."""
    store = ConfigStore.instance()
    monkeypatch.setattr(store, "repo", copy.deepcopy(store.repo))
    return store


def test_registered_names_without_a_yaml_become_group_options(config_store):
    stored = register_plugin_options(CONF)
    assert "cell/lstm" not in stored and "tokenizer/char" not in stored  # they have YAML files
    assert register_plugin_options(CONF) == []  # once is enough


def test_entry_point_cell_is_a_group_option(fresh_plugins, config_store):
    install_demo_plugin(fresh_plugins)
    assert "cell/demo" in register_plugin_options(CONF)
    assert validate(_compose("cell=demo")).cell == {"name": "demo"}


def test_run_py_takes_an_entry_point_cell_by_group_option(fresh_plugins, tmp_path):
    install_demo_plugin(fresh_plugins)
    result = run_py(tmp_path, None, '--cfg', 'job', 'cell=demo', pythonpath=str(fresh_plugins))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["cell"] == {"name": "demo"}


@pytest.mark.slow
def test_run_py_trains_an_entry_point_cell_chosen_by_group_option(fresh_plugins, tmp_path):
    install_demo_plugin(fresh_plugins)
    result = run_py(tmp_path, None, 'experiment=smoke', 'progress=false', 'cell=demo', f'hydra.run.dir={tmp_path}/out', pythonpath=str(fresh_plugins))
    assert result.returncode == 0, result.stderr
    assert "FINISHED" in result.stdout + result.stderr
    saved = yaml.safe_load((tmp_path / "out" / ".hydra" / "config.yaml").read_text())
    assert saved["cell"] == {"name": "demo"}


def test_plugins_override_is_read_before_composing():
    assert plugins_from_overrides(["cell=gru", "plugins=[plugins.gru]"]) == ["plugins.gru"]
    assert plugins_from_overrides(["+plugins=[a,b]", "-m", "plugins=[b],[c]"]) == ["a", "b", "c"]
    assert plugins_from_overrides(["plugins=[oops", "seed=1"]) == []  # Hydra reports it


def test_run_py_takes_a_command_line_plugins_cell_by_group_option(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "capx_cli_cell.py").write_text(
        "from capx.cells.rnn import RNNCell\nfrom capx.registry import CELLS\n"
        "CELLS.add('cli_cell', RNNCell)\n")
    result = run_py(tmp_path, None, '--cfg', 'job', 'plugins=[capx_cli_cell]', 'cell=cli_cell', pythonpath=str(site))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["cell"] == {"name": "cli_cell"}


def test_run_py_names_a_plugin_module_that_cannot_be_imported(tmp_path):
    result = run_py(tmp_path, None, '--cfg', 'job', 'plugins=[no_such_module]', 'cell=gru')
    assert result.returncode == 2
    assert "plugins: could not import plugin module 'no_such_module'" in result.stderr
    assert "Traceback" not in result.stderr


def test_plugin_cell_with_a_yaml_file_by_group_option():
    config = validate(_compose("plugins=[plugins.gain_rnn]", "cell=gain_rnn"))
    assert config.cell == {"name": "gain_rnn"} and config.plugins == ["plugins.gain_rnn"]


@pytest.mark.slow
def test_run_py_trains_a_plugins_cell_chosen_by_group_option(tmp_path):
    result = run_py(tmp_path, None, 'experiment=smoke', 'progress=false', 'plugins=[plugins.gain_rnn]', 'cell=gain_rnn', f'hydra.run.dir={tmp_path}/out')
    assert result.returncode == 0, result.stderr
    assert "FINISHED" in result.stdout + result.stderr


def test_a_config_saved_before_dropout_and_image_features_validates_with_neither(defaults):
    """Checkpoints and runs from before ``model.dropout`` and ``model.image_features`` resume
    as what they were: no dropout, the real image features."""
    old = copy.deepcopy(defaults)
    del old["model"]["dropout"], old["model"]["image_features"]
    assert defaults["model"]["dropout"] == 0.0
    assert validate(old).model.dropout == 0.0
    assert validate(old).model.image_features == "real"
    del old["evaluation"]["real_words_file"], old["evaluation"]["compare_spellers"]
    del old["evaluation"]["shuffled_control"]
    assert validate(old).evaluation.real_words_file is None
    assert validate(old).evaluation.compare_spellers is False
    assert validate(old).evaluation.shuffled_control is True


def test_a_config_missing_a_setting_is_an_error_naming_it(defaults):
    partial = copy.deepcopy(defaults)
    del partial["solver"]["lr_decay"]
    with pytest.raises(ConfigError, match=r"solver.lr_decay: no value"):
        validate(partial)
