"""Training-step and sampling speed of capx beside PyTorch (CPU) and a CS231n-style NumPy "seed".

Run from the repository root::

    python -m benchmarks.bench_captioner            # the full grid (several minutes)
    python -m benchmarks.bench_captioner --quick    # N=50 only, fewer repeats (a smoke run)
    python -m benchmarks.bench_captioner --json results.json

For each tokenization (word: T=16 steps, V=1004; char: T=80, V=60), cell (rnn, lstm) and batch
size N, the three implementations train the same model (D=512, W=256, H=512, same initial
weights, same padded batch) and greedy-sample 50 images. The output is Markdown; see
benchmarks/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from benchmarks import gemm_floor, seed_baseline
from benchmarks.machine import (
    check_busy,
    gemm_peak_gflops,
    limit_blas_threads,
    machine_info,
    median_ms,
    time_calls,
)
from capx.captioner import CaptioningRNN
from capx.optim import adam
from capx.runtime import reuse_freed_memory

INPUT_DIM, WORDVEC_DIM, HIDDEN_DIM = 512, 256, 512
PAD_FRACTION = 0.25
SAMPLE_IMAGES = 50
SPECIALS = ("<NULL>", "<START>", "<END>", "<UNK>")
GATES = {"rnn": 1, "lstm": 4}


@dataclass(frozen=True)
class Tokenization:
    """Sequence length and vocabulary of one tokenizer, and how long a sampled caption may be."""

    name: str
    steps: int  # T: target positions per caption
    vocab_size: int  # V
    sample_length: int


TOKENIZATIONS = (Tokenization("word", 16, 1004, 30), Tokenization("char", 80, 60, 100))
CELLS = ("rnn", "lstm")
BATCH_SIZES = (25, 50, 128)
FLOP_FORMULA = (
    "forward = 2*N*D*H + 2*P*(W*G*H + H*G*H + H*V), P = real (non-<NULL>) target tokens, "
    "G = 1 (rnn) or 4 (lstm); training step = 3 x forward (backward ~ 2 x forward); "
    "dense matrix products only"
)


@dataclass
class Settings:
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    repeats: int = 20  # capx and torch
    rounds: int = 3  # capx, its floor and torch take turns, repeats / rounds timings each
    seed_repeats: int = 5  # the seed is 5-20x slower; a median of 5 is plenty for that gap
    sample_repeats: int = 10
    warmup: int = 2
    threads: int | None = 2
    run_torch: bool = True
    run_seed: bool = True
    input_dim: int = INPUT_DIM
    wordvec_dim: int = WORDVEC_DIM
    hidden_dim: int = HIDDEN_DIM
    tokenizations: tuple[Tokenization, ...] = TOKENIZATIONS
    cells: tuple[str, ...] = CELLS
    sample_images: int = SAMPLE_IMAGES
    data_seed: int = 0


@dataclass
class TrainRow:
    tokens: str
    cell: str
    batch: int
    steps: int
    vocab: int
    real_tokens: int
    gflop: float
    capx_ms: float
    torch_ms: float | None = None
    seed_ms: float | None = None
    capx_gflops: float = 0.0
    peak_fraction: float | None = None
    dense_ms: float = 0.0  # capx with packing off: every step over all N captions
    dense_gflop: float = 0.0  # the same formula with P = N * T
    dense_peak_fraction: float | None = None
    floor_ms: float = 0.0  # the step's matrix products timed alone (benchmarks/gemm_floor.py)
    losses: dict[str, float] = field(default_factory=dict)

    def ratio(self, other_ms: float | None) -> float | None:
        return None if other_ms is None else self.capx_ms / other_ms


@dataclass
class SampleRow:
    tokens: str
    cell: str
    images: int
    max_length: int
    capx_ms: float
    torch_ms: float | None = None
    seed_ms: float | None = None
    floor_ms: float = 0.0


# -- synthetic data -----------------------------------------------------------------------------

def make_vocab(vocab_size: int) -> dict[str, int]:
    """The four CS231n special tokens followed by placeholder tokens, ``vocab_size`` in all."""
    if vocab_size <= len(SPECIALS):
        raise ValueError(f"vocab_size must exceed {len(SPECIALS)}, got {vocab_size}")
    words = list(SPECIALS) + [f"w{i}" for i in range(len(SPECIALS), vocab_size)]
    return {w: i for i, w in enumerate(words)}


def make_captions(n: int, steps: int, vocab_size: int, rng: np.random.Generator,
                  pad_fraction: float = PAD_FRACTION) -> np.ndarray:
    """(n, steps + 1) int32 captions: ``<START>``, tokens, ``<END>``, then ``<NULL>`` padding.

    Caption lengths (targets including ``<END>``) are uniform on [steps*(1-2f), steps], so on
    average a fraction ``f`` of the target positions is padding, as in the COCO captions.
    """
    if not 0.0 <= pad_fraction < 0.5:
        raise ValueError(f"pad_fraction must be in [0, 0.5), got {pad_fraction}")
    shortest = max(1, int(round(steps * (1 - 2 * pad_fraction))))
    lengths = rng.integers(shortest, steps + 1, size=n)
    captions = np.zeros((n, steps + 1), dtype=np.int32)
    captions[:, 0] = SPECIALS.index("<START>")
    body = rng.integers(len(SPECIALS), vocab_size, size=(n, steps), dtype=np.int32)
    positions = np.arange(1, steps + 1)
    captions[:, 1:] = np.where(positions < lengths[:, None] + 1, body, 0)
    captions[np.arange(n), lengths] = SPECIALS.index("<END>")
    return captions


def make_features(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((n, dim)).astype(np.float32)


def training_gflop(n: int, real_tokens: int, cell: str, vocab_size: int, input_dim: int,
                   wordvec_dim: int, hidden_dim: int) -> float:
    """Dense matrix-product GFLOP of one training step (see :data:`FLOP_FORMULA`)."""
    g, h = GATES[cell], hidden_dim
    forward = 2 * n * input_dim * h + 2 * real_tokens * (wordvec_dim * g * h + h * g * h + h * vocab_size)
    return 3 * forward / 1e9


# -- the three implementations ------------------------------------------------------------------

def _torch_baseline():
    """The PyTorch module, imported on first use: importing torch takes a second and hundreds of
    MB, which :mod:`benchmarks.memory_full_scale` (reusing the data helpers here) must not count."""
    from benchmarks import torch_baseline

    return torch_baseline


def capx_trainer(model: CaptioningRNN, features: np.ndarray,
                 captions: np.ndarray) -> Callable[[], float]:
    """A closure doing what ``CaptioningSolver._step`` does after drawing the minibatch.

    Like the solver, it first applies :func:`capx.runtime.reuse_freed_memory` (process-wide, so
    the PyTorch and seed columns of the same run get it too).
    """
    reuse_freed_memory()
    config: dict[str, Any] = {}

    def step() -> float:
        loss, grads = model.loss(features, captions)
        flat = model.params.flat
        next_w, updated = adam(flat, grads.flat, config)
        config.update(updated)
        if next_w is not flat:
            flat[...] = next_w
        return loss

    return step


def seed_trainer(model: seed_baseline.SeedCaptioningRNN, features: np.ndarray,
                 captions: np.ndarray) -> Callable[[], float]:
    configs: dict[str, dict[str, Any]] = {}
    features64 = features.astype(np.float64)
    return lambda: seed_baseline.train_step(model, configs, features64, captions)


def build_models(tok: Tokenization, cell: str, settings: Settings, seed: int):
    """capx, PyTorch (or None) and seed models holding the same initial weights."""
    vocab = make_vocab(tok.vocab_size)
    capx_model = CaptioningRNN(vocab, input_dim=settings.input_dim,
                               wordvec_dim=settings.wordvec_dim, hidden_dim=settings.hidden_dim,
                               cell_type=cell, dtype=np.float32, seed=seed)
    params = {k: v.copy() for k, v in capx_model.params.items()}
    torch_model = None
    if settings.run_torch and _torch_baseline().torch_available():
        torch_model = _torch_baseline().build_torch_model(params, cell, vocab, threads=settings.threads)
    seed_model = seed_baseline.SeedCaptioningRNN(vocab, params, cell) if settings.run_seed else None
    return capx_model, torch_model, seed_model


def in_turns(calls: dict[str, Callable[[], Any]], gemms: list, settings: Settings
             ) -> dict[str, float]:
    """Median ms of each call and of the GEMM floor, measured in ``settings.rounds`` turns of
    ``ceil(repeats / rounds)`` timings each.

    On a shared machine the speed drifts from minute to minute; taking turns (capx, its floor,
    torch, capx, ...) lets every column see the same minutes, so their ratios hold even when
    the absolute figures move. After the first turn, one untimed call re-warms the caches.
    """
    rounds = max(1, settings.rounds)
    per_turn = -(-settings.repeats // rounds)  # at least ``repeats`` timings in all
    times: dict[str, list[float]] = {name: [] for name in calls}
    floors = []
    for turn in range(rounds):
        warmup = settings.warmup if turn == 0 else 1
        for name, call in calls.items():
            times[name] += time_calls(call, per_turn, warmup)
            if name == "capx":
                floors.append(gemm_floor.floor_ms(gemms, repeats=per_turn))
    medians = {name: median_ms(t) for name, t in times.items()}
    medians["floor"] = statistics.median(floors)
    return medians


def measure_training(tok: Tokenization, cell: str, n: int, settings: Settings,
                     peak_gflops: float) -> TrainRow:
    rng = np.random.default_rng([settings.data_seed, n, tok.steps, GATES[cell]])
    features = make_features(n, settings.input_dim, rng)
    captions = make_captions(n, tok.steps, tok.vocab_size, rng)
    real_tokens = int((captions[:, 1:] != 0).sum())
    capx_model, torch_model, seed_model = build_models(tok, cell, settings, seed=n)
    row = TrainRow(tok.name, cell, n, tok.steps, tok.vocab_size, real_tokens,
                   training_gflop(n, real_tokens, cell, tok.vocab_size, settings.input_dim,
                                  settings.wordvec_dim, settings.hidden_dim), capx_ms=0.0)

    row.losses["capx"] = capx_model.loss(features, captions)[0]
    trainers = {"capx": capx_trainer(capx_model, features, captions)}
    if torch_model is not None:
        trainer = _torch_baseline().TorchTrainer(torch_model, features, captions)
        row.losses["torch"] = float(torch_model.loss(trainer.features, trainer.captions).detach())
        trainers["torch"] = trainer.step
    times = in_turns(trainers, gemm_floor.training_gemms(capx_model, captions), settings)
    row.capx_ms, row.floor_ms = times["capx"], times["floor"]
    row.torch_ms = times.get("torch")
    if seed_model is not None:
        row.losses["seed"] = seed_model.loss(features.astype(np.float64), captions)[0]
        row.seed_ms = median_ms(time_calls(seed_trainer(seed_model, features, captions),
                                           settings.seed_repeats, min(settings.warmup, 1)))
    row.capx_gflops = row.gflop / (row.capx_ms / 1000.0)
    row.peak_fraction = row.capx_gflops / peak_gflops if peak_gflops > 0 else None
    dense_model, _, _ = build_models(tok, cell, dataclasses.replace(
        settings, run_torch=False, run_seed=False), seed=n)
    dense_model.pack = False
    row.dense_ms = median_ms(time_calls(capx_trainer(dense_model, features, captions),
                                        settings.repeats, settings.warmup))
    row.dense_gflop = training_gflop(n, n * tok.steps, cell, tok.vocab_size, settings.input_dim,
                                     settings.wordvec_dim, settings.hidden_dim)
    if peak_gflops > 0:
        row.dense_peak_fraction = row.dense_gflop / (row.dense_ms / 1000.0) / peak_gflops
    return row


def measure_sampling(tok: Tokenization, cell: str, settings: Settings) -> SampleRow:
    rng = np.random.default_rng([settings.data_seed, 1, tok.steps, GATES[cell]])
    features = make_features(settings.sample_images, settings.input_dim, rng)
    capx_model, torch_model, seed_model = build_models(tok, cell, settings, seed=1)
    length, reps = tok.sample_length, settings.sample_repeats
    samplers = {"capx": lambda: capx_model.sample(features, length)}
    if torch_model is not None:
        trainer = _torch_baseline().TorchTrainer(torch_model, features, np.zeros((1, 2), np.int64))
        samplers["torch"] = lambda: trainer.sample(features, length)
    times = in_turns(samplers, gemm_floor.sampling_gemms(capx_model, features, length),
                     dataclasses.replace(settings, repeats=reps))
    row = SampleRow(tok.name, cell, settings.sample_images, length, times["capx"],
                    torch_ms=times.get("torch"), floor_ms=times["floor"])
    if seed_model is not None:
        features64 = features.astype(np.float64)
        row.seed_ms = median_ms(time_calls(lambda: seed_model.sample(features64, length), reps))
    return row


# -- report -------------------------------------------------------------------------------------

def _over(ms: float, floor_ms: float) -> float | None:
    return ms / floor_ms if floor_ms > 0 else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def train_table(rows: list[TrainRow]) -> str:
    lines = [
        "| tokens | cell | N | T | V | GFLOP/step | capx ms | floor ms | step / floor "
        "| torch ms | seed ms | capx/torch | capx/seed | capx GFLOP/s | % of peak | dense ms "
        "| dense % of peak |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        pct = None if r.peak_fraction is None else 100 * r.peak_fraction
        dense_pct = None if r.dense_peak_fraction is None else 100 * r.dense_peak_fraction
        lines.append(
            f"| {r.tokens} | {r.cell} | {r.batch} | {r.steps} | {r.vocab} | {r.gflop:.3f} "
            f"| {_fmt(r.capx_ms)} | {_fmt(r.floor_ms)} | {_fmt(_over(r.capx_ms, r.floor_ms), 2)} "
            f"| {_fmt(r.torch_ms)} | {_fmt(r.seed_ms)} | {_fmt(r.ratio(r.torch_ms), 2)} | {_fmt(r.ratio(r.seed_ms), 3)} "
            f"| {r.capx_gflops:.1f} | {_fmt(pct)} | {_fmt(r.dense_ms)} | {_fmt(dense_pct)} |")
    return "\n".join(lines)


def sample_table(rows: list[SampleRow]) -> str:
    lines = [
        "| tokens | cell | images | max length | capx ms | floor ms | capx / floor | torch ms "
        "| seed ms | capx/torch |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        ratio = None if r.torch_ms is None else r.capx_ms / r.torch_ms
        lines.append(f"| {r.tokens} | {r.cell} | {r.images} | {r.max_length} | {_fmt(r.capx_ms)} "
                     f"| {_fmt(r.floor_ms)} | {_fmt(_over(r.capx_ms, r.floor_ms), 2)} "
                     f"| {_fmt(r.torch_ms)} | {_fmt(r.seed_ms)} | {_fmt(ratio, 2)} |")
    return "\n".join(lines)


def header(info: dict[str, Any], settings: Settings, peak: float, torch_note: str) -> str:
    blas = "; ".join(
        f"{b.get('internal_api')} {b.get('version')} ({b.get('num_threads')} threads"
        + (f", {b['architecture']}" if b.get("architecture") else "") + ")"
        for b in info["blas"])
    env = ", ".join(f"{k}={v if v is not None else '(unset)'}" for k, v in info["env"].items())
    return "\n".join([
        "## capx speed benchmark",
        "",
        f"- date: {info['date']}",
        f"- machine: {info['cpu_model']}, {info['cores_logical']} logical cores "
        f"({info['cores_usable']} usable), Python {info['python']}",
        f"- NumPy {info['numpy']}, BLAS: {blas}",
        f"- environment: {env}",
        f"- threads: {settings.threads if settings.threads else 'library default'} "
        "(NumPy BLAS and torch)",
        f"- {torch_note}",
        f"- model: D={settings.input_dim}, W={settings.wordvec_dim}, H={settings.hidden_dim}, "
        f"float32 (seed: float64); ~{int(PAD_FRACTION * 100)}% of target positions are <NULL>",
        f"- float32 GEMM peak (np.matmul 1024x1024, median): {peak:.1f} GFLOP/s",
        f"- GFLOP formula: {FLOP_FORMULA}",
    ])


def torch_description(settings: Settings) -> str:
    if not settings.run_torch:
        return "torch: skipped (--no-torch)"
    if not _torch_baseline().torch_available():
        return f"torch: not available ({_torch_baseline().TORCH_MISSING}); its columns are n/a"
    import torch

    return f"torch {torch.__version__} on the CPU, {torch.get_num_threads()} threads"


# -- command line -------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="N=50 only and fewer repeats: a smoke run of a minute or so")
    parser.add_argument("--json", metavar="PATH", help="also write all figures as JSON here")
    parser.add_argument("--strict", action="store_true",
                        help="refuse to report figures when another process is using the CPU")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for NumPy's BLAS and torch (default 2; 0 = library default)")
    parser.add_argument("--repeats", type=int,
                        help="timed training steps per config for capx and torch (default 20)")
    parser.add_argument("--rounds", type=int,
                        help="turns that capx, its floor and torch take (default 3)")
    parser.add_argument("--seed-repeats", type=int,
                        help="timed training steps per config for the seed baseline (default 5)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    parser.add_argument("--no-seed", action="store_true", help="skip the seed-baseline column")
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    settings = Settings(threads=args.threads or None, run_torch=not args.no_torch,
                        run_seed=not args.no_seed)
    if args.quick:
        settings.batch_sizes, settings.repeats, settings.seed_repeats = (50,), 6, 2
        settings.rounds = 2
        settings.sample_repeats, settings.warmup = 3, 1
    if args.repeats is not None:
        if args.repeats < 1:
            raise SystemExit(f"--repeats must be at least 1, got {args.repeats}")
        settings.repeats = args.repeats
    if args.rounds is not None:
        if args.rounds < 1:
            raise SystemExit(f"--rounds must be at least 1, got {args.rounds}")
        settings.rounds = args.rounds
    if args.seed_repeats is not None:
        if args.seed_repeats < 1:
            raise SystemExit(f"--seed-repeats must be at least 1, got {args.seed_repeats}")
        settings.seed_repeats = args.seed_repeats
    return settings


def run_benchmark(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure everything; returns a dict with the figures (what ``--json`` writes)."""
    with limit_blas_threads(settings.threads):
        peak = gemm_peak_gflops()
        train_rows, sample_rows = [], []
        for tok in settings.tokenizations:
            for cell in settings.cells:
                sample = measure_sampling(tok, cell, settings)
                sample_rows.append(sample)
                log(f"{tok.name} {cell} sampling: capx {_fmt(sample.capx_ms)} ms, torch "
                    f"{_fmt(sample.torch_ms)} ms, seed {_fmt(sample.seed_ms)} ms")
                for n in settings.batch_sizes:
                    row = measure_training(tok, cell, n, settings, peak)
                    train_rows.append(row)
                    log(f"{tok.name} {cell} N={n} training step: capx {_fmt(row.capx_ms)} ms, "
                        f"torch {_fmt(row.torch_ms)} ms, seed {_fmt(row.seed_ms)} ms")
    return {"gemm_peak_gflops": peak, "train": train_rows, "sample": sample_rows}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from_args(args)
    busy_before = check_busy()
    if busy_before.busy and args.strict:
        print(f"refusing to measure (--strict): {busy_before.describe()}", file=sys.stderr)
        return 2
    info = machine_info()
    progress = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    results = run_benchmark(settings, progress)
    busy_after = check_busy()
    torch_note = torch_description(settings)

    print(header(info, settings, results["gemm_peak_gflops"], torch_note))
    print(f"- busy check before: {busy_before.describe()}")
    print(f"- busy check after: {busy_after.describe()}")
    unreliable = busy_before.busy or busy_after.busy
    if unreliable:
        print("\n**WARNING: machine busy: another process used the CPU during the run; "
              "figures unreliable.**")
    print("\n### Training step (median ms per step: loss + gradients + Adam)\n")
    print(train_table(results["train"]))
    print("\n### Greedy sampling (median ms for "
          f"{settings.sample_images} images)\n")
    print(sample_table(results["sample"]))
    print("\nInitial losses (same weights, same batch) agree across implementations: "
          f"max relative difference {max_loss_gap(results['train']):.1e}")
    if args.json:
        payload = {
            "machine": info, "settings": _jsonable(asdict(settings)), "torch": torch_note,
            "busy_before": busy_before.as_dict(), "busy_after": busy_after.as_dict(),
            "unreliable": unreliable, "flop_formula": FLOP_FORMULA,
            "gemm_peak_gflops": results["gemm_peak_gflops"],
            "train": [asdict(r) for r in results["train"]],
            "sample": [asdict(r) for r in results["sample"]],
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
    if unreliable and args.strict:
        print("machine became busy during the run (--strict): figures unreliable", file=sys.stderr)
        return 3
    return 0


def max_loss_gap(rows: list[TrainRow]) -> float:
    """Largest relative difference between any implementation's initial loss and capx's."""
    gaps = [abs(v - r.losses["capx"]) / abs(r.losses["capx"])
            for r in rows for k, v in r.losses.items() if k != "capx"]
    return max(gaps, default=0.0)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
