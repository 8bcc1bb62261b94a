"""The types of the experiment config, registered with Hydra so that Hydra itself checks them.

The YAML files under ``conf/`` hold every default; the dataclasses here declare only the keys and
their types (every field is ``MISSING``, so no default can disagree with the YAML). Importing this
module stores :class:`TopLevelConfig` in Hydra's ConfigStore as ``base_config``, which
``conf/config.yaml`` lists first in its defaults, so while composing Hydra rejects a value of the
wrong type (``solver.learning_rate=abc``) and a key that no schema declares (a misspelled key in
``conf/solver/adam.yaml``), naming the key.

The plugin groups (dataset, tokenizer, cell, decoding) stay open mappings: their keys are the
options of the chosen plugin, which :func:`capx.run.config.validate` checks against the registries.

A registered cell or tokenizer can be picked by group option (``cell=demo``) even without a YAML
file for it: :func:`register_plugin_options` stores a ``{name: ...}`` node for every registered
name that ``conf/`` has no file for. ``run.py`` calls it before composing, after importing the
installed plugins (entry points) and the modules named by a ``plugins=[...]`` override. A
module listed under ``plugins:`` inside a YAML file (a preset) is imported only after
composition, too late to add options: its cell is picked with ``cell.name=...``, or it gets a
``conf/cell/<name>.yaml`` of its own (as ``plugins/gain_rnn.py`` has).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from omegaconf import MISSING

from capx.registry import CELLS, TOKENIZERS, load_plugins

BASE_CONFIG = "base_config"


@dataclass
class ModelConfig:
    # Field order is the order of the composed config (dtype, param_budget and dropout come
    # from config.yaml, the sizes from the tokenizer's YAML).
    dtype: str = MISSING
    param_budget: Optional[int] = MISSING
    wordvec_dim: int = MISSING
    hidden_dim: int = MISSING
    dropout: float = MISSING
    image_features: str = MISSING


@dataclass
class SolverConfig:
    update_rule: str = MISSING
    learning_rate: float = MISSING
    lr_decay: float = MISSING
    num_epochs: int = MISSING
    batch_size: int = MISSING
    grad_clip: Optional[float] = MISSING
    patience: Optional[int] = MISSING
    options: Dict[str, Any] = MISSING


@dataclass
class TrackingConfig:
    enabled: bool = MISSING
    uri: Optional[str] = MISSING
    experiment_name: str = MISSING
    run_name: Optional[str] = MISSING
    log_every: int = MISSING
    skip_finished: bool = MISSING
    log_model: bool = MISSING
    system_metrics: Any = MISSING  # auto (when psutil is installed), true, false
    export: Optional[str] = MISSING


@dataclass
class SplitConfig:
    scheme: str = MISSING
    folds: int = MISSING
    fold: int = MISSING
    dev_percent: int = MISSING
    train_percent: int = MISSING
    seed: int = MISSING


@dataclass
class CheckpointConfig:
    every_epochs: int = MISSING


@dataclass
class EvaluationConfig:
    val_batch_size: int = MISSING
    max_val_captions: Optional[int] = MISSING
    num_samples: int = MISSING
    final: bool = MISSING
    max_eval_images: Optional[int] = MISSING
    java_metrics: Any = MISSING   # auto, true or false (capx.run.config checks which)
    measure_memory: bool = MISSING
    compare_beam: Optional[int] = MISSING
    shuffled_control: bool = MISSING
    real_words_file: Optional[str] = MISSING
    compare_spellers: bool = MISSING


@dataclass
class TopLevelConfig:
    """The whole job config; field order is the order ``--cfg job`` prints."""

    seed: int = MISSING
    plugins: List[str] = MISSING
    resume: Optional[str] = MISSING
    progress: Any = MISSING       # auto, true or false (capx.run.config checks which)
    study: Dict[str, Any] = MISSING
    objective: str = MISSING      # the val/ metric a sweeper optimises (at the selected epoch)
    memory_limit_gb: Optional[float] = MISSING  # null: the memory available (capx.run.sizes)
    model: ModelConfig = field(default_factory=ModelConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    dataset: Dict[str, Any] = MISSING     # plugin groups: the chosen plugin's options
    tokenizer: Dict[str, Any] = MISSING
    cell: Dict[str, Any] = MISSING
    solver: SolverConfig = field(default_factory=SolverConfig)
    decoding: Dict[str, Any] = MISSING
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


FIXED_GROUPS: dict[str, type] = {
    "model": ModelConfig, "solver": SolverConfig, "tracking": TrackingConfig,
    "checkpoint": CheckpointConfig, "evaluation": EvaluationConfig, "split": SplitConfig,
}
PLUGIN_GROUPS = ("dataset", "tokenizer", "cell", "decoding")


def register_schemas() -> None:
    """Store ``base_config`` (the typed schema ``conf/config.yaml`` starts from); idempotent."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=BASE_CONFIG, node=TopLevelConfig)


def register_resolvers() -> None:
    """``${capx_uid:}``: a short random token, the same for the whole launch (cached, and Hydra
    copies the cache into every job's config, in other processes too), different for every
    process that launches. ``conf/config.yaml`` adds it to the run and sweep folders, so two
    launches in the same second never share a folder (or a sweep's parent run)."""
    import secrets

    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("capx_uid"):
        OmegaConf.register_new_resolver("capx_uid", lambda: secrets.token_hex(3), use_cache=True)


# -- plugin cells and tokenizers as group options -----------------------------------------------

def register_plugin_options(conf_dir: str | Path | None = None) -> list[str]:
    """Make every registered cell and tokenizer a group option (``cell=demo``); returns them.

    For each name in the cell and tokenizer registries (built-ins, installed entry points and
    modules imported so far) that has no ``conf/<group>/<name>.yaml``, a node is stored in the
    ConfigStore: ``cell/<name>`` is ``{name: <name>}``; ``tokenizer/<name>`` is
    ``{tokenizer: {name: <name>, <option>: <default>, ...}}`` in the global package, like the
    tokenizer YAMLs (its keyword options with their defaults, so ``tokenizer.max_length=80``
    overrides without ``+``; model sizes left at config.yaml's). A name that has a YAML file, or that its plugin stored in
    the ConfigStore itself (a node with the plugin's options), is left as it is. Raises
    :class:`capx.registry.PluginError` when an installed plugin cannot be imported.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    stored = []
    for group, registry in (("cell", CELLS), ("tokenizer", TOKENIZERS)):
        for name in registry.names():
            if _has_file(conf_dir, group, name) or _is_stored(store, group, name):
                continue  # a conf/ file, or a node the plugin stored itself, with its options
            if group == "cell":
                store.store(group="cell", name=name, node={"name": name})
            else:
                node = {"name": name, **plugin_defaults(registry.get(name))}
                store.store(group="tokenizer", name=name, node={"tokenizer": node},
                            package="_global_")
            stored.append(f"{group}/{name}")
    return stored


def plugin_defaults(plugin: Any) -> dict[str, Any]:
    """A plugin class's keyword-only options and their defaults as the class applies them:
    the signature's default, or where that is None, the class's ``default_<option>`` (see
    :func:`class_default`). Only plain values: a group option's node is YAML."""
    out = {}
    for p in inspect.signature(plugin).parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is p.empty:
            continue
        default = class_default(plugin, p.name, p.default)
        if default is None or isinstance(default, (bool, int, float, str)):
            out[p.name] = default
    return out


def class_default(plugin: Any, option: str, value: Any) -> Any:
    """``value``, or when it is None the plugin class's ``default_<option>`` attribute if it has
    one: a tokenizer's ``max_length=None`` means its ``default_max_length`` (16 in the base
    class, 80 for ``char``), so the config records the length the tokenizer uses."""
    return getattr(plugin, f"default_{option}", None) if value is None else value


def with_class_defaults(section: dict[str, Any], plugin: Any) -> dict[str, Any]:
    """A plugin group's section with every null option replaced by the class's default."""
    return {key: class_default(plugin, key, value) for key, value in section.items()}


def _has_file(conf_dir: str | Path | None, group: str, name: str) -> bool:
    return conf_dir is not None and (Path(conf_dir) / group / f"{name}.yaml").is_file()


def _is_stored(store: Any, group: str, name: str) -> bool:
    from hydra.plugins.config_source import ConfigLoadError

    try:
        store.load(f"{group}/{name}.yaml")
    except ConfigLoadError:
        return False
    return True


def plugins_from_overrides(overrides: Iterable[str]) -> list[str]:
    """The modules a ``plugins=[...]`` command-line override names (every list of a sweep)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    wanted = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] == "plugins" and "=" in o]
    if not wanted:
        return []
    try:
        parsed = OverridesParser.create().parse_overrides(wanted)
    except Exception:  # noqa: BLE001 - Hydra reports the bad override itself when it composes
        return []
    modules: list[str] = []
    for override in parsed:
        if override.is_delete():
            continue
        values = (list(override.sweep_iterator()) if override.is_sweep_override()
                  else [override.value()])
        for value in values:
            for module in value if isinstance(value, list) else [value]:
                if isinstance(module, str) and module not in modules:
                    modules.append(module)
    return modules


def prepare_plugin_options(argv: Iterable[str], conf_dir: str | Path) -> None:
    """Before Hydra composes: import the ``plugins=[...]`` of ``argv`` and the installed plugins,
    then register their cells and tokenizers as group options (see :func:`register_plugin_options`).
    """
    load_plugins(plugins_from_overrides(argv))
    register_plugin_options(conf_dir)


register_schemas()
register_resolvers()
