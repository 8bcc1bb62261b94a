"""A plugin written only from the README's "Writing a plugin" text, chosen by group option.

The tokenizer below follows the README and nothing else: it subclasses
``capx.tokenizers.base.Tokenizer``, implements ``normalize``, ``tokenize`` and ``join``, registers
itself with ``TOKENIZERS.register``, and sets its own ``default_max_length``. Chosen as
``tokenizer=<name>`` with no conf/ file, its class default must apply (it once failed with
"tokenizer.max_length: must be an integer >= 1, got None").
"""

from __future__ import annotations

import sys
import textwrap
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore

from capx.registry import TOKENIZERS
from capx.run.build import make_tokenizer
from capx.run.config import as_dict, check, validate
from capx.run.schemas import plugin_defaults, prepare_plugin_options
from capx.tokenizers.base import Tokenizer
from tests.support import REPO, SMOKE, run_in_process

CONF = REPO / "conf"

README_TOKENIZER = '''
from capx.registry import TOKENIZERS
from capx.tokenizers.base import Tokenizer


@TOKENIZERS.register("readme_words")
class ReadmeWords(Tokenizer):
    default_max_length = 24

    def normalize(self, text):
        return " ".join(text.lower().split())

    def tokenize(self, text):
        return self.normalize(text).split()

    def join(self, symbols):
        return " ".join(symbols)
'''


@pytest.fixture
def readme_plugin(tmp_path, monkeypatch):
    """The README tokenizer as an importable module; the registry and the ConfigStore are
    restored afterwards."""
    TOKENIZERS.names()  # the built-ins first, then a copy the test may add to
    monkeypatch.setattr(TOKENIZERS, "_entries", dict(TOKENIZERS._entries))
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "readme_tokenizer.py").write_text(textwrap.dedent(README_TOKENIZER))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "readme_tokenizer", raising=False)
    yield "plugins=[readme_tokenizer]"
    ConfigStore.instance().repo.get("tokenizer", {}).pop("readme_words.yaml", None)


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[*SMOKE, *overrides])


def test_a_readme_tokenizer_chosen_by_group_option_gets_its_class_default(readme_plugin):
    prepare_plugin_options([readme_plugin, "tokenizer=readme_words"], CONF)
    config = validate(_compose(readme_plugin, "tokenizer=readme_words"))
    assert config.tokenizer["name"] == "readme_words"
    assert config.tokenizer["max_length"] == 24  # the class's default_max_length, recorded
    data = SimpleNamespace(train=SimpleNamespace(captions=["A red circle", "a blue square"]))
    tokenizer = make_tokenizer(config.tokenizer, data, None)
    assert tokenizer.max_length == 24 and tokenizer.encode(["a red square"]).shape == (1, 26)
    # the option is in the group's node, so it overrides without '+'
    shorter = validate(_compose(readme_plugin, "tokenizer=readme_words",
                                "tokenizer.max_length=5"))
    assert shorter.tokenizer["max_length"] == 5


@pytest.mark.slow  # 4-10 s of end-to-end runs: the default suite's budget is ~3 min
def test_a_readme_tokenizer_trains_through_run_by_group_option(readme_plugin, workdir):
    prepare_plugin_options([readme_plugin, "tokenizer=readme_words"], CONF)
    assert run_in_process(workdir, readme_plugin, "tokenizer=readme_words") == "FINISHED"


def test_the_base_class_default_applies_when_a_plugin_sets_none(readme_plugin):
    prepare_plugin_options([readme_plugin], CONF)
    plugin = TOKENIZERS.get("readme_words")
    del plugin.default_max_length  # now only the base Tokenizer's default is there
    try:
        assert plugin_defaults(plugin)["max_length"] == Tokenizer.default_max_length == 16
    finally:
        plugin.default_max_length = 24


def test_a_null_plugin_option_takes_the_class_default_and_is_recorded():
    record = as_dict(validate(_compose("tokenizer=char")))
    record["tokenizer"]["max_length"] = None
    checked = check(record)
    assert checked["tokenizer"]["max_length"] == TOKENIZERS.get("char").default_max_length
    assert record["tokenizer"]["max_length"] is None  # the caller's dict is left as it was
