"""The GEMM floor of a training step or a greedy decode: its matrix products timed alone.

Every product capx's training step (or greedy sampling) does is listed at its exact shape and
operand layout (a transposed view is an F-ordered operand, as in the code), timed alone on warm,
preallocated operands, and the times summed: the step cannot be faster than that with these BLAS
kernels, so ``step / floor`` is what everything around the GEMMs costs (element-wise work, Adam,
gathers and scatters, and the products' inputs having left the cache).

The lists mirror :meth:`capx.captioner.CaptioningRNN.loss`, the cells' packed loops
(:mod:`capx.cells`) and :meth:`capx.sampling.DecodingMixin.generate`;
``tests/test_benchmarks.py`` checks their FLOPs against the step's FLOP formula.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from capx.captioner import CaptioningRNN
from capx.packing import make_packing


@dataclass(frozen=True)
class Gemm:
    """One product ``A (m, k) @ B (k, n)``; ``a_t``/``b_t``: the operand is a transposed view."""

    label: str
    m: int
    k: int
    n: int
    a_t: bool = False
    b_t: bool = False

    @property
    def flop(self) -> int:
        return 2 * self.m * self.k * self.n


def _gates(model: CaptioningRNN) -> int:
    return model.params["Wh"].shape[1] // model.hidden_dim


def training_gemms(model: CaptioningRNN, captions: np.ndarray) -> list[Gemm]:
    """The products of one ``model.loss`` call on ``captions``, in the order they run."""
    if not model.projects_input or "Wh" not in model.params:
        raise ValueError("the floor lists the products of cells with Wx, Wh and b (rnn, lstm)")
    n_batch = captions.shape[0]
    D, W, H, V = model.input_dim, model.wordvec_dim, model.hidden_dim, model.vocab_size
    GH = _gates(model) * H
    packing = make_packing(captions[:, 1:] != model._null, pack=model.pack)
    P = packing.num_rows
    path = "fold" if model._fold() else "gather"
    tokens = len(np.unique(captions[:, :-1][packing.rows, packing.steps]))
    rows = tokens if path == "fold" else P
    steps = [int(n) for n in packing.batch_sizes]

    gemms = [Gemm("h0 = feats @ W_proj", n_batch, D, H)]
    gemms.append(Gemm("table = W_embed[tokens] @ Wx", rows, W, GH) if path == "fold"
                  else Gemm("xw = x @ Wx", rows, W, GH))
    gemms += [Gemm("h[t-1] @ Wh", n, H, GH) for n in steps]
    gemms += [Gemm("scores = h @ W_vocab", P, H, V),
              Gemm("dW_vocab = h.T @ dscores", H, P, V, a_t=True),
              Gemm("dh = dscores @ W_vocab.T", P, V, H, b_t=True)]
    gemms += [Gemm("Wh @ da.T", H, GH, n, b_t=True) for n in reversed(steps)]
    gemms.append(Gemm("dWh = h_prev.T @ da", H, P, GH, a_t=True))
    if path == "fold":
        gemms += [Gemm("dW_embed[tokens] = dtable @ Wx.T", rows, GH, W, b_t=True),
                  Gemm("dWx = W_embed[tokens].T @ dtable", W, rows, GH, a_t=True)]
    else:
        gemms += [Gemm("dWx = x.T @ dxw", W, rows, GH, a_t=True),
                  Gemm("dx = dxw @ Wx.T", rows, GH, W, b_t=True)]
    gemms.append(Gemm("dW_proj = feats.T @ dh0", D, n_batch, H, a_t=True))
    return gemms


def sampling_gemms(model: CaptioningRNN, features: np.ndarray, max_length: int) -> list[Gemm]:
    """The products of ``model.sample(features, max_length)`` (active rows taken from a run)."""
    D, W, H, V = model.input_dim, model.wordvec_dim, model.hidden_dim, model.vocab_size
    GH = _gates(model) * H
    n = features.shape[0]
    captions = model.sample(features, max_length)
    ended = captions == model._end
    # a row takes part in step t until (and including) the step where it emits <END>
    last = np.where(ended.any(axis=1), ended.argmax(axis=1), max_length - 1)
    active = [int((last >= t).sum()) for t in range(max_length)]
    active = [a for a in active if a > 0]
    table = V <= n * max_length
    gemms = [Gemm("h0 = feats @ W_proj", n, D, H)]
    if table:
        gemms.append(Gemm("table = W_embed @ Wx", V, W, GH))
    for a in active:
        if not table:
            gemms.append(Gemm("x @ Wx", a, W, GH))
        gemms += [Gemm("h @ Wh", a, H, GH), Gemm("scores = h @ W_vocab", a, H, V)]
    return gemms


def _operand(rows: int, cols: int, transposed: bool, rng: np.random.Generator,
             dtype: np.dtype) -> np.ndarray:
    shape = (cols, rows) if transposed else (rows, cols)
    a = (rng.standard_normal(shape) * 0.1).astype(dtype)
    return a.T if transposed else a


def time_gemm(gemm: Gemm, repeats: int = 15, warmup: int = 3, dtype=np.float32,
              seed: int = 0) -> float:
    """Median seconds of one product alone, operands and output preallocated and warm."""
    rng = np.random.default_rng(seed)
    a = _operand(gemm.m, gemm.k, gemm.a_t, rng, dtype)
    b = _operand(gemm.k, gemm.n, gemm.b_t, rng, dtype)
    out = np.empty((gemm.m, gemm.n), dtype=dtype)
    for _ in range(warmup):
        np.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def floor_ms(gemms: list[Gemm], repeats: int = 15, dtype=np.float32) -> float:
    """Sum of the products' times alone (each distinct shape timed once, times its count)."""
    counts = Counter((g.m, g.k, g.n, g.a_t, g.b_t) for g in gemms)
    total = 0.0
    for (m, k, n, a_t, b_t), count in counts.items():
        total += count * time_gemm(Gemm("", m, k, n, a_t, b_t), repeats=repeats, dtype=dtype)
    return 1000.0 * total
