"""Solver callbacks for experiments: progress bar, validation and samples, early stopping,
checkpoints. (The MLflow one, :class:`capx.run.epoch_recorder.EpochRecorder`, comes from the
recorder.)

They share one :class:`RunState` (latest validation loss, best so far, checkpoint paths), and run
in the order :func:`capx.run.build.make_callbacks` lists them: validation first, then early
stopping, recording, checkpoints (after the epoch is in the store), the progress bar.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from capx.run.scoring import evenly_spread_rows
from capx.checkpoint import CheckpointError, save_checkpoint
from capx.solver import Callback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleCaption:
    """One validation image's sampled caption beside one of its references."""

    image: int
    sampled: str
    reference: str

    def line(self) -> str:
        return f"image {self.image}: {self.sampled}  |  reference: {self.reference}"


@dataclass
class RunState:
    """What the callbacks learn during training, for each other and for the closing summary."""

    val_loss: float | None = None
    best_val_loss: float | None = None
    best_score: float | None = None  # the selection metric at best_epoch (lower is better)
    best_epoch: int | None = None
    best_params: Any = None          # a copy of the flat parameters at best_epoch
    stopped_early_at: int | None = None
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    samples: list[SampleCaption] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)  # the epochs of this process
    earlier_train_seconds: float = 0.0  # training time before a resume (from the checkpoint)
    val_metrics: dict[str, float] = field(default_factory=dict)  # tokenizer-independent ones
    selected_metrics: dict[str, float] = field(default_factory=dict)  # val/* at best_epoch

    @property
    def train_seconds(self) -> float:
        """Training time of the whole run, over every resume."""
        return self.earlier_train_seconds + float(sum(self.epoch_seconds))


class ProgressBar(Callback):
    """A tqdm bar over iterations; ``enabled=None`` shows it only on a terminal."""

    def __init__(self, state: RunState, enabled: bool | None = None):
        self.state, self.enabled, self.bar = state, enabled, None

    def on_train_begin(self, solver: Any) -> None:
        self.bar = tqdm(total=solver.num_iterations, initial=solver.iteration, unit="it",
                        disable=None if self.enabled is None else not self.enabled,
                        dynamic_ncols=True, desc="training")

    @property
    def shown(self) -> bool:
        return self.bar is not None and not self.bar.disable

    def on_iteration_end(self, solver: Any, loss: float) -> None:
        self.bar.update(1)
        if solver.iteration % 5 == 0:
            post = {"epoch": solver.epoch, "loss": f"{loss:.3f}"}
            if self.state.val_loss is not None:
                post["val"] = f"{self.state.val_loss:.3f}"
            self.bar.set_postfix(post, refresh=False)

    def on_epoch_end(self, solver: Any) -> None:
        if not self.shown:  # logs one line per epoch instead of the bar
            train = np.mean(solver.loss_history[-solver.iterations_per_epoch:])
            val = "" if self.state.val_loss is None else f", val loss {self.state.val_loss:.4f}"
            seconds = self.state.epoch_seconds[-1] if self.state.epoch_seconds else float("nan")
            log.info("epoch %d/%d: train loss %.4f%s (%.1f s)", solver.epoch, solver.num_epochs,
                     train, val, seconds)

    def on_train_end(self, solver: Any) -> None:
        if self.bar is not None:
            self.bar.close()


def batched_loss(model: Any, features: np.ndarray, captions: np.ndarray,
                 image_idxs: np.ndarray, batch_size: int) -> float:
    """Mean per-caption loss of ``model`` over all given captions, ``batch_size`` at a time."""
    total, count = 0.0, 0
    for start in range(0, len(captions), batch_size):
        rows = slice(start, start + batch_size)
        loss, _ = model.loss(features[image_idxs[rows]], captions[rows])
        n = len(captions[rows])
        total += float(loss) * n
        count += n
    return total / max(count, 1)


class Validation(Callback):
    """After each epoch: the validation loss, greedy sample captions for a few val images and,
    when ``text_metrics`` is given, its tokenizer-independent metrics (``model -> {name: value}``,
    e.g. bits per character of the val captions, see :func:`capx.run.scoring.text_validation`).

    The model is selected on dev ``bits_per_char`` when the text metrics give it (comparable
    across tokenizers), else on the validation loss: ``state.best_epoch`` and a copy of the
    parameters there (``state.best_params``) follow that metric.
    """

    def __init__(self, state: RunState, data: dict[str, Any], decode: Callable[[np.ndarray], list],
                 max_length: int, batch_size: int = 500, max_captions: int | None = None,
                 num_samples: int = 8,
                 text_metrics: Callable[[Any], dict[str, float]] | None = None):
        self.state, self.data, self.decode = state, data, decode
        self.text_metrics = text_metrics
        self.max_length, self.batch_size, self.num_samples = max_length, batch_size, num_samples
        n = len(data["val_captions"])
        # A fixed, evenly spread subset: the same captions every epoch, no RNG consumed.
        self.rows = evenly_spread_rows(n, max_captions)
        images = np.unique(data["val_image_idxs"]) if n else np.zeros(0, int)
        self.sample_images = images[:num_samples]

    def on_epoch_end(self, solver: Any) -> None:
        self.state.epoch_seconds.append(solver.epoch_seconds[-1])
        if len(self.rows):
            self.state.val_loss = batched_loss(
                solver.model, self.data["val_features"], self.data["val_captions"][self.rows],
                self.data["val_image_idxs"][self.rows], self.batch_size)
            if self.state.best_val_loss is None or self.state.val_loss < self.state.best_val_loss:
                self.state.best_val_loss = self.state.val_loss
        if self.text_metrics is not None:
            self.state.val_metrics = self.text_metrics(solver.model)
        score = self.state.val_metrics.get("bits_per_char", self.state.val_loss)
        if score is not None and (self.state.best_score is None or score < self.state.best_score):
            self.state.best_score, self.state.best_epoch = float(score), solver.epoch
            self.state.best_params = solver.model.params.flat.copy()
            self.state.selected_metrics = {f"val/{k}": float(v) for k, v in
                                           self.state.val_metrics.items()}
            if self.state.val_loss is not None:
                self.state.selected_metrics["val/loss"] = float(self.state.val_loss)
        self.state.samples = self.sample_captions(solver.model)

    def sample_captions(self, model: Any) -> list[SampleCaption]:
        """A greedy caption and the first reference of each sample image."""
        if not len(self.sample_images):
            return []
        ids = model.sample(self.data["val_features"][self.sample_images], self.max_length)
        samples = []
        for image, text in zip(self.sample_images, self.decode(ids)):
            ref_row = int(np.flatnonzero(self.data["val_image_idxs"] == image)[0])
            reference = self.decode(self.data["val_captions"][ref_row])[0]
            samples.append(SampleCaption(int(image), text, reference))
        return samples


class EarlyStopping(Callback):
    """Stops training when the selection metric has not improved for ``patience`` epochs.

    Runs after :class:`Validation` (which tracks the best epoch). ``solver.num_epochs`` stays
    the cap; ``state.stopped_early_at`` records the epoch it stopped at (None: ran to the cap).
    """

    def __init__(self, state: RunState, patience: int):
        self.state, self.patience = state, int(patience)

    def on_epoch_end(self, solver: Any) -> None:
        best = self.state.best_epoch
        if best is not None and solver.epoch - best >= self.patience:
            self.state.stopped_early_at = solver.epoch
            solver.stop_training = True
            log.info("early stopping at epoch %d: no dev improvement since epoch %d (%.4f)",
                     solver.epoch, best, self.state.best_score)


class Checkpointer(Callback):
    """Writes ``last.npz`` every few epochs and ``best.npz`` when the validation loss improves;
    never non-finite parameters (the file already there is kept). ``on_saved(path)`` is called
    after each write (the recorder uploads it to the run)."""

    def __init__(self, state: RunState, folder: Path, tokenizer: dict[str, Any], config_yaml: str,
                 meta: dict[str, Any], every_epochs: int = 1,
                 on_saved: Callable[[Path], None] | None = None):
        self.state, self.folder, self.tokenizer = state, Path(folder), tokenizer
        self.config_yaml, self.meta, self.every_epochs = config_yaml, meta, every_epochs
        self.on_saved = on_saved

    def save(self, solver: Any, name: str = "last.npz") -> Path | None:
        meta = {**self.meta, "best_val_loss": self.state.best_val_loss,
                "val_loss": self.state.val_loss, "best_score": self.state.best_score,
                "best_epoch": self.state.best_epoch, "train_seconds": self.state.train_seconds,
                "selected_metrics": self.state.selected_metrics,
                "best_checkpoint": None if self.state.best_checkpoint is None
                else str(self.state.best_checkpoint)}
        try:
            path = save_checkpoint(self.folder / name, solver.state_dict(), self.tokenizer,
                                   self.config_yaml, meta)
        except CheckpointError as exc:  # non-finite parameters: keep the last good file
            log.error("%s", exc)
            return self.state.last_checkpoint if name == "last.npz" else self.state.best_checkpoint
        if name == "last.npz":
            self.state.last_checkpoint = path
        if self.on_saved is not None:
            self.on_saved(path)
        return path

    def on_epoch_end(self, solver: Any) -> None:
        if self.state.best_epoch == solver.epoch:
            self.state.best_checkpoint = self.save(solver, "best.npz")
        if (solver.epoch % self.every_epochs == 0 or solver.epoch >= solver.num_epochs
                or solver.stop_training):
            self.save(solver)
