"""Helpers shared by the tests: one place for running jobs and reading the MLflow store back.

Fixtures (``cache_dir``, ``workdir``, the real data) live in ``tests/conftest.py``; plain
functions and constants live here and are imported as ``from tests.support import ...``.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: the tiny, fast preset every end-to-end job starts from
SMOKE = ["experiment=smoke", "progress=false"]
#: a toy vocabulary for solver and checkpoint tests
VOCAB = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "red", "circle", "square"]


# -- jobs ---------------------------------------------------------------------------------------


def run_in_process(folder: Path, *overrides: str, name: str = "job") -> str:
    """Compose the config as run.py would (the smoke preset first) and run one job here."""
    from hydra import compose, initialize_config_dir

    from capx.run.main import JobContext, run

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*SMOKE, *overrides])
    context = JobContext(original_cwd=folder, output_dir=folder / "outputs" / name,
                         overrides=list(overrides))
    return run(cfg, context)


def smoke_config(*overrides: str):
    """The validated, typed config of the smoke preset with ``overrides`` (as run.py composes it)."""
    from hydra import compose, initialize_config_dir

    from capx.run.config import validate

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return validate(compose("config", overrides=[*SMOKE, *overrides]))


def subprocess_env(cache_dir: Path | None = None, pythonpath: str = "",
                   **extra: str) -> dict[str, str]:
    """The environment of a child ``run.py``: this checkout first on the path, no outside store."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    if cache_dir is not None:
        env["CAPX_CACHE_DIR"] = str(cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (pythonpath, str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def run_py(folder: Path, cache_dir: Path | None, *args: str, timeout: int = 300,
           pythonpath: str = "", **env: str) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` in ``folder`` (created if needed); the result, whatever its status."""
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=folder,
                          env=subprocess_env(cache_dir, pythonpath, **env),
                          capture_output=True, text=True, timeout=timeout)


def run_py_ok(folder: Path, cache_dir: Path | None, *args: str, **options) -> subprocess.CompletedProcess:
    """:func:`run_py` that must succeed; a failure shows the end of its output."""
    done = run_py(folder, cache_dir, *args, **options)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


# -- the MLflow store ---------------------------------------------------------------------------


def mlflow_client(folder: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")


def read_runs(folder: Path, experiment: str = "capx"):
    """(client, runs) of one experiment in ``folder``'s ``mlflow.db``."""
    client = mlflow_client(folder)
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id])


def artifact_paths(client, run_id: str, path: str = "") -> set[str]:
    """Every artifact file of a run, as paths relative to its artifact root."""
    found = set()
    for item in client.list_artifacts(run_id, path or None):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- toy models ---------------------------------------------------------------------------------


def toy_data(num=12, T=6, V=8, D=10, seed=0):
    """A solver data dict of random captions over a V-word vocabulary (CS231n's keys)."""
    rng = np.random.RandomState(seed)
    captions = np.zeros((num, T + 2), dtype=np.int32)
    captions[:, 0] = 1
    for i in range(num):
        length = rng.randint(2, T + 1)
        captions[i, 1:length + 1] = rng.randint(3, V, size=length)
        captions[i, length + 1] = 2
    word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2} | {f"w{i}": i for i in range(3, V)}
    return {
        "train_captions": captions, "train_image_idxs": np.arange(num),
        "train_features": rng.randn(num, D).astype(np.float32),
        "word_to_idx": word_to_idx, "idx_to_word": sorted(word_to_idx, key=word_to_idx.get),
    }


def small_solver(hidden: int = 8, seed: int = 0, cell: str = "lstm"):
    """A small LSTM captioner's solver over :data:`VOCAB`, its data fixed whatever the seed."""
    from capx.captioner import CaptioningRNN
    from capx.solver import CaptioningSolver

    word_to_idx = {w: i for i, w in enumerate(VOCAB)}
    model = CaptioningRNN(word_to_idx, input_dim=6, wordvec_dim=4, hidden_dim=hidden,
                          cell_type=cell, seed=seed)
    rng = np.random.RandomState(0)
    captions = rng.randint(4, len(VOCAB), size=(30, 6)).astype(np.int32)
    captions[:, 0], captions[:, -1] = 1, 2
    data = {"train_captions": captions, "train_image_idxs": rng.randint(0, 10, 30),
            "train_features": rng.randn(10, 6).astype(np.float32),
            "word_to_idx": word_to_idx, "idx_to_word": VOCAB}
    return CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                            batch_size=5, num_epochs=2, verbose=False, seed=seed)


def word_tokenizer_dict() -> dict:
    """The tokenizer entry of a checkpoint of :func:`small_solver`."""
    return {"name": "word", "options": {"max_length": 4}, "idx_to_word": VOCAB}


# -- study export records -----------------------------------------------------------------------

GALLERY_IMAGE_IDS = [11, 22, 33]
GALLERY_URL = "http://images.cocodataset.org/val2017/000000000022.jpg"


def captioned_record(tokenizer: str, fold: int, picture_dir: Path | None = None) -> dict:
    """An export record of 3 test images with their captions (images 11 and 33 are files of an
    image folder, 22 a COCO URL), as ``capx export`` writes them."""
    rng = np.random.default_rng([fold, len(tokenizer)])
    chars = np.full(3, 20.0)
    nll = 20 * (1.5 + rng.random(3))
    images = {str(i): {"references": [f"reference {k} of image {i}" for k in (1, 2)],
                       "url": GALLERY_URL if i == 22 else f"img{i}.png"} for i in GALLERY_IMAGE_IDS}
    return {"run_id": f"{tokenizer}-{fold}", "name": "r",
            "labels": {"tokenizer": tokenizer, "cell": "lstm", "fold": str(fold), "seed": "0"},
            "params": {"model.param_budget": "250000", "split.fold": str(fold), "seed": "0",
                       "dataset.image_dir": str(picture_dir) if picture_dir else "null"},
            "metrics": {"test/bits_per_char": float(nll.sum() / chars.sum() / math.log(2)),
                        "test/total": 250000.0},
            "curves": {"val/bits_per_char": [[1, 3.0], [2, 2.5]]},
            "per_image": {"image_id": GALLERY_IMAGE_IDS, "nll_open": nll.tolist(),
                          "nll_closed": nll.tolist(), "chars": chars.tolist(),
                          "cider": rng.random(3).tolist()},
            "captions": {"image_id": GALLERY_IMAGE_IDS,
                         "caption": [f"{tokenizer} says <b>{i}</b>" for i in GALLERY_IMAGE_IDS]},
            "images": images if tokenizer == "char" and fold == 0 else {}}
