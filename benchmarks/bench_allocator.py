"""What glibc's trim threshold costs a training step: 128 KB (glibc's fixed default) vs 1 GB.

Run from the repository root::

    python -m benchmarks.bench_allocator              # word and char x rnn and lstm, N=50
    python -m benchmarks.bench_allocator --rounds 5

:func:`capx.runtime.reuse_freed_memory` raises glibc's mmap threshold to 32 MB, which also ends
glibc's own adjustment of the trim threshold; left at 128 KB, the free top of the heap goes back
to the kernel after every step and its pages are faulted in again the next. Both settings are
timed in one process, alternating rounds of steps (``mallopt`` can be changed at any time), so
the two columns see the same machine minutes.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics

import numpy as np

from benchmarks.bench_captioner import (
    CELLS,
    GATES,
    TOKENIZATIONS,
    Settings,
    build_models,
    capx_trainer,
    make_captions,
    make_features,
)
from benchmarks.machine import check_busy, limit_blas_threads, machine_info, time_calls
from capx import runtime

GLIBC_DEFAULT_TRIM = 128 * 1024


def _set_trim(libc, size: int) -> None:
    if not libc.mallopt(runtime.M_TRIM_THRESHOLD, size):
        raise SystemExit("mallopt(M_TRIM_THRESHOLD) refused: not glibc?")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per setting")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round")
    args = parser.parse_args(argv)
    if not runtime.reuse_freed_memory():
        raise SystemExit("this benchmark needs glibc (capx.runtime.reuse_freed_memory)")
    libc = ctypes.CDLL("libc.so.6")
    settings = Settings(run_torch=False, run_seed=False)
    sizes = {"trim 128 KB": GLIBC_DEFAULT_TRIM, "trim 1 GB": runtime.TRIM_THRESHOLD_BYTES}
    info = machine_info()
    print(f"- {info['date']}; CPU {info['cpu_model']}, {info['cores_usable']} usable cores; "
          f"NumPy {info['numpy']}; BLAS threads 2; N={args.batch}")
    print(f"- busy check before: {check_busy().describe()}\n")
    print("| tokens | cell | trim 128 KB ms | trim 1 GB ms | 1 GB / 128 KB |")
    print("|---|---|--:|--:|--:|")
    with limit_blas_threads(2):
        for tok in TOKENIZATIONS:
            for cell in CELLS:
                rng = np.random.default_rng([settings.data_seed, args.batch, tok.steps,
                                             GATES[cell]])
                features = make_features(args.batch, settings.input_dim, rng)
                captions = make_captions(args.batch, tok.steps, tok.vocab_size, rng)
                step = capx_trainer(build_models(tok, cell, settings, seed=args.batch)[0],
                                    features, captions)
                times: dict[str, list[float]] = {name: [] for name in sizes}
                for _ in range(args.rounds):
                    for name, size in sizes.items():
                        _set_trim(libc, size)
                        times[name] += time_calls(step, args.steps, warmup=2)
                small, large = (1000 * statistics.median(times[n]) for n in sizes)
                print(f"| {tok.name} | {cell} | {small:.1f} | {large:.1f} | {large / small:.2f} |")
    _set_trim(libc, runtime.TRIM_THRESHOLD_BYTES)
    print(f"\n- busy check after: {check_busy().describe()}")


if __name__ == "__main__":
    main()
