"""CaptioningSolver: minibatch training of a captioning model with a registered update rule.

Keeps the CS231n API (``CaptioningSolver(model, data, update_rule=..., optim_config=...,
lr_decay=..., batch_size=..., num_epochs=..., print_every=..., verbose=...)``, ``train()``,
``loss_history``) and adds what experiments need without editing the solver: callbacks, gradient
clipping, a seedable RNG, a stop when training diverges, and ``state_dict`` /
``load_state_dict`` so a run can resume exactly where it stopped.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable, Iterable

import numpy as np

from capx.data import sample_coco_minibatch
from capx.registry import UPDATE_RULES
from capx.runtime import reuse_freed_memory
from capx.tokenizers.base import NULL_ID


#: a loss this many times a uniform guess's (what an untrained model scores) means training
#: diverged: lr=1 Adam on the smoke data peaks at 1.3 times, lr=10 at 11, lr=1e3 at 1.2e3
DIVERGED_LOSS_FACTOR = 10.0
ADAPTIVE_RULES = ("adam", "rmsprop")  # steps scaled by the gradients' running magnitude


class TrainingDivergedError(FloatingPointError):
    """Training diverged: the loss became NaN or inf or far worse than a uniform guess's, or an
    update made parameters non-finite. Raised before the iteration is counted or checkpointed,
    so the checkpoints on disk hold the last good state."""


NonFiniteLossError = TrainingDivergedError  # its earlier name


class Callback:
    """Hooks a tracker or logger can attach to; override what you need. All get the solver."""

    def on_train_begin(self, solver: "CaptioningSolver") -> None: ...
    def on_iteration_end(self, solver: "CaptioningSolver", loss: float) -> None: ...
    def on_epoch_end(self, solver: "CaptioningSolver") -> None: ...
    def on_train_end(self, solver: "CaptioningSolver") -> None: ...


class CaptioningSolver:
    """Trains ``model`` on a CS231n-style data dict (``train_captions``, ``train_image_idxs``,
    ``train_features``, ...)."""

    def __init__(self, model: Any, data: dict[str, Any], update_rule: str = "adam",
                 optim_config: dict[str, Any] | None = None, lr_decay: float = 1.0,
                 batch_size: int = 100, num_epochs: int = 10, print_every: int = 10,
                 verbose: bool = True, callbacks: Iterable[Callback] = (),
                 grad_clip: float | None = None, seed: int | None = None,
                 reuse_memory: bool = True,
                 diverged_loss_factor: float | None = DIVERGED_LOSS_FACTOR):
        """``seed=None`` draws minibatches from NumPy's global RNG, as CS231n does. Training
        stops (:class:`TrainingDivergedError`) when the loss is not finite or over
        ``diverged_loss_factor`` (None: no limit) times a uniform guess's, or an update makes
        parameters non-finite. ``reuse_memory``: :func:`capx.runtime.reuse_freed_memory`."""
        if reuse_memory:
            reuse_freed_memory()
        self.model, self.data = model, data
        self.update_rule_name, self.update_rule = update_rule, UPDATE_RULES.get(update_rule)
        self.optim_config = dict(optim_config or {})
        self.lr_decay, self.batch_size = float(lr_decay), int(batch_size)
        self.num_epochs, self.print_every = int(num_epochs), int(print_every)
        self.verbose, self.callbacks = verbose, list(callbacks)
        self.grad_clip, self.diverged_loss_factor = grad_clip, diverged_loss_factor
        self.rng = np.random if seed is None else np.random.RandomState(seed)
        if self.batch_size <= 0 or self.num_epochs < 0:
            raise ValueError(f"CaptioningSolver: batch_size must be positive and num_epochs "
                             f"non-negative, got batch_size={batch_size}, num_epochs={num_epochs}")
        self._reset()

    def _reset(self) -> None:
        self.epoch = self.iteration = 0
        self.loss_history: list[float] = []
        self.epoch_seconds: list[float] = []  # training time of each epoch, callbacks excluded
        self.epoch_iterations: list[int] = []  # iterations this process trained in each epoch
        self.epoch_learning_rate: float | None = None  # the rate the last epoch trained with
        self.stop_training = False
        # One optimiser state over the flat parameter buffer when the model has one.
        names = ["flat"] if getattr(self.model.params, "flat", None) is not None else list(
            self.model.params)
        self.optim_configs = {name: copy.deepcopy(self.optim_config) for name in names}

    @property
    def num_train(self) -> int:
        return int(self.data["train_captions"].shape[0])

    @property
    def iterations_per_epoch(self) -> int:
        return max(self.num_train // self.batch_size, 1)

    @property
    def num_iterations(self) -> int:
        return self.num_epochs * self.iterations_per_epoch

    @property
    def learning_rate(self) -> float | None:
        return next(iter(self.optim_configs.values())).get("learning_rate")

    def _step(self) -> float:
        captions, features, _ = sample_coco_minibatch(self.data, batch_size=self.batch_size,
                                                      split="train", rng=self.rng)
        extra = dropout_masks(self.model, captions, self.rng)  # after the batch, same RNG
        with np.errstate(over="ignore", invalid="ignore"):  # checked below, as divergence
            loss, grads = self.model.loss(features, captions, **extra)
        why = loss_divergence(loss, self.diverged_loss_factor, lambda: uniform_guess_loss(
            captions, vocab_size(self.model, self.data)))
        if why:
            raise diverged_error(why, self.iteration + 1, self.learning_rate, self.update_rule_name)
        with np.errstate(over="ignore", invalid="ignore"):
            clip_global_norm(grads, self.grad_clip)
            apply_update(self.update_rule, self.model.params, grads, self.optim_configs)
        broken = non_finite_params(self.model.params)
        if broken:
            raise diverged_error(f"loss {loss:.4g}, then the update made {', '.join(broken)} "
                                 f"non-finite", self.iteration + 1, self.learning_rate,
                                 self.update_rule_name)
        return loss

    def train(self) -> None:
        """Run (or continue, after :meth:`load_state_dict`) until ``num_epochs`` are done."""
        self.stop_training = False
        for cb in self.callbacks:
            cb.on_train_begin(self)
        epoch_started, epoch_first = time.perf_counter(), self.iteration
        while self.iteration < self.num_iterations and not self.stop_training:
            loss = self._step()
            self.loss_history.append(loss)
            self.iteration += 1
            if self.verbose and (self.iteration - 1) % self.print_every == 0:
                print(f"(Iteration {self.iteration} / {self.num_iterations}) loss: {loss:f}")
            for cb in self.callbacks:
                cb.on_iteration_end(self, loss)
            if self.iteration % self.iterations_per_epoch == 0:
                self.epoch += 1
                self.epoch_seconds.append(time.perf_counter() - epoch_started)
                self.epoch_iterations.append(self.iteration - epoch_first)
                self.epoch_learning_rate = self.learning_rate
                decay_learning_rates(self.optim_configs, self.lr_decay)
                for cb in self.callbacks:
                    cb.on_epoch_end(self)
                epoch_started, epoch_first = time.perf_counter(), self.iteration
        for cb in self.callbacks:
            cb.on_train_end(self)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly: parameters, optimiser state, RNG."""
        return {"params": {k: v.copy() for k, v in self.model.params.items()},
                "optim_configs": copy.deepcopy(self.optim_configs),
                "rng_state": self.rng.get_state(), "epoch": self.epoch,
                "iteration": self.iteration, "loss_history": list(self.loss_history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s ``state`` (optimiser state not saved: fresh)."""
        for name, value in state["params"].items():
            self.model.params[name] = value
        fresh = {name: copy.deepcopy(self.optim_config) for name in self.optim_configs}
        self.optim_configs = fresh | copy.deepcopy(state["optim_configs"])
        self.rng.set_state(state["rng_state"])
        self.epoch, self.iteration = int(state["epoch"]), int(state["iteration"])
        self.loss_history = list(state["loss_history"])


def dropout_masks(model: Any, captions: np.ndarray, rng: Any) -> dict[str, Any]:
    """``model.loss``'s dropout argument: masks drawn from the solver's RNG after the batch, by
    the model's ``dropout_masks`` (none drawn when it has none or returns None: no dropout)."""
    draw = getattr(model, "dropout_masks", None)
    masks = draw(captions, rng) if draw is not None else None
    return {} if masks is None else {"dropout": masks}


def vocab_size(model: Any, data: dict[str, Any]) -> int:
    """The model's vocabulary size, else the data's (its ``idx_to_word``)."""
    size = getattr(model, "vocab_size", None)
    return int(size if size is not None else len(data["idx_to_word"]))


def loss_divergence(loss: float, factor: float | None,
                    uniform_guess: Callable[[], float]) -> str | None:
    """Why ``loss`` means training diverged (not finite, or over ``factor`` times
    ``uniform_guess()``, asked only when ``factor`` is set), or None when it did not."""
    if not math.isfinite(loss):
        return f"loss {loss}"
    guess = uniform_guess() if factor else math.inf
    if factor and loss > factor * guess:
        return f"loss {loss:.4g}, over {factor:g} times a uniform guess's {guess:.4g}"
    return None


def diverged_error(what: str, iteration: int, rate: float | None,
                   update_rule: str) -> TrainingDivergedError:
    """The error for training that diverged at ``iteration``, saying what to change."""
    now = f", now {rate:g} with {update_rule}" if rate is not None else ""
    # adaptive rules divide by the gradient's scale, so clipping it barely changes a step
    clip = "" if update_rule in ADAPTIVE_RULES else " or clip gradients (solver.grad_clip)"
    return TrainingDivergedError(
        f"training diverged at iteration {iteration} ({what}): lower the learning "
        f"rate (solver.learning_rate{now}){clip}")


def decay_learning_rates(optim_configs: dict[str, dict[str, Any]], lr_decay: float) -> None:
    """Multiply every optimiser state's learning rate by ``lr_decay`` (at the end of an epoch)."""
    for config in optim_configs.values():
        config["learning_rate"] = config.get("learning_rate", 1e-3) * lr_decay


def uniform_guess_loss(captions: np.ndarray, vocab_size: int) -> float:
    """The loss (per caption, averaged over the batch) of a model that gives every symbol of a
    ``vocab_size`` vocabulary the same probability: ``log(vocab_size)`` per non-``<NULL>``
    target."""
    targets = np.count_nonzero(np.asarray(captions)[:, 1:] != NULL_ID)
    return targets / max(len(captions), 1) * math.log(max(vocab_size, 2))


def non_finite_params(params: Any) -> list[str]:
    """Names of the parameters that hold a NaN or inf (checked on the flat buffer first)."""
    flat = getattr(params, "flat", None)
    if flat is not None and np.isfinite(flat).all():
        return []
    return [name for name, value in params.items() if not np.isfinite(value).all()]


def clip_global_norm(grads: dict[str, np.ndarray], max_norm: float | None) -> None:
    """Scale ``grads`` in place so their global L2 norm is at most ``max_norm`` (None/0: off)."""
    if not max_norm:
        return
    flat = getattr(grads, "flat", None)
    arrays = [flat] if flat is not None else list(grads.values())
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in arrays))
    if norm > max_norm:
        for g in arrays:
            g *= max_norm / norm


def apply_update(update_rule: Any, params: Any, grads: Any, optim_configs: dict[str, Any]
                 ) -> None:
    """One optimiser step: over the flat parameter buffer when params and grads both have one
    (``optim_configs["flat"]``), else tensor by tensor; ``optim_configs`` is updated in place."""
    flat_w = getattr(params, "flat", None)
    flat_dw = getattr(grads, "flat", None)
    if flat_w is not None and flat_dw is not None:
        next_w, optim_configs["flat"] = update_rule(flat_w, flat_dw, optim_configs["flat"])
        if next_w is not flat_w:
            flat_w[...] = next_w
    else:
        for name, w in params.items():
            next_w, optim_configs[name] = update_rule(w, grads[name], optim_configs[name])
            params[name] = next_w
