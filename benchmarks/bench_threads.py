"""Would splitting the element-wise work between the GEMMs across two threads pay?

    python -m benchmarks.bench_threads            # --busy: another process loads one core

NumPy releases the GIL inside ufunc loops, so two threads can run ufuncs on the two halves of an
array at once. This measures, side by side in one run, each piece of element-wise work of a
training step on one thread and split in two halves on a persistent two-thread pool:

- the bare cost of handing a task to a pool thread and waiting for it;
- one LSTM step's gate math (``lstm_activate_``) at N = 25, 50, 128 (H = 512), and the same
  with the backward factors a training step computes with it (``lstm_activate_for_backward_``);
- the softmax and cross-entropy over 600 x 1004 scores; Adam over 2.6 M parameters;
- Adam again, but run right after a word-LSTM ``loss`` call, as in a training step: OpenBLAS's
  worker threads then still spin on the other core for a while.

capx does not split this work (benchmarks/README.md has the figures and why); this benchmark is
what that decision rests on, and what to re-run on another machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from benchmarks import bench_captioner as bench
from benchmarks.machine import limit_blas_threads, machine_info, median_ms, time_calls
from capx.cells import lstm
from capx.ops import softmax_cross_entropy_
from capx.optim import adam

HIDDEN = 512
POOL = ThreadPoolExecutor(1)


def halves(work: Callable[[slice], object], rows: int) -> None:
    """``work`` on the first half of the rows here, on the second half in the pool thread."""
    second = POOL.submit(work, slice(rows // 2, rows))
    work(slice(0, rows // 2))
    second.result()


def whole(work: Callable[[slice], object], rows: int) -> None:
    work(slice(0, rows))


def median_us(call: Callable[[], object], repeats: int) -> float:
    return 1000.0 * median_ms(time_calls(call, repeats, warmup=max(3, repeats // 10)))


def pieces(rng: np.random.Generator) -> dict[str, tuple[Callable, Callable]]:
    """label -> (reset, work(split)): ``reset`` restores the inputs before each timed call."""
    out: dict[str, tuple[Callable, Callable]] = {}
    h = HIDDEN
    out["hand a task to the pool and wait"] = (lambda: None, lambda split: split(
        lambda rows: None, 2))
    for n in (25, 50, 128):
        a = rng.standard_normal((n, 4 * h), dtype=np.float32)
        prev_c = rng.standard_normal((n, h), dtype=np.float32)
        c, tanh_c, hh = (np.empty((n, h), np.float32) for _ in range(3))
        work = a.copy()
        out[f"LSTM step gate math, N={n}"] = (
            lambda work=work, a=a: np.copyto(work, a),
            lambda split, n=n, work=work, prev_c=prev_c, c=c, tanh_c=tanh_c, hh=hh: split(
                lambda r: lstm.lstm_activate_(work[r], prev_c[r], c[r], tanh_c[r], hh[r]), n))
        dc_dh, forget = np.empty_like(c), np.empty_like(c)
        out[f"LSTM step gate math and backward factors, N={n}"] = (
            lambda work=work, a=a: np.copyto(work, a),
            lambda split, n=n, work=work, prev_c=prev_c, c=c, hh=hh, dc_dh=dc_dh, forget=forget:
            split(lambda r: lstm.lstm_activate_for_backward_(
                work[r], prev_c[r], c[r], hh[r], dc_dh[r], forget[r]), n))
    scores = rng.standard_normal((600, 1004), dtype=np.float32)
    targets, weights = rng.integers(0, 1004, 600), np.full(600, 0.02, np.float32)
    work_scores = scores.copy()
    out["softmax + cross-entropy, 600 x 1004"] = (
        lambda: np.copyto(work_scores, scores),
        lambda split: split(lambda r: softmax_cross_entropy_(work_scores[r], targets[r],
                                                             weights[r]), 600))
    size = 2_609_644  # the word LSTM's parameters at H = 512
    w, dw = rng.standard_normal(size, dtype=np.float32), rng.standard_normal(size, np.float32)
    moments = np.zeros((2, size), np.float32)

    def adam_rows(r):
        adam(w[r], dw[r], {"learning_rate": 1e-9, "m": moments[0, r], "v": moments[1, r]})

    out["Adam, 2.6 M parameters"] = (lambda: None, lambda split: split(adam_rows, size))
    return out


def adam_after_a_step(repeats: int) -> tuple[float, float]:
    """Adam's time (us) right after a word-LSTM loss call, on one thread and split."""
    tok = bench.TOKENIZATIONS[0]
    rng = np.random.default_rng(0)
    features = bench.make_features(50, bench.INPUT_DIM, rng)
    captions = bench.make_captions(50, tok.steps, tok.vocab_size, rng)
    model, _, _ = bench.build_models(tok, "lstm", bench.Settings(run_torch=False,
                                                                 run_seed=False), seed=0)
    flat = model.params.flat
    moments = np.zeros((2, flat.size), flat.dtype)
    times: dict[str, list[float]] = {"one": [], "split": []}
    for _ in range(repeats):
        for name, split in (("one", whole), ("split", halves)):
            _, grads = model.loss(features, captions)
            start = time.perf_counter()
            split(lambda r: adam(flat[r], grads.flat[r], {"learning_rate": 1e-9,
                                                          "m": moments[0, r],
                                                          "v": moments[1, r]}), flat.size)
            times[name].append(time.perf_counter() - start)
    return tuple(1e6 * statistics.median(times[k]) for k in ("one", "split"))


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", action="store_true", help="load one core meanwhile")
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args(argv)
    info = machine_info()
    print(f"- {info['date']}; CPU {info['cpu_model']}, {info['cores_usable']} usable cores; "
          f"NumPy {np.__version__}; BLAS threads 2")
    stop = multiprocessing.Event()
    spinner = None
    if args.busy:
        spinner = multiprocessing.Process(target=_spin, args=(stop,), daemon=True)
        spinner.start()
        print("- another process spins on one core during the measurement (--busy)")
    print("\n| work | one thread us | split in two us | split / one |\n|---|--:|--:|--:|")
    try:
        with limit_blas_threads(2):
            for label, (reset, work) in pieces(np.random.default_rng(0)).items():
                one = median_us(lambda: (reset(), work(whole)), args.repeats)
                two = median_us(lambda: (reset(), work(halves)), args.repeats)
                print(f"| {label} | {one:.1f} | {two:.1f} | {two / one:.2f} |", flush=True)
            one, two = adam_after_a_step(max(10, args.repeats // 5))
            print(f"| Adam right after a word-LSTM loss call | {one:.1f} | {two:.1f} "
                  f"| {two / one:.2f} |")
    finally:
        stop.set()
        if spinner is not None:
            spinner.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
