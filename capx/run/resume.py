"""``resume=<checkpoint path or MLflow run id>``: find the checkpoint and the config to continue.

:func:`resolve_resume` loads the checkpoint (a file, or the newest valid checkpoint of an MLflow
run, see :mod:`capx.run.resume_source`); :func:`config_for_resume` continues with the checkpoint's own config,
with the command-line overrides that may change on a resume applied on top (the number of
epochs, the learning rate, evaluation, tracking, ...). An override that would change what the
checkpoint was trained with (model sizes, tokenizer, data, split, cell, seed, update rule) is
refused by name, before any run is touched.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from capx.tracking.locations import tracking_uri
from capx.tracking.store_setup import make_client
from capx.tracking.tracker import flatten
from capx.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from capx.run.config import ConfigError, as_dict, check, validate
from capx.run.resume_source import newest_checkpoint, warn_if_behind
from capx.run.schemas import TopLevelConfig

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
#: the settings a resume may change (a key, or a section and everything under it)
CHANGEABLE = ("solver.num_epochs", "solver.learning_rate", "solver.lr_decay", "solver.patience",
              "solver.grad_clip", "evaluation", "decoding", "tracking", "checkpoint", "progress",
              "plugins", "study", "resume", "memory_limit_gb")
_ABSENT = object()


def resolve_resume(config: TopLevelConfig, original_cwd: Path,
                   output_dir: Path) -> tuple[Checkpoint, str | None]:
    """Load the checkpoint ``resume`` names: a file path (relative to ``original_cwd``), or an
    MLflow run id (its newest valid checkpoint, artifact or local: see
    :mod:`capx.run.resume_source`). Returns it and its run id."""
    target = str(config.resume)
    path = Path(target).expanduser()
    if not path.is_absolute():
        path = original_cwd / path
    if path.is_file():
        checkpoint = load_checkpoint(path)
        owner = checkpoint.meta.get("run_id")
        if owner and config.tracking.enabled:
            try:
                client = make_client(tracking_uri(config.tracking.uri, original_cwd))
                warn_if_behind(client, owner, checkpoint)
            except Exception as exc:  # noqa: BLE001 - the store is checked again when opened
                log.debug("could not compare %s with its run's record: %s", path, exc)
        return checkpoint, owner
    if not RUN_ID.match(target):
        raise CheckpointError(f"resume={target!r} is neither a checkpoint file (looked at {path}) "
                              f"nor an MLflow run id (32 hex digits)")
    uri = tracking_uri(config.tracking.uri, original_cwd)
    checkpoint = newest_checkpoint(make_client(uri), target, output_dir / "resume", uri)
    return checkpoint, target


def config_for_resume(config: TopLevelConfig, checkpoint: Checkpoint,
                      overrides: list[str]) -> TopLevelConfig:
    """The checkpoint's own config with the command-line ``overrides`` applied on top.

    Each override is parsed with Hydra's override parser and takes the value Hydra composed
    into ``config``; a preset (``experiment=...``) is not applied (the run keeps its settings).
    A change to a setting outside :data:`CHANGEABLE` raises :class:`ConfigError` naming it.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    saved = yaml.safe_load(checkpoint.config_yaml) or {}
    saved["resume"] = config.resume
    source = str(checkpoint.path or "the checkpoint")
    before = check(saved, from_file=source)
    composed, merged = OmegaConf.create(as_dict(config)), OmegaConf.create(before)
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        value = OmegaConf.select(composed, key, default=_ABSENT)
        if value is _ABSENT and OmegaConf.select(merged, key, default=_ABSENT) is _ABSENT:
            log.warning("resume: %s is a preset, not a setting: the run keeps its own settings "
                        "(give the ones to change, e.g. solver.num_epochs=20)",
                        override.input_line)
            continue
        OmegaConf.update(merged, key, None if value is _ABSENT else value, merge=False,
                         force_add=True)
    after = OmegaConf.to_container(merged, resolve=True)
    changes = changed_settings(before, after)
    refused = [key for key in changes if not changeable(key)]
    if refused:
        where = checkpoint.path or "the checkpoint"
        raise ConfigError("resume: cannot change " + "; ".join(
            f"{key} (trained with {changes[key][0]!r}, asked for {changes[key][1]!r})"
            for key in refused) + f": {where} was trained with these settings. A resume may "
            f"change only {', '.join(c for c in CHANGEABLE if c != 'resume')}; start a new run "
            f"for other settings")
    for key, (old, new) in changes.items():
        if key != "resume":
            log.info("resume: %s %r -> %r", key, old, new)
    return validate(after, from_file=source)


def changed_settings(before: dict[str, Any], after: dict[str, Any]
                     ) -> dict[str, tuple[Any, Any]]:
    """``{flattened key: (before, after)}`` for every setting that differs."""
    old, new = flatten(before), flatten(after)
    return {key: (old.get(key), new.get(key)) for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)}


def changeable(key: str) -> bool:
    """Whether a resume may change setting ``key`` (see :data:`CHANGEABLE`)."""
    return any(key == c or key.startswith(c + ".") for c in CHANGEABLE)
