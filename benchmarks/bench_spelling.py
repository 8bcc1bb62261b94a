"""Fitting and scoring the open-vocabulary speller (``capx.metrics.spelling.CharNgramSpeller``),
which every run fits on its training captions and every evaluation asks for unknown words.

Run from the repository root::

    python -m benchmarks.bench_spelling            # 5,000 captions of 7,000 distinct words
    python -m benchmarks.bench_spelling --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.machine import check_busy, machine_info
from capx.metrics.spelling import CharNgramSpeller


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    words = [f"w{i % 7000}x{i % 13}" for i in range(50_000)]
    captions = [" ".join(words[i:i + 10]) for i in range(0, len(words), 10)]
    unknown = [f"q{i}zz" for i in range(3000)]
    info = machine_info()
    print(f"- {info['date']}; CPU {info['cpu_model']}, {info['cores_usable']} usable cores")
    print(f"- busy check before: {check_busy().describe()}\n")
    fits, scores = [], []
    for _ in range(args.repeats):  # a fresh speller each time: scores are cached once computed
        started = time.perf_counter()
        speller = CharNgramSpeller().fit(captions)
        fitted = time.perf_counter()
        for word in unknown:
            speller.nll(word)
        fits.append(fitted - started)
        scores.append(time.perf_counter() - fitted)
    print(f"fit on {len(captions):,} captions: {1000 * statistics.median(fits):.0f} ms; "
          f"{len(unknown):,} unknown words scored: {1000 * statistics.median(scores):.0f} ms "
          f"(medians of {args.repeats})")


if __name__ == "__main__":
    main()
