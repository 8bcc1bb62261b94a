"""The input projection over the batch's distinct tokens (``fold_embedding="auto"``) against
the plain one over every position (``fold_embedding=False``), for word models.

Run from the repository root::

    python -m benchmarks.bench_fold             # word rnn and lstm, N = 25, 50, 128
    python -m benchmarks.bench_fold --rounds 6

The benchmark's captions draw word ids uniformly, so about 70% of a batch's positions hold
distinct words; real captions are Zipf-distributed ("a" and ``<START>`` dozens of times per
batch), so this also times captions whose ids follow a Zipf law (about 40% distinct). Both
settings train the same model on the same batch in one process, taking turns.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from benchmarks.bench_captioner import (
    CELLS,
    GATES,
    SPECIALS,
    TOKENIZATIONS,
    Settings,
    build_models,
    capx_trainer,
    make_captions,
    make_features,
)
from benchmarks.machine import check_busy, limit_blas_threads, machine_info, time_calls


def zipf_ids(captions: np.ndarray, vocab_size: int, rng: np.random.Generator) -> np.ndarray:
    """``captions`` with each word id redrawn from a Zipf law over the words (1/rank)."""
    first_word = len(SPECIALS)
    ranks = np.arange(1, vocab_size - first_word + 1)
    words = rng.choice(np.arange(first_word, vocab_size), size=captions.shape,
                       p=(1 / ranks) / (1 / ranks).sum())
    return np.where(captions >= first_word, words, captions).astype(captions.dtype)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per turn")
    args = parser.parse_args(argv)
    settings = Settings(run_torch=False, run_seed=False)
    word = next(t for t in TOKENIZATIONS if t.name == "word")
    info = machine_info()
    print(f"- {info['date']}; CPU {info['cpu_model']}, {info['cores_usable']} usable cores; "
          f"NumPy {info['numpy']}; BLAS threads 2")
    print(f"- busy check before: {check_busy().describe()}\n")
    print("| word ids | cell | N | distinct / positions | every position ms "
          "| distinct tokens ms | distinct / every |")
    print("|---|---|--:|--:|--:|--:|--:|")
    with limit_blas_threads(2):
        for ids in ("uniform", "Zipf"):
            for cell in CELLS:
                for n in (25, 50, 128):
                    rng = np.random.default_rng([settings.data_seed, n, word.steps, GATES[cell]])
                    features = make_features(n, settings.input_dim, rng)
                    captions = make_captions(n, word.steps, word.vocab_size, rng)
                    if ids == "Zipf":
                        captions = zipf_ids(captions, word.vocab_size, rng)
                    inputs = captions[:, :-1][captions[:, 1:] != 0]
                    steps = {}
                    for fold in (False, "auto"):
                        model = build_models(word, cell, settings, seed=n)[0]
                        model.fold_embedding = fold
                        steps[fold] = capx_trainer(model, features, captions)
                    times: dict = {fold: [] for fold in steps}
                    for _ in range(args.rounds):
                        for fold, step in steps.items():
                            times[fold] += time_calls(step, args.steps, warmup=1)
                    every, distinct = (1000 * statistics.median(times[f]) for f in steps)
                    print(f"| {ids} | {cell} | {n} | {len(np.unique(inputs))} / {inputs.size} "
                          f"| {every:.1f} | {distinct:.1f} | {distinct / every:.2f} |")
    print(f"\n- busy check after: {check_busy().describe()}")


if __name__ == "__main__":
    main()
