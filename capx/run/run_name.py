"""A job's MLflow run name: short, and saying what differs from its neighbours.

``char-lstm-s0`` (tokenizer option, cell, seed), then the overrides that tell runs apart: in a sweep,
those the sweep varies (``split.fold=0,1,2`` -> ``fold=1``); in a single run, those given on the
command line. A path is never part of a name (``dataset.base_dir=/data/coco-mini`` says where,
not what), nor is what every run of a study shares (the preset, tracking and progress settings).
"""

from __future__ import annotations

from typing import Any

from capx.run.schemas import TopLevelConfig
from capx.tracking.sweep_parent import Sweep

#: overrides the base name already says, or that never tell two runs apart
NOT_IN_NAMES = ("tokenizer", "cell", "seed", "resume", "tracking", "hydra", "progress",
                "experiment", "plugins")
PATH_KEYS = ("dir", "file", "path", "uri", "root")


def run_name(config: TopLevelConfig, context: Any) -> str:
    """The configured ``tracking.run_name``, else ``<tokenizer>-<cell>-s<seed>`` and what
    differs (see the module notes)."""
    if config.tracking.run_name:
        return config.tracking.run_name
    # the tokenizer's group option (bpe1000) says more than its plugin name (bpe)
    tokenizer = (getattr(context, "choices", None) or {}).get("tokenizer")
    parts = [tokenizer or config.tokenizer["name"], config.cell["name"], f"s{config.seed}"]
    varied = _swept_keys(context) if context.multirun and context.sweep_dir else None
    for override in context.overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if _names_the_run(key, value) and (varied is None or key in varied):
            parts.append(f"{key.rsplit('.', 1)[-1]}={value}")
    return "-".join(parts)


def _names_the_run(key: str, value: str) -> bool:
    if key.split(".", 1)[0].split("/", 1)[0] in NOT_IN_NAMES:
        return False
    last = key.rsplit(".", 1)[-1].lower()
    return not (last.endswith(PATH_KEYS) or "/" in value or "\\" in value)


def _swept_keys(context: Any) -> set[str]:
    """The keys the sweep of ``context`` varies (``key=a,b`` or ``key=range(...)``)."""
    sweep = Sweep.in_folder(context.sweep_dir)
    return {o.lstrip("+~").partition("=")[0] for o in sweep.overrides
            if "," in o or "(" in o}
