"""Where a training step's time goes: every phase of one step timed in place, beside its floor.

Run from the repository root::

    python -m benchmarks.profile_step                      # word and char x rnn and lstm, N=50
    python -m benchmarks.profile_step --batch 25 128 --repeats 30

:func:`profiled_step` is ``CaptioningRNN.loss`` followed by Adam (what ``bench_captioner``
times), written out with a lap of a clock after each piece, so that each piece's time is
measured *inside* the step, with the caches and BLAS threads as the step leaves them. The
products are named as in :mod:`benchmarks.gemm_floor`, which times each one alone; their
ratio ("in step / alone") is what leaving the product's inputs out of cache, or waking BLAS's
threads, costs. Everything else is grouped: element-wise work, the softmax, gathers and
scatters, Adam, bookkeeping. ``tests/test_benchmarks.py`` checks that the profiled step gives
``model.loss``'s loss and gradients bit for bit, which catches a mirror that computes
something else; a change to the cells or the captioner that keeps their results (most speed
changes) must be copied here by hand.

Profiled and plain steps alternate, so the table's last lines compare the profile's total with
the plain step measured in the same minutes (the laps cost well under 1%).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from typing import Any

import numpy as np

from benchmarks import gemm_floor
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
from benchmarks.machine import check_busy, limit_blas_threads, machine_info
from capx.captioner import CaptioningRNN, store_cell_grads
from capx.cells.base import CarriedGradient
from capx.cells.lstm import lstm_activate_for_backward_
from capx.ops import scatter_add_rows, softmax_cross_entropy_
from capx.optim import adam
from capx.runtime import reuse_freed_memory

#: the groups of the non-GEMM phases, in the order the table lists them
ELEMENTWISE, SOFTMAX, MEMORY, ADAM, BOOKKEEPING = (
    "element-wise", "softmax + cross-entropy", "gathers, scatters, copies", "Adam", "bookkeeping")
GEMM = "GEMM"


class Clock:
    """Attributes the wall time since the previous lap to a phase: ``clock.lap(name, group)``."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.groups: dict[str, str] = {}
        self._last = time.perf_counter()

    def restart(self) -> None:
        self._last = time.perf_counter()

    def lap(self, phase: str, group: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self._last
        self.groups[phase] = group
        self._last = now


def _rnn_forward(xw, h0, Wh, packing, clock):
    """:func:`capx.cells.rnn.rnn_packed_forward` with laps."""
    h, dtanh, prev, scratch = xw, np.empty_like(xw), h0, np.empty_like(h0)
    for t in range(packing.num_steps):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        a, d = h[start : start + n], dtanh[start : start + n]
        np.matmul(prev[:n], Wh, out=scratch[:n])
        clock.lap("h[t-1] @ Wh", GEMM)
        a += scratch[:n]
        np.tanh(a, out=a)
        np.multiply(a, a, out=d)
        np.subtract(1.0, d, out=d)
        prev = a
        clock.lap("forward: tanh and 1 - h^2", ELEMENTWISE)
    return h, (h, dtanh, h0, Wh, packing)


def _rnn_backward(dh, cache, clock):
    """:func:`capx.cells.rnn.rnn_packed_backward` with laps."""
    h, dtanh, h0, Wh, packing = cache
    carried = CarriedGradient(h0)
    clock.lap("backward: the loop", ELEMENTWISE)
    for t in range(packing.num_steps - 1, -1, -1):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        da = dh[start : start + n]
        carried.add_to(da)
        da *= dtanh[start : start + n]
        clock.lap("backward: the loop", ELEMENTWISE)
        carried.propagate(da, Wh)
        clock.lap("Wh @ da.T", GEMM)
    h_prev = packing.previous(h0, h)
    clock.lap("h_prev (packing.previous)", MEMORY)
    dWh = h_prev.T @ dh
    clock.lap("dWh = h_prev.T @ da", GEMM)
    return dh, carried.dh0(), dWh


def _lstm_forward(xw, h0, Wh, packing, clock):
    """:func:`capx.cells.lstm.lstm_packed_forward` with laps."""
    rows, hidden = xw.shape[0], h0.shape[1]
    factors = xw
    h, dc_dh, forget = (np.empty((rows, hidden), dtype=xw.dtype) for _ in range(3))
    cell_states = (np.empty_like(h0), np.empty_like(h0))
    prev_h, prev_c = h0, np.zeros_like(h0)
    scratch = np.empty((h0.shape[0], 4 * hidden), dtype=xw.dtype)
    clock.lap("forward: gate math and backward factors", ELEMENTWISE)
    for t in range(packing.num_steps):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        sl = slice(start, start + n)
        a, c = factors[sl], cell_states[t % 2][:n]
        np.matmul(prev_h[:n], Wh, out=scratch[:n])
        clock.lap("h[t-1] @ Wh", GEMM)
        a += scratch[:n]
        lstm_activate_for_backward_(a, prev_c[:n], c, h[sl], dc_dh[sl], forget[sl])
        prev_h, prev_c = h[sl], c
        clock.lap("forward: gate math and backward factors", ELEMENTWISE)
    return h, (factors, dc_dh, forget, h, h0, Wh, packing)


def _lstm_backward(dh, cache, clock):
    """:func:`capx.cells.lstm.lstm_packed_backward` with laps."""
    factors, dc_dh, forget, h, h0, Wh, packing = cache
    hidden = h0.shape[1]
    i, f, o, g = (factors[:, k * hidden : (k + 1) * hidden] for k in range(4))
    carried = CarriedGradient(h0)
    dnext_c, scratch = np.zeros_like(h0), np.empty_like(h0)
    clock.lap("backward: gate math in the loop", ELEMENTWISE)
    for t in range(packing.num_steps - 1, -1, -1):
        start, n = packing.offsets[t], packing.batch_sizes[t]
        sl = slice(start, start + n)
        dh_t = dh[sl]
        carried.add_to(dh_t)
        dc = dnext_c[:n]
        np.multiply(dh_t, dc_dh[sl], out=scratch[:n])
        dc += scratch[:n]
        o[sl] *= dh_t
        i[sl] *= dc
        f[sl] *= dc
        g[sl] *= dc
        dc *= forget[sl]
        clock.lap("backward: gate math in the loop", ELEMENTWISE)
        carried.propagate(factors[sl], Wh)
        clock.lap("Wh @ da.T", GEMM)
    h_prev = packing.previous(h0, h)
    clock.lap("h_prev (packing.previous)", MEMORY)
    dWh = h_prev.T @ factors
    clock.lap("dWh = h_prev.T @ da", GEMM)
    return factors, carried.dh0(), dWh


CELL_PASSES = {"rnn": (_rnn_forward, _rnn_backward), "lstm": (_lstm_forward, _lstm_backward)}


def profiled_loss(model: CaptioningRNN, features: np.ndarray, captions: np.ndarray,
                  clock: Clock):
    """:meth:`CaptioningRNN.loss` (rnn and lstm cells) with a lap after each piece."""
    if model.cell_type not in CELL_PASSES or not model.projects_input:
        raise ValueError(f"the profile mirrors the rnn and lstm cells, not {model.cell_type!r}")
    forward, backward = CELL_PASSES[model.cell_type]
    p = model.params
    clock.restart()
    packing, ids, targets, weights, feats = model.packed_batch(features, captions)
    clock.lap("batch: packing, ids, targets", MEMORY)
    h0 = feats @ p["W_proj"]
    clock.lap("h0 = feats @ W_proj", GEMM)
    h0 = h0 + p["b_proj"]
    clock.lap("biases", ELEMENTWISE)

    fold = model._fold()
    if fold:
        tokens, rows = np.unique(ids, return_inverse=True)
        embedded = p["W_embed"][tokens]
        clock.lap("embedding gather", MEMORY)
        table = embedded @ p["Wx"]
        clock.lap("table = W_embed[tokens] @ Wx", GEMM)
        table += p["b"]
        clock.lap("biases", ELEMENTWISE)
        xw = table[rows]
        clock.lap("embedding gather", MEMORY)
    else:
        x = p["W_embed"][ids]
        clock.lap("embedding gather", MEMORY)
        xw = x @ p["Wx"]
        clock.lap("xw = x @ Wx", GEMM)
        xw += p["b"]
        clock.lap("biases", ELEMENTWISE)
    h, cache = forward(xw, h0, p["Wh"], packing, clock)
    dscores = h @ p["W_vocab"]
    clock.lap("scores = h @ W_vocab", GEMM)
    dscores += p["b_vocab"]
    clock.lap("biases", ELEMENTWISE)
    loss = softmax_cross_entropy_(dscores, targets, weights)
    clock.lap("softmax + cross-entropy", SOFTMAX)

    g = p.empty_like()
    clock.lap("gradient buffer, store_cell_grads", BOOKKEEPING)
    np.matmul(h.T, dscores, out=g["W_vocab"])
    clock.lap("dW_vocab = h.T @ dscores", GEMM)
    np.sum(dscores, axis=0, out=g["b_vocab"])
    clock.lap("bias gradients", ELEMENTWISE)
    dh = dscores @ p["W_vocab"].T
    clock.lap("dh = dscores @ W_vocab.T", GEMM)
    dxw, dh0, dWh = backward(dh, cache, clock)
    store_cell_grads(model.cell_type, model.cell_param_names, model.projects_input,
                     {"Wh": dWh}, g)
    clock.lap("gradient buffer, store_cell_grads", BOOKKEEPING)
    if fold:
        dtable = scatter_add_rows(rows, dxw, tokens.size)
        clock.lap("embedding scatter", MEMORY)
        dembedded = dtable @ p["Wx"].T
        clock.lap("dW_embed[tokens] = dtable @ Wx.T", GEMM)
        g["W_embed"][...] = 0
        g["W_embed"][tokens] = dembedded
        clock.lap("embedding scatter", MEMORY)
        np.matmul(embedded.T, dtable, out=g["Wx"])
        clock.lap("dWx = W_embed[tokens].T @ dtable", GEMM)
        np.sum(dtable, axis=0, out=g["b"])
        clock.lap("bias gradients", ELEMENTWISE)
    else:
        np.matmul(x.T, dxw, out=g["Wx"])
        clock.lap("dWx = x.T @ dxw", GEMM)
        np.sum(dxw, axis=0, out=g["b"])
        clock.lap("bias gradients", ELEMENTWISE)
        dx = dxw @ p["Wx"].T
        clock.lap("dx = dxw @ Wx.T", GEMM)
        g["W_embed"][...] = scatter_add_rows(ids, dx, model.vocab_size)
        clock.lap("embedding scatter", MEMORY)
    np.matmul(feats.T, dh0, out=g["W_proj"])
    clock.lap("dW_proj = feats.T @ dh0", GEMM)
    np.sum(dh0, axis=0, out=g["b_proj"])
    clock.lap("bias gradients", ELEMENTWISE)
    return loss, g


def profiled_step(model: CaptioningRNN, features: np.ndarray, captions: np.ndarray,
                  adam_config: dict[str, Any], clock: Clock) -> float:
    """One training step as ``bench_captioner.capx_trainer`` runs it, with laps."""
    loss, grads = profiled_loss(model, features, captions, clock)
    flat = model.params.flat
    next_w, updated = adam(flat, grads.flat, adam_config)
    adam_config.update(updated)
    if next_w is not flat:
        flat[...] = next_w
    clock.lap("Adam (whole flat buffer)", ADAM)
    return loss


def profile(model: CaptioningRNN, features: np.ndarray, captions: np.ndarray,
            repeats: int = 20, warmup: int = 3) -> dict[str, Any]:
    """Median seconds of each phase over ``repeats`` profiled steps, the products' times alone,
    and the plain step's median, the plain and profiled steps alternating."""
    reuse_freed_memory()
    plain = capx_trainer(model, features, captions)
    config: dict[str, Any] = {}  # the profiled steps' Adam state; ``plain`` keeps its own
    runs: list[Clock] = []
    plain_times: list[float] = []
    for k in range(warmup + repeats):
        clock = Clock()
        profiled_step(model, features, captions, config, clock)
        start = time.perf_counter()
        plain()
        if k >= warmup:
            plain_times.append(time.perf_counter() - start)
            runs.append(clock)
    phases = {name: statistics.median(run.seconds[name] for run in runs)
              for name in runs[0].seconds}
    totals = [sum(run.seconds.values()) for run in runs]
    alone: dict[str, float] = defaultdict(float)
    for gemm in gemm_floor.training_gemms(model, captions):
        alone[gemm.label] += gemm_floor.time_gemm(gemm, repeats=repeats)
    return {"phases": phases, "groups": dict(runs[0].groups), "alone": dict(alone),
            "profiled_total": statistics.median(totals),
            "plain_step": statistics.median(plain_times)}


def profile_table(result: dict[str, Any]) -> str:
    """Markdown: the products (in step, alone, ratio), then the other groups and the totals."""
    ms = lambda s: f"{1000 * s:.2f}"  # noqa: E731
    phases, groups, alone = result["phases"], result["groups"], result["alone"]
    lines = ["| phase | group | ms in step | ms alone | in step / alone |",
             "|---|---|--:|--:|--:|"]
    gemm_in = gemm_alone = 0.0
    for name, seconds in phases.items():
        if groups[name] == GEMM:
            gemm_in += seconds
            gemm_alone += alone[name]
            lines.append(f"| {name} | {GEMM} | {ms(seconds)} | {ms(alone[name])} "
                         f"| {seconds / alone[name]:.2f} |")
    lines.append(f"| **all products** | {GEMM} | **{ms(gemm_in)}** | **{ms(gemm_alone)}** "
                 f"| **{gemm_in / gemm_alone:.2f}** |")
    by_group: dict[str, float] = defaultdict(float)
    for name, seconds in phases.items():
        if groups[name] != GEMM:
            lines.append(f"| {name} | {groups[name]} | {ms(seconds)} | | |")
            by_group[groups[name]] += seconds
    for group in (ELEMENTWISE, SOFTMAX, MEMORY, ADAM, BOOKKEEPING):
        if group in by_group:
            lines.append(f"| **{group}** | | **{ms(by_group[group])}** | | |")
    total, plain = result["profiled_total"], result["plain_step"]
    lines += [f"| **profiled step** (median of totals) | | **{ms(total)}** "
              f"| {ms(gemm_alone)} (floor) | **{total / gemm_alone:.2f}** |",
              f"| plain step, alternating with the profiled one | | {ms(plain)} "
              f"| {ms(gemm_alone)} (floor) | {plain / gemm_alone:.2f} |"]
    return "\n".join(lines)


SUMMARY_GROUPS = (ADAM, ELEMENTWISE, SOFTMAX, MEMORY, BOOKKEEPING)


def summary_row(label: str, result: dict[str, Any]) -> str:
    """One Markdown row: the plain step, its floor, and what the gap between them is made of,
    as milliseconds in the profiled step: the products' excess over their times alone, then
    each group of the other work."""
    phases, groups, alone = result["phases"], result["groups"], result["alone"]
    gemm_in = sum(s for name, s in phases.items() if groups[name] == GEMM)
    floor = sum(alone.values())
    by_group = {g: sum(s for name, s in phases.items() if groups[name] == g)
                for g in SUMMARY_GROUPS}
    cells = [f"{1000 * result['plain_step']:.1f}", f"{1000 * floor:.1f}",
             f"{result['plain_step'] / floor:.2f}", f"{1000 * (gemm_in - floor):.1f}"]
    cells += [f"{1000 * by_group[g]:.1f}" for g in SUMMARY_GROUPS]
    return f"| {label} | " + " | ".join(cells) + " |"


SUMMARY_HEADER = ("| configuration | step ms | floor ms | step / floor | products' excess ms | "
                  + " | ".join(f"{g} ms" for g in SUMMARY_GROUPS) + " |\n"
                  + "|---|" + "--:|" * (4 + len(SUMMARY_GROUPS)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[50])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads (0: library default)")
    parser.add_argument("--only", nargs="*", default=None, metavar="TOKENS-CELL",
                        help="e.g. word-lstm char-rnn (default: all four)")
    args = parser.parse_args(argv)
    settings = Settings(run_torch=False, run_seed=False)
    with limit_blas_threads(args.threads or None):
        info = machine_info()
        blas = ", ".join(f"{b.get('internal_api')} {b.get('version')} "
                         f"({b.get('num_threads')} threads, {b.get('architecture', '?')})"
                         for b in info["blas"])
        print("## capx training-step profile\n")
        print(f"- date: {info['date']}")
        print(f"- machine: {info['cpu_model']}, {info['cores_usable']} usable cores")
        print(f"- NumPy {info['numpy']}, BLAS: {blas}")
        print(f"- environment: {info['env']}")
        print(f"- busy check before: {check_busy().describe()}\n")
        summary = []
        for tok in TOKENIZATIONS:
            for cell in CELLS:
                if args.only and f"{tok.name}-{cell}" not in args.only:
                    continue
                for n in args.batch:
                    rng = np.random.default_rng([settings.data_seed, n, tok.steps, GATES[cell]])
                    features = make_features(n, settings.input_dim, rng)
                    captions = make_captions(n, tok.steps, tok.vocab_size, rng)
                    model = build_models(tok, cell, settings, seed=n)[0]
                    result = profile(model, features, captions, args.repeats)
                    summary.append(summary_row(f"{tok.name} {cell}, N={n}", result))
                    print(f"### {tok.name} {cell}, N={n}\n")
                    print(profile_table(result))
                    print()
        print("### Summary: the step, its floor, and what the gap is made of\n")
        print(SUMMARY_HEADER)
        print("\n".join(summary))
        print(f"\n- busy check after: {check_busy().describe()}")


if __name__ == "__main__":
    main()
