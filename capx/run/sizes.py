"""Sizes checked before they are allocated: a lower bound of the memory a job needs, from its
config alone, against a limit.

Before any data is read or any array made, :func:`check_sizes` estimates what training holds at
once: the data (each train and val image's feature row and caption ids), the model's parameters
with their gradients and the update rule's state, and one batch's activations. Each part is a
lower bound (the vocabulary is taken at its four special symbols, a feature row at its smallest,
a plugin cell at a vanilla RNN's size), so a job refused here could not have run; the bound is
meant to catch settings that are off by orders of magnitude (``dataset.num_train=99999999999999``,
``model.param_budget=1e12``, ``model.wordvec_dim=100000000``), not to budget memory finely. The
limit is ``memory_limit_gb`` (null: the memory available when the job starts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from capx.run.config import ConfigError
from capx.run.schemas import TopLevelConfig
from capx.runtime import available_memory

GB = 1024 ** 3
MIN_VOCAB = 4  # <NULL>, <START>, <END>, <UNK>: every tokenizer has these
#: arrays the update rule keeps per parameter (besides the parameter and its gradient)
OPTIMISER_SLOTS = {"adam": 2, "rmsprop": 1, "sgd_momentum": 1, "sgd": 0}


@dataclass(frozen=True)
class Part:
    """One part of a job's memory: what it is, the settings that size it, and its bytes."""

    what: str
    settings: str
    bytes: int

    def line(self) -> str:
        return f"{self.what} at least {gigabytes(self.bytes)} ({self.settings})"


def gigabytes(count: int | float) -> str:
    return f"{count / GB:,.1f} GB" if count >= GB / 10 else f"{count / 1024 ** 2:,.1f} MB"


def estimate(config: TopLevelConfig) -> list[Part]:
    """Lower bounds of the data's, the model's (with gradients and optimiser state) and one
    batch's memory, from the validated ``config``."""
    model, dataset, solver = config.model, config.dataset, config.solver
    width = 4 if model.dtype == "float32" else 8
    length = _int(config.tokenizer.get("max_length"), 1) + 2  # <START> ... <END>
    feature_dim = _int(dataset.get("feature_dim"), 1)
    rows = _int(dataset.get("num_train"), 0) + _int(dataset.get("num_val"), 0)
    data = Part("data", f"dataset.num_train={dataset.get('num_train')}, dataset.num_val="
                        f"{dataset.get('num_val')}", rows * (feature_dim * 4 + length * 4))

    wordvec, hidden = _int(model.wordvec_dim, 1), _int(model.hidden_dim, 1)
    budget = model.param_budget
    if budget:
        count, settings = int(budget), f"model.param_budget={budget}"
    else:
        count = (wordvec * hidden + hidden * hidden + hidden  # a vanilla RNN cell, the least
                 + feature_dim * hidden + hidden  # image projection
                 + MIN_VOCAB * wordvec + hidden * MIN_VOCAB + MIN_VOCAB)  # embedding, output
        settings = f"model.wordvec_dim={wordvec}, model.hidden_dim={hidden}"
    slots = OPTIMISER_SLOTS.get(str(solver.update_rule), 0)
    parameters = Part(f"{count:,} parameters with gradients and {solver.update_rule} "
                      f"state", settings, count * width * (2 + slots))

    batch = _int(solver.batch_size, 1)
    activations = Part("one batch's activations",
                       f"solver.batch_size={batch}, tokenizer.max_length="
                       f"{config.tokenizer.get('max_length')}, {settings}",
                       batch * length * (wordvec + hidden + MIN_VOCAB) * width)
    return [data, parameters, activations]


def check_sizes(config: TopLevelConfig) -> None:
    """Raise :class:`ConfigError` when the job's lower-bound memory is above the limit, naming
    the largest part's settings and every estimate."""
    limit_gb = config.memory_limit_gb
    limit = int(limit_gb * GB) if limit_gb else available_memory()
    if limit is None:
        return
    parts = estimate(config)
    total = sum(p.bytes for p in parts)
    if total <= limit:
        return
    largest = max(parts, key=lambda p: p.bytes)
    where = (f"memory_limit_gb={limit_gb}" if limit_gb else
             "memory_limit_gb=null: the memory available now")
    raise ConfigError(
        f"invalid config:\n  - memory: this job needs at least {gigabytes(total)}, above the "
        f"limit of {gigabytes(limit)} ({where}). The largest part is {largest.what}, at least "
        f"{gigabytes(largest.bytes)}, from {largest.settings}: lower it. Estimates (lower "
        f"bounds): " + "; ".join(p.line() for p in parts) + ". If the machine has the memory, "
        "raise memory_limit_gb")


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return max(int(value), 0)
