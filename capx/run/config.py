"""Validate a composed experiment config before any work starts.

Hydra already rejects, while composing, an unknown group option (``cell=gruu``), an override of a
key that does not exist, a value of the wrong type and a key that no schema declares in the fixed
groups (model, solver, split, ...: the dataclasses in :mod:`capx.run.schemas`). This module checks the
rest: value ranges (a negative learning rate, a zero hidden size), and plugin names and options
against what the registries hold (a dataset's or tokenizer's options are the keyword arguments its
plugin takes, so a misspelled option gets a "did you mean"). It checks keys and types too, for a
config that did not come through Hydra (one saved in a checkpoint, a plain dict; see
:mod:`capx.run.config_types`). Every problem is reported at once, each naming the key and what is
allowed.

:func:`validate` returns the config typed (:class:`capx.run.schemas.TopLevelConfig`: each part
reads its own section by attribute, ``config.solver.learning_rate``); :func:`as_dict` turns it
back into nested dicts for what records a config as data (MLflow params, YAML, a fingerprint).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from capx.datasets.image_control import IMAGE_FEATURES
from capx.datasets.splits import SCHEMES as SPLIT_SCHEMES
from capx.errors import ConfigError
from capx.registry import (
    CELLS, DATASETS, DECODERS, TOKENIZERS, UPDATE_RULES, load_plugins, require_plugins,
)
from capx.run.config_types import check_fields, check_keys
from capx.run.schemas import (  # noqa: F401 - the schemas are part of this module's interface
    FIXED_GROUPS, PLUGIN_GROUPS, CheckpointConfig, EvaluationConfig, ModelConfig, SolverConfig,
    SplitConfig, TopLevelConfig, TrackingConfig, with_class_defaults,
)


# A config saved before ``split`` existed was trained on the dataset's own train/val split.
SPLIT_BEFORE_IT_EXISTED = {"scheme": "given", "folds": 5, "fold": 0, "dev_percent": 15,
                           "train_percent": 100, "seed": 0}
DEFAULT_DECODING = {"name": "greedy"}
DEFAULT_OBJECTIVE = "val/bits_per_char"
TOP_LEVEL_KEYS = [f.name for f in fields(TopLevelConfig)]
PROGRESS_VALUES = ("auto", True, False)
DTYPES = ("float32", "float64")


#: how to enable the plugins a checkpoint's config needs, for a command-line run
ENABLE_ON_COMMAND_LINE = "enable them with plugins=[{modules}] on the command line"


def validate(cfg: DictConfig | dict, from_file: str | None = None) -> TopLevelConfig:
    """Check ``cfg`` (see :func:`check`) and return it typed: the schemas' dataclasses, with the
    plugin groups (dataset, tokenizer, cell, decoding) as mappings of the plugin's name and
    options. Raises :class:`ConfigError` naming every problem."""
    plain = check(cfg, from_file)
    typed = OmegaConf.merge(OmegaConf.structured(TopLevelConfig), plain)
    missing = sorted(OmegaConf.missing_keys(typed))
    if missing:  # a config saved before a setting existed, or a partial dict
        raise missing_values(missing)
    return OmegaConf.to_object(typed)


def as_dict(config: TopLevelConfig) -> dict[str, Any]:
    """The typed config as nested dicts, in the schema's order: what a record of the config holds
    (MLflow params, the YAML in a run and a checkpoint, the fingerprint of a job)."""
    return dataclasses.asdict(config)


def check(cfg: DictConfig | dict, from_file: str | None = None) -> dict[str, Any]:
    """Check ``cfg`` and return it as a plain resolved dict; raise :class:`ConfigError` if wrong.

    Imports the modules listed under ``plugins`` first, so their cells, tokenizers and datasets
    count as known names. A config read from a file (``from_file`` names it: a checkpoint's)
    imports nothing: its ``plugins`` must already be enabled by the user (see
    :func:`capx.registry.require_plugins`).
    """
    plain = _to_plain(cfg)
    plain.setdefault("decoding", dict(DEFAULT_DECODING))  # configs saved before it existed
    plain.setdefault("split", dict(SPLIT_BEFORE_IT_EXISTED))
    plain.setdefault("objective", DEFAULT_OBJECTIVE)
    if isinstance(plain.get("model"), dict):
        plain["model"].setdefault("dropout", 0.0)  # configs saved before these existed
        plain["model"].setdefault("image_features", "real")
    if isinstance(plain.get("evaluation"), dict):
        plain["evaluation"].setdefault("real_words_file", None)
        plain["evaluation"].setdefault("compare_spellers", False)
        plain["evaluation"].setdefault("shuffled_control", True)
    problems: list[str] = []
    check_keys("", plain, TOP_LEVEL_KEYS, problems)
    check_fields("", plain, TopLevelConfig, problems)
    if plain.get("progress", "auto") not in PROGRESS_VALUES:
        problems.append(f"progress: must be one of auto, true, false; got {plain['progress']!r}")
    plugins = plain.get("plugins") or []
    if from_file is not None and isinstance(plugins, list):
        try:
            require_plugins(plugins, from_file, ENABLE_ON_COMMAND_LINE)
        except ImportError as exc:
            problems.append(f"plugins: {exc}")
    elif isinstance(plugins, list):
        try:
            load_plugins(plugins)
        except ImportError as exc:
            problems.append(f"plugins: {exc}")
    for group, schema in FIXED_GROUPS.items():
        section = plain.get(group)
        if not isinstance(section, dict):
            problems.append(f"{group}: missing or not a mapping (pick one with {group}=...)")
            continue
        check_keys(f"{group}.", section, [f.name for f in fields(schema)], problems)
        check_fields(f"{group}.", section, schema, problems)
    for group in PLUGIN_GROUPS:
        _check_plugin_group(group, plain.get(group), problems)
    if not problems:
        for group, registry in (("dataset", DATASETS), ("tokenizer", TOKENIZERS)):
            plain[group] = with_class_defaults(plain[group], registry.get(plain[group]["name"]))
        _check_ranges(plain, problems)
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))
    return plain


def _to_plain(cfg: DictConfig | dict) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise missing_values(missing)
        try:
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
        except Exception as exc:  # noqa: BLE001 - interpolation errors name the key themselves
            raise ConfigError(f"invalid config: {exc}") from exc
    return dict(cfg)


def missing_values(keys: list[str]) -> ConfigError:
    """The error for settings without a value, naming each."""
    return ConfigError("invalid config:\n  - " + "\n  - ".join(
        f"{key}: no value (set it in a conf/ YAML file or on the command line)" for key in keys))


def _check_plugin_group(group: str, section: Any, problems: list[str]) -> None:
    if not isinstance(section, dict) or "name" not in section:
        problems.append(f"{group}: missing or has no 'name' (pick one with {group}=...)")
        return
    registry = {"dataset": DATASETS, "tokenizer": TOKENIZERS, "cell": CELLS,
                "decoding": DECODERS}[group]
    name = section["name"]
    if name not in registry:
        problems.append(f"{group}.name: unknown {registry.kind} {name!r}; registered: "
                        f"{', '.join(registry.names())}. A plugin's module must be listed under "
                        f"'plugins:' (e.g. plugins=[plugins.gru] for cell=gru)")
        return
    allowed = ["name"] + plugin_options(group, registry.get(name))
    check_keys(f"{group}.", section, allowed, problems)


def plugin_options(group: str, plugin: Callable[..., Any]) -> list[str]:
    """The keyword options a dataset function or tokenizer class takes (what its config may set)."""
    if group == "cell":
        return []
    if group == "decoding":  # decoder(model, features, max_length, **options); rng is internal
        params = list(inspect.signature(plugin).parameters.values())[3:]
        return [p.name for p in params if p.name != "rng" and p.kind in (
            inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    kinds = ((inspect.Parameter.KEYWORD_ONLY,) if group == "tokenizer" else
             (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))
    return [p.name for p in inspect.signature(plugin).parameters.values() if p.kind in kinds]


RangeRule = tuple[str, Callable[[Any], bool], str]
RANGE_RULES: list[RangeRule] = [
    ("resume", lambda v: v is None or str(v).strip() != "",
     "is empty: give a checkpoint file or an MLflow run id (resume=<path or run id>), or leave "
     "it out to start a new run"),
    ("memory_limit_gb", lambda v: v is None or v > 0, "must be a positive number of GB, or null "
     "(the memory available)"),
    ("model.wordvec_dim", lambda v: v > 0, "must be a positive integer"),
    ("model.hidden_dim", lambda v: v > 0, "must be a positive integer"),
    ("model.dtype", lambda v: v in DTYPES, f"must be one of {', '.join(DTYPES)}"),
    ("model.param_budget", lambda v: v is None or v >= 1000, "must be >= 1000 or null (off)"),
    ("model.dropout", lambda v: 0 <= v < 1, "must be in [0, 1) (0: no dropout)"),
    ("model.image_features", lambda v: v in IMAGE_FEATURES,
     f"must be one of {', '.join(IMAGE_FEATURES)}"),
    ("solver.patience", lambda v: v is None or v >= 1, "must be an integer >= 1 or null (off)"),
    ("split.scheme", lambda v: v in SPLIT_SCHEMES, f"must be one of {', '.join(SPLIT_SCHEMES)}"),
    ("split.folds", lambda v: v >= 2, "must be an integer >= 2"),
    ("split.fold", lambda v: v >= 0, "must be an integer >= 0 (and < split.folds)"),
    ("split.dev_percent", lambda v: 0 < v < 100, "must be in 1..99"),
    ("split.train_percent", lambda v: 0 < v <= 100, "must be in 1..100"),
    ("solver.learning_rate", lambda v: v > 0, "must be a positive number"),
    ("solver.lr_decay", lambda v: 0 < v <= 1, "must be in (0, 1]"),
    ("solver.num_epochs", lambda v: v >= 1, "must be an integer >= 1"),
    ("solver.batch_size", lambda v: v >= 1, "must be an integer >= 1"),
    ("solver.grad_clip", lambda v: v is None or v > 0, "must be a positive number or null (off)"),
    ("tracking.log_every", lambda v: v >= 1, "must be an integer >= 1"),
    ("tracking.system_metrics", lambda v: v in ("auto", True, False),
     "must be auto, true or false"),
    ("tracking.experiment_name", lambda v: bool(v.strip()), "must not be empty"),
    ("checkpoint.every_epochs", lambda v: v >= 1, "must be an integer >= 1"),
    ("evaluation.val_batch_size", lambda v: v >= 1, "must be an integer >= 1"),
    ("evaluation.max_val_captions", lambda v: v is None or v >= 1, "must be >= 1 or null (all)"),
    ("evaluation.num_samples", lambda v: v >= 0, "must be an integer >= 0"),
    ("evaluation.max_eval_images", lambda v: v is None or v >= 1, "must be >= 1 or null (all)"),
    ("evaluation.compare_beam", lambda v: v is None or v >= 1, "must be >= 1 or null (off)"),
    ("evaluation.real_words_file", lambda v: v is None or Path(v).expanduser().is_file(),
     "must be an existing file (a COCO caption json or a text file of words; relative to the "
     "folder run.py is started from) or null (off)"),
    ("evaluation.java_metrics", lambda v: v in ("auto", True, False),
     "must be auto, true or false"),
    ("decoding.beam_width", lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    ("decoding.temperature", lambda v: isinstance(v, (int, float)) and v >= 0,
     "must be a number >= 0"),
    ("decoding.top_k", lambda v: v is None or (isinstance(v, int) and v >= 1),
     "must be an integer >= 1 or null"),
    ("tokenizer.max_length", lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    ("seed", lambda v: v >= 0, "must be an integer >= 0"),
    ("objective", lambda v: v.startswith("val/") and len(v) > 4,
     "must name a dev metric (val/bits_per_char, val/loss, ...): hyperparameters are chosen on "
     "dev, never on the test set"),
]


def _check_ranges(plain: dict[str, Any], problems: list[str]) -> None:
    for dotted, ok, message in RANGE_RULES:
        group, _, key = dotted.rpartition(".")
        section = plain.get(group) if group else plain
        if isinstance(section, dict) and key in section and not ok(section[key]):
            problems.append(f"{dotted}: {message}, got {section[key]!r}")
    split = plain["split"]
    if split["scheme"] == "kfold" and split["fold"] >= split["folds"]:
        problems.append(f"split.fold: must be < split.folds ({split['folds']}), "
                        f"got {split['fold']}")
    rule = plain["solver"]["update_rule"]
    if rule not in UPDATE_RULES:
        problems.append(f"solver.update_rule: unknown update rule {rule!r}; registered: "
                        f"{', '.join(UPDATE_RULES.names())}")
    else:
        _check_update_rule_options(rule, plain["solver"].get("options") or {}, problems)


def _check_update_rule_options(rule: str, options: dict[str, Any], problems: list[str]) -> None:
    """``solver.options`` against the settings the rule declares (:func:`capx.optim.
    hyperparameters`); a rule that declares none (a third-party one) is not checked."""
    declared = getattr(UPDATE_RULES.get(rule), "hyperparameters", None)
    if declared is None:
        return
    for key, value in options.items():
        where = f"solver.options.{key}"
        if key == "learning_rate":
            problems.append(f"{where}: set solver.learning_rate instead")
        elif key not in declared:
            known = ", ".join(declared) or "none"
            close = difflib.get_close_matches(key, list(declared), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{where}: {rule} takes no option {key!r}{hint}; its options: "
                            f"{known}")
        elif not declared[key][0](value):
            problems.append(f"{where}: {declared[key][1]}, got {value!r}")


def plugin_choice(section: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A plugin group's section (``config.tokenizer``, ...) as the plugin's name and options."""
    options = dict(section)
    return str(options.pop("name")), options
