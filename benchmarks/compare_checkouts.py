"""Did a change make anything slower? Time two checkouts of capx, alternating processes.

Run from the repository root, with an older checkout beside it::

    git worktree add ../capx-before <commit>
    python -m benchmarks.compare_checkouts ../capx-before            # this checkout is "after"
    python -m benchmarks.compare_checkouts ../capx-before --rounds 6 --batch 25 128

Each round runs one fresh process per checkout, each importing *its* checkout's ``capx`` and
``benchmarks.bench_captioner``, and timing the training step (loss, gradients, Adam) for every
tokenization x cell x N and greedy sampling of 50 images, on the same synthetic batches.
Alternating the checkouts round by round (before-after, after-before, ...) spreads a shared
machine's slow minutes over both columns; the table gives each side's median and range over the
rounds, and their ratio. Only Python code comes from each checkout: an editable install's
``capx`` package data (``conf/``) resolves to the installed checkout for both, which these
timings do not read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def child(checkout: str, batches: list[int], repeats: int) -> dict[str, float]:
    """Medians (ms) of every configuration, timed with ``checkout``'s code (run in a child)."""
    sys.path.insert(0, checkout)
    import numpy as np

    from benchmarks import bench_captioner as bench
    from benchmarks.machine import limit_blas_threads, median_ms, time_calls

    settings = bench.Settings(run_torch=False, run_seed=False)
    out: dict[str, float] = {}
    with limit_blas_threads(2):
        for tok in bench.TOKENIZATIONS:
            for cell in bench.CELLS:
                rng = np.random.default_rng([0, 1, tok.steps, bench.GATES[cell]])
                features = bench.make_features(bench.SAMPLE_IMAGES, settings.input_dim, rng)
                model = bench.build_models(tok, cell, settings, seed=1)[0]
                out[f"{tok.name} {cell}, greedy sampling"] = median_ms(time_calls(
                    lambda: model.sample(features, tok.sample_length), repeats, 2))
                for n in batches:
                    rng = np.random.default_rng([0, n, tok.steps, bench.GATES[cell]])
                    features = bench.make_features(n, settings.input_dim, rng)
                    captions = bench.make_captions(n, tok.steps, tok.vocab_size, rng)
                    model = bench.build_models(tok, cell, settings, seed=n)[0]
                    out[f"{tok.name} {cell}, N={n}"] = median_ms(time_calls(
                        bench.capx_trainer(model, features, captions), repeats, 2))
    return out


def run_child(checkout: Path, batches: list[int], repeats: int) -> dict[str, float]:
    # this file runs as a script, so that the child imports nothing but the checkout's code
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(checkout),
               "--batch", *map(str, batches), "--repeats", str(repeats)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"timing {checkout} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(before: list[dict[str, float]], after: list[dict[str, float]]) -> str:
    lines = ["| configuration | before ms: median (range) | after ms: median (range) "
             "| after / before |", "|---|--:|--:|--:|"]
    for key in before[0]:
        b, a = [r[key] for r in before], [r[key] for r in after]
        lines.append(f"| {key} | {statistics.median(b):.1f} ({min(b):.1f}-{max(b):.1f}) "
                     f"| {statistics.median(a):.1f} ({min(a):.1f}-{max(a):.1f}) "
                     f"| {statistics.median(a) / statistics.median(b):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", nargs="?", help="the older checkout (a folder)")
    parser.add_argument("after", nargs="?", default=str(HERE), help="default: this checkout")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch", type=int, nargs="+", default=[25, 50, 128])
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.batch, args.repeats)))
        return
    if not args.before:
        parser.error("give the older checkout's folder")
    before_dir, after_dir = Path(args.before).resolve(), Path(args.after).resolve()
    for folder in (before_dir, after_dir):
        if not (folder / "capx").is_dir() or not (folder / "benchmarks").is_dir():
            raise SystemExit(f"{folder} is not a capx checkout (no capx/ and benchmarks/)")
    before, after = [], []
    for k in range(args.rounds):  # before-after, then after-before: no side always goes first
        order = [(before_dir, before), (after_dir, after)]
        for folder, results in order if k % 2 == 0 else order[::-1]:
            results.append(run_child(folder, args.batch, args.repeats))
        print(f"round {k + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    print(f"- before: {before_dir}\n- after: {after_dir}\n- {args.rounds} rounds, "
          f"{args.repeats} timed steps each, BLAS threads 2\n")
    print(table(before, after))


if __name__ == "__main__":
    main()
