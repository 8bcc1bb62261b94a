"""The runs ``test_fingerprint`` pins: a few seeded training steps and the end-of-run evaluation
of every built-in cell and tokenizer (float64) and of the default run (float32).

``python -m tests.model.fingerprint_runs`` prints them all as JSON; the test runs it in a child
process with one BLAS thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import capx.run.schemas  # noqa: F401 - stores base_config, which conf/config.yaml starts from
from capx.captioner import CaptioningRNN
from capx.datasets.splits import SplitSettings, make_splits
from capx.decoding import decode, default_max_length
from capx.metrics.evaluate import evaluate
from capx.metrics.spelling import CharNgramSpeller
from capx.metrics.text import canonical_words
from capx.registry import DATASETS
from capx.solver import CaptioningSolver
from capx.tokenizers import make_tokenizer

REPO = Path(__file__).resolve().parents[2]

#: the float64 grid: tiny shapes data split like the study's, a few steps of each model
GRID_DATA = {"name": "shapes", "num_train": 16, "num_val": 4, "seed": 0}
GRID_SPLIT = {"scheme": "kfold", "folds": 3, "fold": 0, "dev_percent": 15, "seed": 0}
GRID_TOKENIZERS = {"char": {"max_length": 60}, "bpe": {"vocab_size": 60, "max_length": 30},
                   "word": {"max_length": 24, "min_count": 2}}
GRID_MODEL = {"wordvec_dim": 16, "hidden_dim": 24, "dtype": "float64"}
GRID_SOLVER = {"update_rule": "adam", "learning_rate": 1e-2, "lr_decay": 0.9, "num_epochs": 3,
               "batch_size": 20, "grad_clip": None, "options": {}}
#: the default run, smaller: ``python run.py`` with these overrides (float32, one BLAS thread)
DEFAULT_OVERRIDES = ["dataset.num_train=60", "dataset.num_val=12", "solver.num_epochs=2"]
#: changes the pins must notice: one weight moved by one in a million (float64), the learning
#: rate 1% off (float32)
PERTURBED_WEIGHT = ("b_vocab", (2,), 1e-6)  # the <END> score's bias
PERTURBED_LEARNING_RATE = 1.01
TIMINGS = ("decode_seconds", "captions_per_second")


# -- computing a fingerprint --------------------------------------------------------------------


def grid_config(cell: str, tokenizer: str) -> dict[str, Any]:
    return {"dataset": dict(GRID_DATA), "split": dict(GRID_SPLIT),
            "tokenizer": {"name": tokenizer, **GRID_TOKENIZERS[tokenizer]},
            "cell": {"name": cell}, "model": dict(GRID_MODEL), "solver": dict(GRID_SOLVER),
            "seed": 0}


def default_config() -> dict[str, Any]:
    """The default run's config, composed as ``python run.py`` composes it."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=DEFAULT_OVERRIDES),
                                      resolve=True)


def train_and_evaluate(config: dict[str, Any], summed_another_way: bool = False,
                       dtype: str | None = None, weight: tuple | None = None,
                       learning_rate_factor: float = 1.0) -> dict[str, Any]:
    """Build data, tokenizer, model and solver from ``config`` as a run does, train, evaluate."""
    options = dict(config["dataset"])
    data = make_splits(DATASETS.get(options.pop("name"))(**options),
                       SplitSettings(**config["split"]))
    options = dict(config["tokenizer"])
    tokenizer = make_tokenizer(options.pop("name"), **options).fit(data.train.captions)
    model_cfg, solver_cfg = config["model"], config["solver"]
    model = CaptioningRNN(
        tokenizer.word_to_idx, input_dim=data.feature_dim, wordvec_dim=model_cfg["wordvec_dim"],
        hidden_dim=model_cfg["hidden_dim"], cell_type=config["cell"]["name"],
        dtype=np.dtype(dtype or model_cfg["dtype"]), seed=config["seed"],
        pack=not summed_another_way, fold_embedding=not summed_another_way)
    if weight is not None:
        name, index, delta = weight
        model.params[name][index] += delta
    solver = CaptioningSolver(
        model, data.to_solver_data(tokenizer), update_rule=solver_cfg["update_rule"],
        optim_config={"learning_rate": solver_cfg["learning_rate"] * learning_rate_factor,
                      **solver_cfg["options"]},
        lr_decay=solver_cfg["lr_decay"], batch_size=solver_cfg["batch_size"],
        num_epochs=solver_cfg["num_epochs"], verbose=False, grad_clip=solver_cfg["grad_clip"],
        seed=config["seed"])
    solver.train()

    test = data.test if data.test is not None else data.val
    word_counts = Counter(w for text in data.train.captions for w in canonical_words(text))
    result = evaluate(model, tokenizer, test, set(word_counts), "greedy", java_metrics=False,
                      speller=CharNgramSpeller().fit(data.train.captions),
                      word_counts=word_counts)
    flat = np.asarray(model.params.flat, dtype=np.float64)
    found = {
        "vocab_size": tokenizer.vocab_size,
        "loss_history": [float(loss) for loss in solver.loss_history],
        "metrics": {k: v for k, v in sorted(result.items()) if k not in TIMINGS},
        "greedy_ids": np.asarray(result.ids).tolist(),
        "greedy_margin": greedy_margin(model, test.features, default_max_length(tokenizer)),
        "param_sums": {"sum_abs": float(np.abs(flat).sum()), "sum_squares": float(flat @ flat)},
    }
    if model.dtype == np.float64:  # float32 beams may hold near-ties; greedy's margin is checked
        found["beam_ids"] = np.asarray(decode(model, test.features, default_max_length(tokenizer),
                                              "beam", beam_width=2)).tolist()
    return found


def greedy_margin(model: Any, features: np.ndarray, max_length: int) -> float:
    """The smallest gap between the best and the second-best score of any greedy choice: the
    captions' ids can only differ between machines if rounding is as large as this."""
    gaps = []

    def choose(scores: np.ndarray) -> np.ndarray:
        top = np.sort(scores, axis=1)[:, -2:]
        gaps.append(float((top[:, 1] - top[:, 0]).min()))
        return scores.argmax(axis=1)

    model.generate(np.asarray(features, dtype=model.dtype), max_length, choose)
    return min(gaps)


def grid_keys() -> list[tuple[str, str]]:
    return [(cell, tokenizer) for cell in ("rnn", "lstm") for tokenizer in GRID_TOKENIZERS]


def compute() -> dict[str, dict[str, Any]]:
    """Every fingerprint: the pinned runs and the ones the tests compare them with."""
    runs: dict[str, dict[str, Any]] = {}
    for cell, tokenizer in grid_keys():
        config = grid_config(cell, tokenizer)
        runs[f"float64/{cell}/{tokenizer}"] = train_and_evaluate(config)
        runs[f"check/float64/{cell}/{tokenizer}/summed_another_way"] = train_and_evaluate(
            config, summed_another_way=True)
    runs["check/float64/lstm/word/weight_moved"] = train_and_evaluate(
        grid_config("lstm", "word"), weight=PERTURBED_WEIGHT)
    default = default_config()
    runs["float32/default"] = train_and_evaluate(default)
    runs["check/float32/default/summed_another_way"] = train_and_evaluate(
        default, summed_another_way=True)
    runs["check/float32/default/in_float64"] = train_and_evaluate(default, dtype="float64")
    runs["check/float32/default/learning_rate_moved"] = train_and_evaluate(
        default, learning_rate_factor=PERTURBED_LEARNING_RATE)
    return runs


def compute_in_child() -> dict[str, dict[str, Any]]:
    """:func:`compute` in a child process with one BLAS thread."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                          if p))
    done = subprocess.run([sys.executable, "-m", "tests.model.fingerprint_runs"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


if __name__ == "__main__":
    json.dump(compute(), sys.stdout)
