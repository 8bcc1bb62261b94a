"""One experiment job: config -> data -> tokenizer -> model -> training -> MLflow run.

:func:`main` is what ``run.py`` calls under Hydra; :func:`run` does the work and returns the run's
status (``FINISHED``, ``FAILED`` or ``KILLED``) instead of raising, so one failed job of a sweep
does not stop the others. SIGINT/SIGTERM during training stop after the current iteration, save a
checkpoint and mark the run KILLED.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf

from capx import names, tracking
from capx.callbacks import (Checkpointer, EarlyStopping, ProgressBar, RunState,
                            TrackingCallback, Validation)
from capx.checkpoint import Checkpoint, CheckpointError, check_compatible, load_checkpoint
from capx.finished import finished_in_export, finished_in_store, fingerprint
from capx.budget import flops_per_caption
from capx.config import ConfigError, validate
from capx.data import DataError
from capx.registry import PluginError, UnknownNameError
from capx.resume import config_for_resume, resolve_resume
from capx.evaluation import (data_statistics, decoder_settings, evaluation_text,
                             final_evaluation, per_image_json, text_validation, timing_summary,
                             train_step_peak_memory_mb)
from capx.metrics import vocabulary
from capx.metrics.spelling import CharNgramSpeller

log = logging.getLogger(__name__)

EXIT_CODES = {"FINISHED": 0, "SKIPPED": 0, "FAILED": 1, "INVALID": 2, "KILLED": 130}
# Errors that say what to fix in their message: logged without a traceback.
USER_ERRORS = (DataError, CheckpointError, PluginError, UnknownNameError)


@dataclass
class JobContext:
    """Where this job runs: Hydra's folders and overrides, or plain defaults outside Hydra."""

    original_cwd: Path
    output_dir: Path
    multirun: bool = False
    sweep_dir: Path | None = None
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)

    @classmethod
    def current(cls) -> "JobContext":
        try:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            hc = HydraConfig.get()
        except (ImportError, ValueError):
            cwd = Path.cwd()
            return cls(cwd, cwd / "outputs" / datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f"))
        cwd = Path(hc.runtime.cwd)
        sweep_dir = Path(hc.sweep.dir)
        return cls(
            original_cwd=cwd,
            output_dir=Path(hc.runtime.output_dir),
            multirun=hc.mode == RunMode.MULTIRUN,
            sweep_dir=sweep_dir if sweep_dir.is_absolute() else cwd / sweep_dir,
            overrides=list(hc.overrides.task),
            choices={k: str(v) for k, v in hc.runtime.choices.items() if v is not None},
        )


# -- entry points -----------------------------------------------------------------------------


def main(cfg: DictConfig) -> int:
    """``run.py``'s body: run the job; config errors print without a traceback. Returns an exit
    code for a single run (0 finished, 1 failed, 2 invalid config, 130 interrupted); in a sweep
    it returns the status so the other jobs go on."""
    context = JobContext.current()
    try:
        status = run(cfg, context)
    except (ConfigError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = "INVALID"
    if context.multirun:
        return 0
    return EXIT_CODES.get(status, 1)


def run(cfg: DictConfig | dict, context: JobContext | None = None) -> str:
    """Validate ``cfg``, train, track; returns the MLflow status of the run."""
    context = context or JobContext.current()
    plain = validate(cfg)
    checkpoint = None
    if plain.get("resume"):
        checkpoint, source_run = resolve_resume(plain, context.original_cwd, context.output_dir)
        plain = config_for_resume(plain, checkpoint, context.overrides)
    else:
        source_run = None
    if checkpoint is None and context.multirun and plain["tracking"]["skip_finished"]:
        done = already_finished(plain, context)
        if done:
            log.info("skipping %s: run %s already FINISHED with this configuration",
                     run_name(plain, context), done)
            return "SKIPPED"
    context.output_dir.mkdir(parents=True, exist_ok=True)
    tracker = open_run(plain, context, source_run)
    job = Job(plain, context, tracker, checkpoint)
    return job.execute()


# -- tracking ---------------------------------------------------------------------------------


def already_finished(plain: dict[str, Any], context: JobContext) -> str | None:
    """A FINISHED run (in the study export, else in the store) with this job's fingerprint."""
    key = fingerprint(plain)
    export = plain["tracking"]["export"]
    if export and not Path(export).is_absolute():
        export = context.original_cwd / export
    found = finished_in_export(export, key)
    if found or not plain["tracking"]["enabled"]:
        return found
    uri = tracking.tracking_uri(plain["tracking"]["uri"], context.original_cwd)
    client = tracking.make_client(uri)
    exp_id = tracking.experiment_id(client, plain["tracking"]["experiment_name"], uri)
    return finished_in_store(client, exp_id, key)


def run_name(plain: dict[str, Any], context: JobContext) -> str:
    """What varies: ``char-lstm-s0`` plus any other command-line overrides."""
    name = plain["tracking"]["run_name"]
    if name:
        return name
    parts = [plain["tokenizer"]["name"], plain["cell"]["name"], f"s{plain['seed']}"]
    skip = ("tokenizer=", "cell=", "seed=", "resume=", "tracking.", "hydra", "progress=",
            "experiment=")  # a preset is the same for every run of its study (and is tagged)
    for override in context.overrides:
        if override.startswith(skip):
            continue
        key, _, value = override.lstrip("+~").partition("=")
        parts.append(f"{key.rsplit('.', 1)[-1]}={value}" if "." in key else f"{key}={value}")
    return "-".join(parts)


def open_run(plain: dict[str, Any], context: JobContext,
             source_run: str | None) -> tracking.Tracker | None:
    """Create (or, when resuming a run of this store, reopen) this job's MLflow run."""
    settings = plain["tracking"]
    if not settings["enabled"]:
        return None
    uri = tracking.tracking_uri(settings["uri"], context.original_cwd)
    client = tracking.make_client(uri)
    exp_id = tracking.experiment_id(client, settings["experiment_name"], uri)
    if source_run:
        try:
            existing = client.get_run(source_run)
        except Exception:  # noqa: BLE001 - not in this store: start a new run
            existing = None
        if existing is not None:
            tracker = tracking.Tracker(client, source_run, uri)
            tracker.reopen(existing.info.status)
            tracker.set_tags({"capx.resumed": "true"})
            return tracker
    tags = {
        "tokenizer": plain["tokenizer"]["name"], "cell": plain["cell"]["name"],
        "dataset": plain["dataset"]["name"], "preset": context.choices.get("model", ""),
        names.FINGERPRINT: fingerprint(plain), "split": _split_label(plain["split"]),
        "fold": plain["split"]["fold"] if plain["split"]["scheme"] == "kfold" else "",
        "experiment": context.choices.get("experiment", ""),
        "seed": plain["seed"], "hydra.output_dir": str(context.output_dir),
        "mlflow.source.git.commit": tracking.git_commit(context.original_cwd),
        "mlflow.source.name": "run.py", "capx.resumed_from": plain.get("resume"),
    }
    if context.multirun and context.sweep_dir is not None:
        sweep = tracking.Sweep.in_folder(context.sweep_dir)
        tags[names.PARENT_RUN] = tracking.sweep_parent_run(client, exp_id, sweep)
        tags[names.SWEEP_CHILD] = str(sweep.folder)
    tags = {k: str(v) for k, v in tags.items() if v not in (None, "")}
    run = tracking.retry(lambda: client.create_run(exp_id, tags=tags,
                                                   run_name=run_name(plain, context)),
                         "creating the run")
    return tracking.Tracker(client, run.info.run_id, uri)


def _split_label(split: dict[str, Any]) -> str:
    if split["scheme"] == "kfold":
        return f"kfold{split['folds']}"
    return split["scheme"]


# -- the job ----------------------------------------------------------------------------------


class Job:
    """Builds everything from the validated config and trains, recording into ``tracker``."""

    def __init__(self, plain: dict[str, Any], context: JobContext,
                 tracker: tracking.Tracker | None, checkpoint: Checkpoint | None):
        self.plain, self.context, self.tracker, self.checkpoint = plain, context, tracker, checkpoint
        self.state = RunState()
        self.solver: Any = None
        self.checkpointer: Checkpointer | None = None
        self.signal_received: int | None = None
        self.images_for: Any = None  # the dataset's pictures, when its plugin draws them

    # .. outcome handling ..................................................................

    def execute(self) -> str:
        try:
            self.build()
        except Exception as exc:  # noqa: BLE001 - recorded, and the sweep goes on
            return self.failed_to_start(exc)
        try:
            self.log_start()
            with self.stop_on_signals():
                self.solver.train()
            if self.signal_received is not None:
                return self.interrupted(f"signal {signal.Signals(self.signal_received).name}")
            return self.finished()
        except KeyboardInterrupt:
            return self.interrupted("KeyboardInterrupt")
        except Exception as exc:  # noqa: BLE001 - recorded, and the sweep goes on
            from capx.solver import NonFiniteLossError

            if isinstance(exc, NonFiniteLossError):
                log.error("training stopped: %s", exc)
            else:
                log.error("run failed: %s: %s", type(exc).__name__, exc, exc_info=True)
            return self.failed(exc)

    def finished(self) -> str:
        self.checkpointer.save(self.solver)
        if self.plain["evaluation"].get("final", True):
            self.evaluate_at_end()
        self.log_artifacts()
        self.summary("FINISHED")
        self._end("FINISHED")
        return "FINISHED"

    def interrupted(self, why: str) -> str:
        log.warning("interrupted (%s): saving a checkpoint", why)
        if self.solver is not None and self.checkpointer is not None:
            self.checkpointer.save(self.solver)
        self._safely(self.log_artifacts)
        if self.tracker:
            self._safely(lambda: self.tracker.set_tags({"capx.stopped_by": why}))
        self.summary("KILLED")
        self._end("KILLED")
        return "KILLED"

    def failed_to_start(self, exc: BaseException) -> str:
        """Building data, tokenizer or model failed: nothing trained. A user error (missing
        data, incompatible checkpoint, unknown plugin) is reported without a traceback, and a
        resumed run that could not even start keeps the status it had."""
        if isinstance(exc, USER_ERRORS):
            log.error("run failed: %s", exc)
        else:
            log.error("run failed: %s: %s", type(exc).__name__, exc, exc_info=True)
        previous = self.tracker.status_before_reopen if self.tracker else None
        if previous is None:
            return self.failed(exc)
        self._safely(lambda: self.tracker.set_tags(
            {"capx.resume_error": f"{type(exc).__name__}: {exc}"[:5000]}))
        log.error("run %s keeps its status %s: the resume did not start",
                  self.tracker.run_id, previous)
        self._end(previous)
        return "FAILED"

    def failed(self, exc: BaseException) -> str:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if self.tracker:
            self._safely(lambda: self.tracker.set_tags(
                {"error": f"{type(exc).__name__}: {exc}"[:5000],
                 "error_type": type(exc).__name__}))
            self._safely(lambda: self.tracker.log_text(text, "error.txt"))
        self._safely(self.log_artifacts)  # the last good checkpoint, if any
        self.summary("FAILED", f"{type(exc).__name__}: {exc}")
        self._end("FAILED")
        return "FAILED"

    def _end(self, status: str) -> None:
        if self.tracker:
            self._safely(lambda: self.tracker.end(status))

    @staticmethod
    def _safely(call: Any) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - bookkeeping must not hide the real outcome
            log.warning("could not record to MLflow: %s", exc)

    @contextmanager
    def stop_on_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM finish the current iteration, then stop; a second SIGINT aborts."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, frame: Any) -> None:
            if self.signal_received is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.signal_received = signum
            if self.solver is not None:
                self.solver.stop_training = True

        previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    # .. building ...........................................................................

    def build(self) -> None:
        from capx.captioner import CaptioningRNN
        from capx.solver import CaptioningSolver

        p = self.plain
        started = time.perf_counter()
        self.data = self.load_data()
        self.tokenizer = self.make_tokenizer()
        self.speller = CharNgramSpeller().fit(self.data.train.captions)
        self.solver_data = self.data.to_solver_data(self.tokenizer)
        self.truncated = self.solver_data["train_truncated_fraction"]
        self.data_seconds = time.perf_counter() - started
        self.model = CaptioningRNN(
            self.tokenizer.word_to_idx, input_dim=self.data.feature_dim,
            wordvec_dim=p["model"]["wordvec_dim"], hidden_dim=self.hidden_dim(),
            cell_type=p["cell"]["name"], dtype=np.dtype(p["model"]["dtype"]), seed=p["seed"])
        solver_cfg = p["solver"]
        optim_config = {"learning_rate": float(solver_cfg["learning_rate"]),
                        **solver_cfg["options"]}
        self.solver = CaptioningSolver(
            self.model, self.solver_data, update_rule=solver_cfg["update_rule"],
            optim_config=optim_config, lr_decay=solver_cfg["lr_decay"],
            batch_size=solver_cfg["batch_size"], num_epochs=solver_cfg["num_epochs"],
            verbose=False, grad_clip=solver_cfg["grad_clip"], seed=p["seed"])
        if self.checkpoint is not None:
            check_compatible(self.checkpoint, self.model.params, self.tokenizer.idx_to_word)
            self.solver.load_state_dict(self.checkpoint.state)
            self.restore_selection(self.checkpoint.meta)
        self.solver.callbacks = self.make_callbacks()

    def load_data(self) -> Any:
        """The dataset plugin's data, re-split into train / dev (val) / test by ``split``."""
        from capx.datasets.base import pictures_of
        from capx.datasets.splits import SplitSettings, make_splits
        from capx.registry import DATASETS

        options = dict(self.plain["dataset"])
        plugin = DATASETS.get(options.pop("name"))
        data = plugin(**options)
        self.images_for = pictures_of(plugin, options)
        return make_splits(data, SplitSettings(**self.plain["split"]))

    def make_tokenizer(self) -> Any:
        """Fitted on the train captions, or restored from the checkpoint when resuming."""
        from capx.tokenizers import Tokenizer, make_tokenizer

        options = dict(self.plain["tokenizer"])
        fresh = make_tokenizer(options.pop("name"), **options)
        saved = self.checkpoint.tokenizer if self.checkpoint is not None else {}
        if not saved.get("name"):
            return fresh.fit(self.data.train.captions)
        wanted = {"name": fresh.name, "options": fresh.options()}
        if wanted != {"name": saved["name"], "options": saved.get("options")}:
            raise CheckpointError(
                f"{self.checkpoint.path} was trained with another tokenizer and vocabulary "
                f"({saved['name']} {saved.get('options')}); this run asks for {wanted['name']} "
                f"{wanted['options']}. Resume with the tokenizer settings it was trained with.")
        return Tokenizer.from_dict(saved)

    def hidden_dim(self) -> int:
        """``model.hidden_dim``, or the size that meets ``model.param_budget`` for this vocabulary."""
        model_cfg = self.plain["model"]
        if not model_cfg.get("param_budget"):
            return int(model_cfg["hidden_dim"])
        from capx.budget import hidden_for_budget

        return hidden_for_budget(int(model_cfg["param_budget"]), self.plain["cell"]["name"],
                                 self.tokenizer.vocab_size, self.data.feature_dim,
                                 int(model_cfg["wordvec_dim"]))

    def restore_selection(self, meta: dict[str, Any]) -> None:
        """The best-so-far epoch, score and parameters of the run being resumed."""
        self.state.best_val_loss = meta.get("best_val_loss")
        self.state.best_score = meta.get("best_score")
        self.state.best_epoch = meta.get("best_epoch")
        best = meta.get("best_checkpoint")
        if best and Path(best).is_file():
            saved = load_checkpoint(best).state["params"]
            flat = self.model.params.flat.copy()
            self.state.best_params = np.concatenate(
                [np.asarray(saved[name], dtype=flat.dtype).ravel()
                 for name in self.model.params])
            self.state.best_checkpoint = Path(best)

    def make_callbacks(self) -> list[Any]:
        p, state = self.plain, self.state
        evaluation = p["evaluation"]
        config_yaml = yaml.safe_dump(p, sort_keys=False)
        meta = {"run_id": self.tracker.run_id if self.tracker else None,
                "output_dir": str(self.context.output_dir)}
        self.checkpointer = Checkpointer(state, self.context.output_dir / "checkpoints",
                                         self.tokenizer.to_dict(), config_yaml, meta,
                                         p["checkpoint"]["every_epochs"])
        text_metrics = text_validation(self.data.val, self.tokenizer,
                                       evaluation["max_val_captions"],
                                       evaluation["val_batch_size"], speller=self.speller)
        callbacks: list[Any] = [
            Validation(state, self.solver_data, self.tokenizer.decode,
                       max_length=self.tokenizer.max_length + 1,
                       batch_size=evaluation["val_batch_size"],
                       max_captions=evaluation["max_val_captions"],
                       num_samples=evaluation["num_samples"], text_metrics=text_metrics),
        ]
        if p["solver"]["patience"]:
            callbacks.append(EarlyStopping(state, p["solver"]["patience"]))
        callbacks.append(self.checkpointer)
        if self.tracker:
            captions = self.solver_data["train_captions"]
            tokens = float((captions[:, 1:] != 0).sum(axis=1).mean()) if len(captions) else 0.0
            callbacks.append(TrackingCallback(state, self.tracker, p["tracking"]["log_every"],
                                              tokens, p["solver"]["batch_size"]))
        progress = p["progress"]
        callbacks.append(ProgressBar(state, None if progress == "auto" else bool(progress)))
        return callbacks

    # .. reporting ..........................................................................

    def log_start(self) -> None:
        p, counts = self.plain, self.model.param_counts()
        train, val = self.data.train, self.data.val
        log.info("capx: %s | %s tokenizer | %s cell | %s parameters",
                 p["dataset"]["name"], p["tokenizer"]["name"], p["cell"]["name"],
                 f"{counts['total']:,}")
        log.info("  data: %d train images (%d captions), %d val images (%d captions), %.1f s",
                 train.num_images, len(train.captions), val.num_images, len(val.captions),
                 self.data_seconds)
        log.info("  tokenizer: vocabulary %d, max_length %d, %.1f%% of train captions cut",
                 self.tokenizer.vocab_size, self.tokenizer.max_length, 100 * self.truncated)
        log.info("  training: %d epochs x %d iterations, batch %d, %s lr %g%s",
                 self.solver.num_epochs, self.solver.iterations_per_epoch,
                 self.solver.batch_size, p["solver"]["update_rule"],
                 p["solver"]["learning_rate"],
                 f", resuming at iteration {self.solver.iteration}" if self.checkpoint else "")
        log.info("  output: %s", self.context.output_dir)
        if self.tracker:
            log.info("  MLflow run %s in %s", self.tracker.run_id, self.tracker.uri)
            self.log_config(counts)

    def log_config(self, counts: dict[str, int]) -> None:
        t, p = self.tracker, self.plain
        if not self.checkpoint:  # a resumed run keeps the params it was started with
            t.log_params(tracking.flatten(p))
        t.log_text(yaml.safe_dump(p, sort_keys=False), "config/config.yaml")
        t.log_text("\n".join(self.context.overrides) + "\n", "config/overrides.txt")
        hydra_dir = self.context.output_dir / ".hydra"
        if hydra_dir.is_dir():
            t.log_artifact(hydra_dir, "config/hydra")
        metrics = {f"params/{k}": v for k, v in counts.items()}
        metrics.update({"data/vocab_size": self.tokenizer.vocab_size,
                        "data/train_captions": len(self.data.train.captions),
                        "data/truncated_fraction": self.truncated})
        metrics.update(data_statistics(self.solver_data))
        t.log_metrics(metrics, step=0)

    def evaluate_at_end(self) -> None:
        """Score the selected model once on the test split (``test/...``) and record it.

        The parameters are those of the best dev epoch; the test split is the split scheme's
        test set, or the val split when the scheme made none (tagged ``capx.test_split``).
        """
        started = time.perf_counter()
        p, solver, state = self.plain, self.solver, self.state
        if state.best_params is not None:
            self.model.params.flat[...] = state.best_params
        test = self.data.test if self.data.test is not None else self.data.val
        metrics, result = final_evaluation(self.model, self.tokenizer, test,
                                           self.data.train.captions, p, speller=self.speller)
        stats = data_statistics(self.solver_data)
        metrics.update(timing_summary(state.epoch_seconds, solver.iterations_per_epoch,
                                      solver.batch_size,
                                      stats.get("data/train_tokens_per_caption", 0.0)))
        metrics.update({f"test/{k}": float(v) for k, v in self.model.param_counts().items()
                        if k == "total" or k.startswith("group/")})
        metrics.update(self.selection_metrics())
        groups = {k[len("group/"):]: v for k, v in self.model.param_counts().items()
                  if k.startswith("group/")}
        metrics["test/flops_per_caption"] = flops_per_caption(
            groups, metrics.get("test/tokens_per_reference", 0.0))
        metrics["test/hidden_dim"] = float(self.model.hidden_dim)
        if p["evaluation"].get("measure_memory", True):
            metrics["test/train_step_peak_memory_mb"] = train_step_peak_memory_mb(
                self.model, self.solver_data, solver.batch_size)
        metrics["test/evaluation_seconds"] = time.perf_counter() - started
        log.info("  evaluation (%s decoder, %d %s images, epoch %s): BLEU-4 %.3f, CIDEr-D %.3f, "
                 "%.3f bits/char (closed %.3f), image gain %.3f bits/char, invented words %.1f%%",
                 decoder_settings(p)[0], int(metrics["test/images"]),
                 "test" if self.data.test is not None else "val", state.best_epoch,
                 metrics["test/bleu4"], metrics["test/cider"], metrics["test/bits_per_char"],
                 metrics.get("test/bits_per_char_closed", float("nan")),
                 metrics["test/image_gain_bits_per_char"],
                 100 * metrics["test/invented_word_rate"])
        if self.tracker:
            self.tracker.log_metrics(metrics, step=solver.epoch)
            self.tracker.set_tags({"capx.test_split": "test" if self.data.test is not None
                                   else "val"})
            self.tracker.log_text(evaluation_text(result, test,
                                                  vocabulary(self.data.train.captions)),
                                  "evaluation/captions.txt")
            self.tracker.log_text(per_image_json(result, test), "evaluation/per_image.json")

    def selection_metrics(self) -> dict[str, float]:
        """Which epoch was selected on dev, and whether training stopped early or at the cap."""
        state, solver = self.state, self.solver
        out = {"test/selected_epoch": float(state.best_epoch or solver.epoch),
               "test/epochs_trained": float(solver.epoch),
               "test/hit_epoch_cap": float(state.stopped_early_at is None
                                           and solver.epoch >= solver.num_epochs)}
        if state.best_score is not None:
            out["test/dev_score"] = float(state.best_score)
        return out

    def log_artifacts(self) -> None:
        if not self.tracker:
            return
        for path in (self.state.last_checkpoint, self.state.best_checkpoint):
            if path is not None and Path(path).is_file():
                self.tracker.log_artifact(path, "checkpoints")
        if self.solver is not None and self.solver.loss_history:
            from capx.plots import loss_curve_figure

            figure = loss_curve_figure(self.solver.loss_history, self.solver.iterations_per_epoch)
            self.tracker.log_figure(figure, "plots/loss_curve.png")
            import matplotlib.pyplot as plt

            plt.close(figure)
        self._log_sample_grid()

    def _log_sample_grid(self) -> None:
        if self.images_for is None or not self.state.samples:
            return
        from capx.plots import sample_grid_figure

        images = self.images_for("val", [x.image for x in self.state.samples])
        figure = sample_grid_figure(images, [x.sampled for x in self.state.samples])
        self.tracker.log_figure(figure, "samples/grid.png")
        import matplotlib.pyplot as plt

        plt.close(figure)

    def summary(self, status: str, error: str | None = None) -> None:
        s = self.state
        solver = self.solver
        log.info("")
        log.info("%s after %d iterations (%d epochs)%s", status,
                 solver.iteration if solver else 0, solver.epoch if solver else 0,
                 f": {error}" if error else "")
        if solver is not None and solver.loss_history:
            log.info("  final train loss %.4f%s", solver.loss_history[-1],
                     f", best val loss {s.best_val_loss:.4f} (epoch {s.best_epoch})"
                     if s.best_val_loss is not None and s.best_epoch is not None else "")
        for sample in s.samples[:4]:
            log.info("  %s", sample.line())
        if s.last_checkpoint:
            log.info("  checkpoint: %s (resume with: python run.py resume=%s)", s.last_checkpoint,
                     self.tracker.run_id if self.tracker else s.last_checkpoint)
        if self.tracker:
            log.info("  MLflow run %s; to look: %s", self.tracker.run_id,
                     tracking.ui_command(self.tracker.uri))


__all__ = ["run", "main", "JobContext", "EXIT_CODES", "ConfigError", "OmegaConf"]
