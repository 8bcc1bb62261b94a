"""The parts of one job, built from its validated config: data with its splits, tokenizer,
speller, model, and the solver with its callbacks.

:func:`prepare` makes the data, tokenizer, model and solver, in that order (each needs the ones
before), before any MLflow run exists, so that bad data or options are reported without leaving
a run behind; :func:`attach` then adds what writes into the run (checkpoints, and the callback
that records each epoch, which the caller gets from its recorder: this module knows nothing of
recording). :class:`capx.run.training.Job` trains them and handles the outcome.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import yaml

from capx.budget import budget_squeeze_warning, hidden_for_budget
from capx.captioner import CaptioningRNN
from capx.checkpoint import Checkpoint, CheckpointError, check_compatible, load_checkpoint
from capx.data import DataError
from capx.datasets.base import pictures_of
from capx.datasets.image_control import with_image_features
from capx.datasets.splits import SplitSettings, make_splits
from capx.metrics.spelling import CharNgramSpeller
from capx.registry import DATASETS
from capx.run.callbacks import Checkpointer, EarlyStopping, ProgressBar, RunState, Validation
from capx.run.config import as_dict, plugin_choice
from capx.run.schemas import ModelConfig, SolverConfig, SplitConfig, TopLevelConfig
from capx.run.scoring import data_statistics, text_validation
from capx.solver import Callback, CaptioningSolver
from capx.tokenizers import Tokenizer, make_tokenizer as make_plugin_tokenizer
from capx.tracking import names

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """What a job trains and evaluates; ``images_for(image_ids)`` draws images' pictures
    when the dataset plugin can (see :func:`capx.datasets.base.pictures_of`), else None."""

    data: Any            # CaptionData: train, val (the dev split) and test (None: score val)
    tokenizer: Any
    speller: Any
    solver_data: dict[str, Any]
    truncated: float     # the share of train captions the tokenizer cut
    data_seconds: float  # loading, splitting, fitting the tokenizer and encoding
    model: Any
    solver: Any
    images_for: Callable[[Any], np.ndarray] | None = None
    checkpointer: Checkpointer | None = None  # set by :func:`attach`, once the run exists


class PluginOptionError(ValueError):
    """A dataset or tokenizer plugin rejected the options it was given."""


#: above these shares of the training text the tokenizer settings, not the model, decide the run
MOST_UNK, MOST_TRUNCATED = 0.25, 0.5


def encoding_problems(tokenizer_section: dict[str, Any], tokenizer: Any,
                      solver_data: dict[str, Any]) -> list[str]:
    """Warnings when the tokenizer settings leave little of the captions to learn: most symbols
    ``<UNK>`` (a vocabulary far too small) or most captions cut (``max_length`` too short)."""
    settings = ", ".join(f"tokenizer.{k}={v}" for k, v in tokenizer_section.items()
                         if k in ("vocab_size", "max_vocab", "min_count") and v is not None)
    problems = []
    unk = data_statistics(solver_data).get(f"{names.DATA}train_unk_rate", 0.0)
    if unk > MOST_UNK:
        problems.append(f"{100 * unk:.0f}% of the training symbols are <UNK>: the {tokenizer.name} "
                        f"vocabulary has {tokenizer.vocab_size} symbols ({settings}): too few for "
                        f"these captions; raise the vocabulary size")
    cut = solver_data["train_truncated_fraction"]
    if cut > MOST_TRUNCATED:
        problems.append(f"{100 * cut:.0f}% of the training captions are cut at "
                        f"tokenizer.max_length={tokenizer.max_length} symbols: raise it (or "
                        f"use larger symbols: a larger vocabulary)")
    return problems


def prepare(config: TopLevelConfig, checkpoint: Checkpoint | None, state: RunState) -> Parts:
    """Data, tokenizer, speller, model and solver (no callbacks yet), each from its own section
    of ``config``; a resumed job gets the checkpoint's state and selection. Raises the data's,
    the plugins' and the checkpoint's errors (:data:`capx.run.training.USER_ERRORS`) before any
    run is created."""
    started = time.perf_counter()
    data, images_for = load_data(config.dataset, config.split, config.model.image_features)
    tokenizer = make_tokenizer(config.tokenizer, data, checkpoint)
    speller = CharNgramSpeller().fit(data.train.captions)
    solver_data = data.to_solver_data(tokenizer)
    truncated = solver_data["train_truncated_fraction"]
    for problem in encoding_problems(config.tokenizer, tokenizer, solver_data):
        log.warning("%s", problem)
    data_seconds = time.perf_counter() - started
    model = make_model(config.model, config.cell["name"], config.seed, tokenizer, data)
    solver = make_solver(config.solver, config.seed, model, solver_data)
    if checkpoint is not None:
        check_compatible(checkpoint, model.params, tokenizer.idx_to_word)
        solver.load_state_dict(checkpoint.state)
        apply_learning_rate(solver, config.solver.learning_rate, checkpoint)
        restore_selection(state, model, checkpoint.meta)
    parts = Parts(data, tokenizer, speller, solver_data, truncated, data_seconds, model, solver,
                  images_for)
    check_fits(config.solver.batch_size, parts)
    return parts


def make_model(model: ModelConfig, cell: str, seed: int, tokenizer: Any,
               data: Any) -> CaptioningRNN:
    """The captioner of ``model``'s sizes, dtype and dropout, with the ``cell`` recurrence."""
    return CaptioningRNN(
        tokenizer.word_to_idx, input_dim=data.feature_dim, wordvec_dim=model.wordvec_dim,
        hidden_dim=hidden_dim(model, cell, tokenizer, data), cell_type=cell,
        dtype=np.dtype(model.dtype), seed=seed, dropout=model.dropout)


def make_solver(solver: SolverConfig, seed: int, model: CaptioningRNN,
                solver_data: dict[str, Any]) -> CaptioningSolver:
    """The solver of ``solver``'s update rule and schedule (no callbacks yet)."""
    optim_config = {"learning_rate": float(solver.learning_rate), **solver.options}
    return CaptioningSolver(
        model, solver_data, update_rule=solver.update_rule, optim_config=optim_config,
        lr_decay=solver.lr_decay, batch_size=solver.batch_size, num_epochs=solver.num_epochs,
        verbose=False, grad_clip=solver.grad_clip, seed=seed)


def attach(parts: Parts, config: TopLevelConfig, output_dir: Path, state: RunState,
           run_id: str | None, on_saved: Callable[[Path], None] | None,
           recording: Callback) -> Parts:
    """The checkpointer (its files name the run ``run_id``; ``on_saved(path)`` after each write)
    and the solver's callbacks, with ``recording`` (the callback that records each epoch)."""
    parts.checkpointer = Checkpointer(
        state, output_dir / "checkpoints", parts.tokenizer.to_dict(),
        yaml.safe_dump(as_dict(config), sort_keys=False),
        {"run_id": run_id, "output_dir": str(output_dir)},
        config.checkpoint.every_epochs, on_saved=on_saved)
    parts.solver.callbacks = make_callbacks(config, state, parts, recording)
    return parts


def check_fits(batch_size: int, parts: Parts) -> None:
    """Settings that only the data can check: a batch no larger than the training captions,
    and a dev split to validate on; a :class:`capx.data.DataError` naming the setting."""
    train, val = parts.data.train, parts.data.val
    batch = int(batch_size)
    if batch > len(train.captions):
        raise DataError(
            f"solver.batch_size={batch} is larger than the {len(train.captions)} training "
            f"captions of this dataset and split; use solver.batch_size={len(train.captions)} "
            f"or less")
    if len(val.captions) == 0:
        raise DataError(
            "the dev (val) split is empty, so there is nothing to validate or select an epoch "
            "on; give the dataset some validation images (e.g. dataset.num_val >= 1) or raise "
            "split.dev_percent")


def load_data(dataset: dict[str, Any], split: SplitConfig, image_features: str
              ) -> tuple[Any, Callable[[str, Any], np.ndarray] | None]:
    """The ``dataset`` plugin's data, re-split into train / dev (val) / test by ``split``, with
    the features ``image_features`` (``model.image_features``) asks for, and its pictures (None
    when the plugin draws none)."""
    name, options = plugin_choice(dataset)
    plugin = DATASETS.get(name)
    with plugin_options_checked("dataset", name, options):
        data = plugin(**options)
    data = with_image_features(make_splits(data, SplitSettings(**asdict(split))), image_features)
    return data, pictures_of(plugin, options)


@contextmanager
def plugin_options_checked(group: str, name: str, options: dict[str, Any]) -> Iterator[None]:
    """A plugin's ``ValueError`` for its options (``num_train=-5``) becomes a
    :class:`PluginOptionError` that names the group, the plugin and the options given."""
    try:
        yield
    except DataError:
        raise
    except ValueError as exc:
        given = ", ".join(f"{group}.{k}={v!r}" for k, v in options.items())
        raise PluginOptionError(f"{group} {name!r} rejected its options ({given}): {exc}") from exc


def make_tokenizer(tokenizer: dict[str, Any], data: Any, checkpoint: Checkpoint | None) -> Any:
    """The ``tokenizer`` section's plugin, fitted on the train captions, or restored from the
    checkpoint when resuming (which must have been trained with the same tokenizer settings)."""
    name, options = plugin_choice(tokenizer)
    with plugin_options_checked("tokenizer", name, options):
        fresh = make_plugin_tokenizer(name, **options)
        saved = checkpoint.tokenizer if checkpoint is not None else {}
        if not saved.get("name"):
            return fresh.fit(data.train.captions)
    wanted = {"name": fresh.name, "options": fresh.options()}
    if wanted != {"name": saved["name"], "options": saved.get("options")}:
        raise CheckpointError(
            f"{checkpoint.path} was trained with another tokenizer and vocabulary "
            f"({saved['name']} {saved.get('options')}); this run asks for {wanted['name']} "
            f"{wanted['options']}. Resume with the tokenizer settings it was trained with.")
    return Tokenizer.from_dict(saved)


def hidden_dim(model: ModelConfig, cell: str, tokenizer: Any, data: Any) -> int:
    """``model.hidden_dim``, or the size that meets ``model.param_budget`` for this vocabulary."""
    if not model.param_budget:
        return int(model.hidden_dim)
    budget = int(model.param_budget)
    hidden = hidden_for_budget(budget, cell, tokenizer.vocab_size, data.feature_dim,
                               int(model.wordvec_dim))
    warning = budget_squeeze_warning(budget, cell, tokenizer.vocab_size, hidden)
    if warning:
        log.warning(warning)
    return hidden


def apply_learning_rate(solver: Any, learning_rate: float, checkpoint: Checkpoint) -> None:
    """A ``solver.learning_rate`` other than the checkpoint's, given with the resume, replaces
    the restored optimiser's current rate (``lr_decay`` goes on from it); said on the console."""
    saved = (yaml.safe_load(checkpoint.config_yaml) or {}).get("solver", {})
    wanted = float(learning_rate)
    if saved.get("learning_rate") is None or float(saved["learning_rate"]) == wanted:
        return
    restored = solver.learning_rate
    for config in solver.optim_configs.values():
        config["learning_rate"] = wanted
    log.info("resume: solver.learning_rate=%g replaces the restored optimiser's rate %g (the "
             "run started with %g); lr_decay applies from here", wanted,
             restored if restored is not None else float("nan"), float(saved["learning_rate"]))


def restore_selection(state: RunState, model: Any, meta: dict[str, Any]) -> None:
    """The best-so-far epoch, score and parameters of the run being resumed, and how long it
    had trained."""
    state.earlier_train_seconds = float(meta.get("train_seconds") or 0.0)
    state.best_val_loss = meta.get("best_val_loss")
    state.best_score = meta.get("best_score")
    state.best_epoch = meta.get("best_epoch")
    state.selected_metrics = dict(meta.get("selected_metrics") or {})
    best = meta.get("best_checkpoint")
    if best and Path(best).is_file():
        saved = load_checkpoint(best).state["params"]
        flat = model.params.flat.copy()
        state.best_params = np.concatenate(
            [np.asarray(saved[name], dtype=flat.dtype).ravel() for name in model.params])
        state.best_checkpoint = Path(best)


def make_callbacks(config: TopLevelConfig, state: RunState, parts: Parts,
                   recording: Callback) -> list[Any]:
    """Validation, early stopping, ``recording`` (the epoch's metrics), checkpoints, the
    progress bar: in this order, since each reads what the ones before left in ``state``, and
    since the record must never be behind the checkpoint a resume starts from (a job killed
    between the two would otherwise lose the epoch's steps for good)."""
    evaluation, tokenizer = config.evaluation, parts.tokenizer
    text_metrics = text_validation(parts.data.val, tokenizer, evaluation.max_val_captions,
                                   evaluation.val_batch_size, speller=parts.speller)
    callbacks: list[Any] = [
        Validation(state, parts.solver_data, tokenizer.decode,
                   max_length=tokenizer.max_length + 1, batch_size=evaluation.val_batch_size,
                   max_captions=evaluation.max_val_captions,
                   num_samples=evaluation.num_samples, text_metrics=text_metrics),
    ]
    if config.solver.patience:
        callbacks.append(EarlyStopping(state, config.solver.patience))
    callbacks.append(recording)
    callbacks.append(parts.checkpointer)
    progress = config.progress
    callbacks.append(ProgressBar(state, None if progress == "auto" else bool(progress)))
    return callbacks
