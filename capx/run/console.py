"""What a job prints: its settings at the start, the end-of-run scores, the closing summary."""

from __future__ import annotations

import logging
from typing import Any

from capx.run.build import Parts
from capx.run.callbacks import RunState
from capx.run.context import JobContext
from capx.run.recorder import Recorder
from capx.run.schemas import TopLevelConfig
from capx.tracking import names

log = logging.getLogger(__name__)
T = names.TEST


def starting(config: TopLevelConfig, context: JobContext, parts: Parts,
             recorder: Recorder, resumed: bool) -> None:
    """Data, vocabulary, training schedule, output folder and where the run is recorded."""
    counts, solver = parts.model.param_counts(), parts.solver
    train, val = parts.data.train, parts.data.val
    log.info("capx: %s | %s tokenizer | %s cell | %s parameters",
             config.dataset["name"], config.tokenizer["name"], config.cell["name"],
             f"{counts['total']:,}")
    log.info("  data: %d train images (%d captions), %d val images (%d captions), %.1f s",
             train.num_images, len(train.captions), val.num_images, len(val.captions),
             parts.data_seconds)
    log.info("  tokenizer: vocabulary %d, max_length %d, %.1f%% of train captions cut",
             parts.tokenizer.vocab_size, parts.tokenizer.max_length, 100 * parts.truncated)
    log.info("  training: %d epochs x %d iterations, batch %d, %s lr %g%s",
             solver.num_epochs, solver.iterations_per_epoch, solver.batch_size,
             config.solver.update_rule, config.solver.learning_rate,
             f", resuming at iteration {solver.iteration}" if resumed else "")
    log.info("  output: %s", context.output_dir)
    for line in recorder.start_lines():
        log.info("  %s", line)


def evaluated(decoder: str, metrics: dict[str, float], test_split: str,
              epoch: int | None) -> None:
    """The headline end-of-run scores of the selected epoch."""
    log.info("  evaluation (%s decoder, %d %s images, epoch %s): BLEU-4 %.3f, CIDEr-D %.3f, "
             "%.3f bits/char (closed %.3f), image gain %.3f bits/char, invented words %.1f%%",
             decoder, int(metrics[f"{T}images"]), test_split, epoch,
             metrics[f"{T}bleu4"], metrics[f"{T}cider"], metrics[names.TEST_BITS_PER_CHAR],
             metrics.get(f"{T}bits_per_char_closed", float("nan")),
             metrics.get(f"{T}image_gain_bits_per_char", float("nan")),  # nan: control off
             100 * metrics[f"{T}invented_word_rate"])


def summary(status: str, state: RunState, solver: Any, recorder: Recorder,
            error: str | None = None) -> None:
    """How far training got, the losses, a few sample captions, and how to resume or look."""
    log.info("")
    log.info("%s after %d iterations (%d epochs)%s", status,
             solver.iteration if solver else 0, solver.epoch if solver else 0,
             f": {error}" if error else "")
    if solver is not None and solver.loss_history:
        log.info("  final train loss %.4f%s", solver.loss_history[-1],
                 f", best val loss {state.best_val_loss:.4f} (epoch {state.best_epoch})"
                 if state.best_val_loss is not None and state.best_epoch is not None else "")
    for sample in state.samples[:4]:
        log.info("  %s", sample.line())
    if recorder.degraded:
        log.warning("  MLflow recording failed during the run (%s); what failed is sent "
                    "again as the run closes, and named there if it still fails; the local "
                    "files are complete", recorder.degraded)
    if state.last_checkpoint:
        target = state.last_checkpoint if recorder.degraded else (recorder.run_id
                                                                 or state.last_checkpoint)
        log.info("  checkpoint: %s (resume with: python run.py resume=%s)",
                 state.last_checkpoint, target)
    for line in recorder.end_lines():
        log.info("  %s", line)
