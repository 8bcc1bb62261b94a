"""Peak memory and speed of training at full CS231n COCO scale (synthetic values, real shapes).

Run from the repository root::

    python -m benchmarks.memory_full_scale [--iterations 50] [--json PATH]

The CS231n COCO training split has 400,135 captions of 17 tokens and 82,783 images with 512
PCA features (float32). This script builds arrays of exactly those shapes (random values, ~25%
``<NULL>`` padding), then trains the word model (V=1004, W=256, H=512, batch 100, Adam) with
:class:`capx.solver.CaptioningSolver`, once per cell, each in a fresh process so ``ru_maxrss`` is
that cell's own. A full epoch is 4,001 iterations; every iteration allocates and frees the same
shapes, so the peak over the data plus ``--iterations`` iterations is the epoch's peak. The epoch
time is projected from the seconds per iteration (measured without tracemalloc, which slows
allocation).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
import tracemalloc
from typing import Any

import numpy as np

from benchmarks.bench_captioner import make_captions, make_vocab

COCO_TRAIN_CAPTIONS = 400_135
COCO_TRAIN_IMAGES = 82_783
CAPTION_TOKENS = 17  # <START> + 16 target positions
FEATURE_DIM, WORDVEC_DIM, HIDDEN_DIM, VOCAB_SIZE = 512, 256, 512, 1004
BATCH_SIZE = 100
MB = 1024.0 * 1024.0


def synthetic_coco(num_captions: int, num_images: int, rng: np.random.Generator) -> dict[str, Any]:
    """A CS231n-style training dict of the given sizes with random features and captions."""
    word_to_idx = make_vocab(VOCAB_SIZE)
    return {
        "train_captions": make_captions(num_captions, CAPTION_TOKENS - 1, VOCAB_SIZE, rng),
        "train_image_idxs": rng.integers(0, num_images, size=num_captions, dtype=np.int32),
        "train_features": rng.standard_normal((num_images, FEATURE_DIM), dtype=np.float32),
        "word_to_idx": word_to_idx,
        "idx_to_word": {i: w for w, i in word_to_idx.items()},
    }


def measure(cell: str, iterations: int = 50, timed_iterations: int = 20,
            num_captions: int = COCO_TRAIN_CAPTIONS, num_images: int = COCO_TRAIN_IMAGES,
            batch_size: int = BATCH_SIZE, seed: int = 0) -> dict[str, Any]:
    """Peak memory over building the data and ``iterations`` solver steps, then s/iteration."""
    from capx.captioner import CaptioningRNN
    from capx.solver import Callback, CaptioningSolver

    class StopAt(Callback):
        def __init__(self, iteration: int):
            self.iteration = iteration

        def on_iteration_end(self, solver, loss):
            if solver.iteration >= self.iteration:
                solver.stop_training = True

    tracemalloc.start()
    data = synthetic_coco(num_captions, num_images, np.random.default_rng(seed))
    data_bytes, _ = tracemalloc.get_traced_memory()
    model = CaptioningRNN(data["word_to_idx"], input_dim=FEATURE_DIM, wordvec_dim=WORDVEC_DIM,
                          hidden_dim=HIDDEN_DIM, cell_type=cell, dtype=np.float32, seed=seed)
    stop = StopAt(iterations)
    solver = CaptioningSolver(model, data, update_rule="adam",
                              optim_config={"learning_rate": 5e-3}, batch_size=batch_size,
                              num_epochs=1, verbose=False, callbacks=[stop], seed=seed)
    solver.train()
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    stop.iteration = solver.iteration + timed_iterations
    start_iteration, start = solver.iteration, time.perf_counter()
    solver.train()
    seconds_per_iteration = (time.perf_counter() - start) / (solver.iteration - start_iteration)
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {
        "cell": cell,
        "captions": num_captions,
        "images": num_images,
        "batch_size": batch_size,
        "traced_iterations": iterations,
        "timed_iterations": timed_iterations,
        "data_mb": data_bytes / MB,
        "peak_traced_mb": peak_bytes / MB,
        "training_extra_mb": (peak_bytes - data_bytes) / MB,
        "maxrss_mb": maxrss_kb / 1024.0,
        "seconds_per_iteration": seconds_per_iteration,
        "iterations_per_epoch": solver.iterations_per_epoch,
        "projected_epoch_minutes": seconds_per_iteration * solver.iterations_per_epoch / 60.0,
        "final_loss": float(solver.loss_history[-1]),
    }


def measure_in_fresh_process(cell: str, iterations: int, timed_iterations: int) -> dict[str, Any]:
    """:func:`measure` in a new interpreter, so ``ru_maxrss`` counts only this cell."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(measure, (cell, iterations, timed_iterations))


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| cell | data MB | peak MB (tracemalloc) | training extra MB | ru_maxrss MB "
        "| s / iteration | projected epoch (min) |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['cell']} | {r['data_mb']:.0f} | {r['peak_traced_mb']:.0f} "
            f"| {r['training_extra_mb']:.0f} | {r['maxrss_mb']:.0f} "
            f"| {r['seconds_per_iteration']:.3f} | {r['projected_epoch_minutes']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=50,
                        help="solver iterations traced for the peak (default 50)")
    parser.add_argument("--timed-iterations", type=int, default=20,
                        help="iterations timed without tracemalloc (default 20)")
    parser.add_argument("--cells", nargs="+", default=["rnn", "lstm"])
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.timed_iterations < 1:
        parser.error("--iterations and --timed-iterations must be at least 1")

    from benchmarks.machine import check_busy, machine_info

    busy = check_busy()
    rows = [measure_in_fresh_process(c, args.iterations, args.timed_iterations) for c in args.cells]
    busy_after = check_busy()
    info = machine_info()
    print("## capx memory at full CS231n COCO scale\n")
    print(f"- date: {info['date']}; machine: {info['cpu_model']}, {info['cores_logical']} cores; "
          f"NumPy {info['numpy']}")
    print(f"- data: {COCO_TRAIN_CAPTIONS:,} captions x {CAPTION_TOKENS} tokens (int32), "
          f"{COCO_TRAIN_IMAGES:,} x {FEATURE_DIM} float32 features (synthetic values, real shapes)")
    print(f"- model: word, V={VOCAB_SIZE}, W={WORDVEC_DIM}, H={HIDDEN_DIM}, float32, batch "
          f"{BATCH_SIZE}, Adam")
    print(f"- peak measured over building the data plus {args.iterations} solver iterations "
          "(an epoch repeats the same allocations 4,001 times, so this is the epoch's peak); "
          f"s/iteration over {args.timed_iterations} further iterations without tracemalloc")
    print(f"- busy check before: {busy.describe()}; after: {busy_after.describe()}\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, "busy_before": busy.as_dict(),
                       "busy_after": busy_after.as_dict(), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
