"""CaptioningRNN: image feature -> initial hidden state -> recurrent cell -> vocabulary scores.

The CS231n assignment-3 model with its API, computed on packed sequences (see
:mod:`capx.packing`): ``<NULL>`` padding after a caption's last token costs nothing, and the
vocabulary projection and softmax touch only real positions. When the vocabulary is smaller than
the number of tokens in a batch (character models), the embedding is folded into the input
projection: ``W_embed @ Wx + b`` is computed once and its rows gathered.

The recurrence is a cell plugin (see :mod:`capx.cells.base` for the contract): the cell declares
its own parameters, which ``params`` holds between ``W_embed`` and ``W_vocab`` (``Wx, Wh, b`` for
rnn and lstm, so the order is the CS231n one), and receives all of them by name. When the cell
has ``Wx`` and ``b``, the input projection ``x @ Wx + b`` is computed here, over every packed
row at once, and the cell gets its result.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from capx.cells.base import INPUT_PROJECTION, projects_input, select_state
from capx.ops import scatter_add_rows, softmax_cross_entropy_
from capx.packing import make_packing
from capx.params import GradDict, ParamDict
from capx.registry import CELLS

#: parameter -> group of the parameter counts; a cell's parameters, whatever their names, are in
#: ``RECURRENT`` (see :meth:`CaptioningRNN.param_group`)
PARAM_GROUPS = {
    "W_proj": "image projection", "b_proj": "image projection",
    "W_embed": "embedding",
    "Wx": "recurrent", "Wh": "recurrent", "b": "recurrent",
    "W_vocab": "output", "b_vocab": "output",
}
RECURRENT = "recurrent"
#: the captioner's own parameters, before and after the cell's
HEAD_PARAMS, TAIL_PARAMS = ("W_proj", "b_proj", "W_embed"), ("W_vocab", "b_vocab")


class CaptioningRNN:
    """A recurrent captioner over a fixed vocabulary; any registered cell (rnn, lstm, ...)."""

    def __init__(self, word_to_idx: dict[str, int], input_dim: int = 512, wordvec_dim: int = 128,
                 hidden_dim: int = 128, cell_type: str = "rnn", dtype: Any = np.float32,
                 seed: int | None = None, pack: bool = True, fold_embedding: str | bool = "auto"):
        """``seed=None`` draws the initial weights from NumPy's global RNG, as CS231n does.

        ``pack`` skips ``<NULL>`` padding; ``fold_embedding`` ("auto", True, False) chooses the
        folded embedding path. Both only change speed, never results.
        """
        self.cell_type = cell_type
        self.cell = CELLS.get(cell_type)()
        self.dtype = np.dtype(dtype)
        self.word_to_idx = dict(word_to_idx)
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self._null = word_to_idx["<NULL>"]
        self._start = word_to_idx.get("<START>")
        self._end = word_to_idx.get("<END>")
        self.pack = pack
        self.fold_embedding = fold_embedding
        self.input_dim, self.wordvec_dim, self.hidden_dim = input_dim, wordvec_dim, hidden_dim
        for name, value in (("input_dim", input_dim), ("wordvec_dim", wordvec_dim),
                            ("hidden_dim", hidden_dim)):
            if int(value) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.params = ParamDict(self._init_params(seed), self.dtype)

    @property
    def vocab_size(self) -> int:
        return len(self.word_to_idx)

    def _init_params(self, seed: int | None) -> dict[str, np.ndarray]:
        """All parameters: the captioner's, the cell's in its own order between W_embed and W_vocab.

        Sets ``cell_param_names`` and ``projects_input``.
        """
        # Same draws in the same order as CS231n, so np.random.seed(231) gives its model.
        rng = np.random if seed is None else np.random.RandomState(seed)
        V, D, W, H = self.vocab_size, self.input_dim, self.wordvec_dim, self.hidden_dim
        raw = {"W_embed": rng.randn(V, W) / 100, "W_proj": rng.randn(D, H) / np.sqrt(D),
               "b_proj": np.zeros(H)}
        cell_params = dict(self.cell.init_params(W, H, rng, np.float64))
        clash = sorted(set(cell_params) & set(HEAD_PARAMS + TAIL_PARAMS))
        if clash:
            raise ValueError(f"cell {self.cell_type!r} declares parameter(s) {clash}, which the "
                             f"captioner owns; rename them in its init_params")
        raw["W_vocab"] = rng.randn(H, V) / np.sqrt(H)
        raw["b_vocab"] = np.zeros(V)
        self.cell_param_names = tuple(cell_params)
        self.projects_input = projects_input(cell_params)
        if self.projects_input:
            wx, b = (np.shape(cell_params[k]) for k in INPUT_PROJECTION)
            if len(wx) != 2 or wx[0] != W or b != (wx[1],):
                raise ValueError(f"cell {self.cell_type!r}: Wx must be (wordvec_dim={W}, K) and b "
                                 f"(K,), got Wx {wx} and b {b}")
        raw.update(cell_params)
        return {name: raw[name] for name in HEAD_PARAMS + self.cell_param_names + TAIL_PARAMS}

    def cell_params(self) -> dict[str, np.ndarray]:
        """The cell's parameters by name (views into ``params``), as the cell receives them."""
        p = self.params
        return {name: p[name] for name in self.cell_param_names}

    def param_group(self, name: str) -> str:
        """The group a parameter is counted in; every cell parameter is ``recurrent``."""
        return RECURRENT if name in self.cell_param_names else PARAM_GROUPS[name]

    # -- training ---------------------------------------------------------------------------

    def loss(self, features: np.ndarray, captions: np.ndarray) -> tuple[float, GradDict]:
        """Softmax loss summed over time, averaged over the batch, ``<NULL>`` targets masked.

        Inputs are ``captions[:, :-1]`` and targets ``captions[:, 1:]``. Returns (loss, grads)
        with one gradient per parameter (``grads.flat`` is all of them as one array).
        """
        p = self.params
        captions = np.asarray(captions)
        mask = captions[:, 1:] != self._null
        packing = make_packing(mask, pack=self.pack)
        ids = captions[:, :-1][packing.rows, packing.steps].astype(np.intp)
        targets = captions[:, 1:][packing.rows, packing.steps].astype(np.intp)
        weights = mask[packing.rows, packing.steps].astype(self.dtype) / captions.shape[0]
        feats = np.asarray(features[packing.order], dtype=self.dtype)
        h0 = feats @ p["W_proj"] + p["b_proj"]

        fold = self._fold(packing.num_rows)
        if fold:
            xw = (p["W_embed"] @ p["Wx"] + p["b"])[ids]
        else:
            x = p["W_embed"][ids]  # a gather: a fresh array
            if self.projects_input:
                xw = x @ p["Wx"]
                xw += p["b"]
            else:
                xw = x  # the cell's input is the word vector (x is not needed afterwards)
        h, cache = self.cell.forward(xw, h0, self.cell_params(), packing)
        dscores = h @ p["W_vocab"]
        dscores += p["b_vocab"]
        loss = softmax_cross_entropy_(dscores, targets, weights)

        g = p.empty_like()
        np.matmul(h.T, dscores, out=g["W_vocab"])
        np.sum(dscores, axis=0, out=g["b_vocab"])
        dxw, dh0, cell_grads = self.cell.backward(dscores @ p["W_vocab"].T, cache)
        self._store_cell_grads(cell_grads, g)
        if not self.projects_input:
            g["W_embed"][...] = scatter_add_rows(ids, dxw, self.vocab_size)
        elif fold:
            dtable = scatter_add_rows(ids, dxw, self.vocab_size)
            np.matmul(dtable, p["Wx"].T, out=g["W_embed"])
            np.matmul(p["W_embed"].T, dtable, out=g["Wx"])
            np.sum(dtable, axis=0, out=g["b"])
        else:
            np.matmul(x.T, dxw, out=g["Wx"])
            np.sum(dxw, axis=0, out=g["b"])
            g["W_embed"][...] = scatter_add_rows(ids, dxw @ p["Wx"].T, self.vocab_size)
        np.matmul(feats.T, dh0, out=g["W_proj"])
        np.sum(dh0, axis=0, out=g["b_proj"])
        return loss, g

    def _store_cell_grads(self, cell_grads: dict[str, np.ndarray], g: GradDict) -> None:
        """Copy the cell's gradients into ``g``, checking their names and shapes."""
        expected = [n for n in self.cell_param_names
                    if not (self.projects_input and n in INPUT_PROJECTION)]
        if len(cell_grads) != len(expected) or not all(n in cell_grads for n in expected):
            raise ValueError(f"cell {self.cell_type!r}: backward returned gradients for "
                             f"{sorted(cell_grads)}, expected {sorted(expected)}")
        for name in expected:
            grad, target = cell_grads[name], g[name]
            if np.shape(grad) != target.shape:
                raise ValueError(f"cell {self.cell_type!r}: gradient of {name!r} has shape "
                                 f"{np.shape(grad)}, the parameter {target.shape}")
            target[...] = grad

    def _fold(self, num_tokens: int) -> bool:
        if not self.projects_input:
            return False
        if self.fold_embedding == "auto":
            return self.vocab_size < num_tokens
        return bool(self.fold_embedding)

    # -- decoding ---------------------------------------------------------------------------

    def initial_state(self, features: np.ndarray) -> tuple[np.ndarray, ...]:
        """Decoding state for a batch of image features."""
        p = self.params
        h0 = np.asarray(features, dtype=self.dtype) @ p["W_proj"] + p["b_proj"]
        return self.cell.initial_state(h0)

    def step_scores(self, words: np.ndarray, state: tuple[np.ndarray, ...],
                    input_table: np.ndarray | None = None):
        """Feed one token per row; returns (vocabulary scores, next state).

        ``input_table`` (from :meth:`input_table`) replaces the embedding and input projection
        by a row lookup.
        """
        p = self.params
        if input_table is not None:
            xw = input_table[words]
        elif self.projects_input:
            xw = p["W_embed"][words] @ p["Wx"] + p["b"]
        else:
            xw = p["W_embed"][words]
        state = self.cell.step(xw, state, self.cell_params())
        scores = state[0] @ p["W_vocab"]
        scores += p["b_vocab"]
        return scores, state

    def input_table(self) -> np.ndarray:
        """``W_embed @ Wx + b``: the projected input of every token (worth it for small vocabularies).

        For a cell without ``Wx`` and ``b``, a copy of ``W_embed`` (its input is the word vector).
        """
        p = self.params
        if not self.projects_input:
            return p["W_embed"].copy()
        return p["W_embed"] @ p["Wx"] + p["b"]

    def sample(self, features: np.ndarray, max_length: int = 30) -> np.ndarray:
        """Greedy decoding from ``<START>``; rows stop after emitting ``<END>``.

        Returns int32 (N, max_length): generated ids, ``<END>`` included, ``<NULL>`` after it.
        """
        return self.generate(features, max_length, lambda scores: scores.argmax(axis=1))

    def generate(self, features: np.ndarray, max_length: int,
                 choose: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Decode token by token, ``choose`` picking each row's next id from its scores.

        Rows that emit ``<END>`` drop out of the batch, so finished captions cost nothing.
        Same output convention as :meth:`sample`.
        """
        if self._start is None or self._end is None:
            raise ValueError("decoding needs '<START>' and '<END>' in word_to_idx")
        n = features.shape[0]
        captions = np.full((n, max_length), self._null, dtype=np.int32)
        table = self.input_table() if self.vocab_size <= n * max_length else None
        state = self.initial_state(features)
        words = np.full(n, self._start, dtype=np.intp)
        active = np.arange(n)
        for t in range(max_length):
            scores, state = self.step_scores(words, state, table)
            words = choose(scores)
            captions[active, t] = words
            going = words != self._end
            if not going.all():
                active, words = active[going], words[going]
                state = select_state(state, going)
                if active.size == 0:
                    break
        return captions

    # -- bookkeeping ------------------------------------------------------------------------

    def param_counts(self) -> dict[str, int]:
        """Parameter counts: ``total``, one per tensor, and one per group (``group/embedding``...)."""
        counts = {name: int(v.size) for name, v in self.params.items()}
        for name in self.params:
            key = f"group/{self.param_group(name)}"
            counts[key] = counts.get(key, 0) + counts[name]
        counts["total"] = int(self.params.flat.size)
        return counts
