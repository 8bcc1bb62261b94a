"""CaptioningRNN: image feature -> initial hidden state -> recurrent cell -> vocabulary scores.

The CS231n assignment-3 model with its API, computed on packed sequences (see
:mod:`capx.packing`): ``<NULL>`` padding after a caption's last token costs nothing, and the
vocabulary projection and softmax touch only real positions. The embedding is folded into the
input projection: ``W_embed[tokens] @ Wx + b`` is computed once for each distinct token of the
batch and its rows gathered. A batch holds far fewer distinct tokens than positions (at most 60
characters; a few hundred words, "a" and ``<START>`` dozens of times each), so the input
products and their gradients run over those rows only (benchmarks/README.md).

The recurrence is a cell plugin (see :mod:`capx.cells.base` for the contract): the cell declares
its own parameters, which ``params`` holds between ``W_embed`` and ``W_vocab`` (``Wx, Wh, b`` for
rnn and lstm, so the order is the CS231n one), and receives all of them by name. When the cell
has ``Wx`` and ``b``, the input projection ``x @ Wx + b`` is computed here, over every packed
row at once, and the cell gets its result.

``dropout`` (default 0: the CS231n model) drops entries of the word vectors and of the hidden
states before the vocabulary projection while training (:mod:`capx.dropout`); the solver draws
the masks from its RNG and passes them to :meth:`CaptioningRNN.loss`, nothing else applies them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from capx.sampling import DecodingMixin
from capx.cells.base import INPUT_PROJECTION, projects_input
from capx.dropout import DropoutMasks, check_rate, draw_masks
from capx.ops import scatter_add_rows, softmax_cross_entropy_
from capx.packing import Packing, make_packing
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


class PackedBatch(NamedTuple):
    """A minibatch in packed order (:meth:`CaptioningRNN.packed_batch`)."""

    packing: Packing
    ids: np.ndarray  # (P,) input token of each packed row
    targets: np.ndarray  # (P,) token to predict
    weights: np.ndarray  # (P,) loss weight: 0 for <NULL> targets, else 1 / N
    feats: np.ndarray  # (N, D) image features, in the packing's caption order


class CaptioningRNN(DecodingMixin):
    """A recurrent captioner over a fixed vocabulary; any registered cell (rnn, lstm, ...)."""

    dropout = 0.0  # also for models pickled before dropout existed

    def __init__(self, word_to_idx: dict[str, int], input_dim: int = 512, wordvec_dim: int = 128,
                 hidden_dim: int = 128, cell_type: str = "rnn", dtype: Any = np.float32,
                 seed: int | None = None, pack: bool = True, fold_embedding: str | bool = "auto",
                 dropout: float = 0.0):
        """``seed=None`` draws the initial weights from NumPy's global RNG, as CS231n does.

        ``dropout``: the share of word-vector and hidden-state entries dropped in training
        (:meth:`dropout_masks`); 0 trains the CS231n model.

        ``pack`` skips ``<NULL>`` padding; ``fold_embedding`` ("auto" or True: the input
        projection over the batch's distinct tokens; False: over every position, the plain
        CS231n way). Both only change speed, never results.
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
        self.dropout = check_rate(dropout)
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
        """All parameters (:func:`init_params`); sets ``cell_param_names``, ``projects_input``."""
        params, self.cell_param_names, self.projects_input = init_params(
            self.cell, self.cell_type, self.vocab_size, self.input_dim, self.wordvec_dim,
            self.hidden_dim, seed)
        return params

    def cell_params(self) -> dict[str, np.ndarray]:
        """The cell's parameters by name (views into ``params``), as the cell receives them."""
        p = self.params
        return {name: p[name] for name in self.cell_param_names}

    def param_group(self, name: str) -> str:
        """The group a parameter is counted in; every cell parameter is ``recurrent``."""
        return RECURRENT if name in self.cell_param_names else PARAM_GROUPS[name]

    # -- training ---------------------------------------------------------------------------

    def dropout_masks(self, captions: np.ndarray, rng: Any) -> DropoutMasks | None:
        """This training batch's dropout masks drawn from ``rng``; None (and no draw) when
        ``dropout`` is 0, so a run without dropout draws exactly what CS231n's does."""
        if not self.dropout:
            return None
        return draw_masks(rng, np.asarray(captions), self.wordvec_dim, self.hidden_dim,
                          self.dropout, self.dtype)

    def loss(self, features: np.ndarray, captions: np.ndarray,
             dropout: DropoutMasks | None = None) -> tuple[float, GradDict]:
        """Softmax loss summed over time, averaged over the batch, ``<NULL>`` targets masked.

        Inputs are ``captions[:, :-1]`` and targets ``captions[:, 1:]``. Returns (loss, grads)
        with one gradient per parameter (``grads.flat`` is all of them as one array).
        ``dropout``: masks (:meth:`dropout_masks`) that scale the word vectors and the hidden
        states before the vocabulary projection; None (validation, scoring) applies none.
        """
        p = self.params
        packing, ids, targets, weights, feats = self.packed_batch(features, captions)
        h0 = feats @ p["W_proj"] + p["b_proj"]
        embed_mask, hidden_mask = row_masks(dropout, packing, self.dtype)
        fold = self._fold() and dropout is None  # a dropped word vector differs per position
        xw, inputs = embed_and_project(p, ids, fold, self.projects_input, embed_mask)
        h, cache = self.cell.forward(xw, h0, self.cell_params(), packing)
        if dropout is not None:
            h = h * hidden_mask  # a fresh array: the cell's cache keeps its own h
        dscores = h @ p["W_vocab"]
        dscores += p["b_vocab"]
        loss = softmax_cross_entropy_(dscores, targets, weights)

        g = p.empty_like()
        np.matmul(h.T, dscores, out=g["W_vocab"])
        np.sum(dscores, axis=0, out=g["b_vocab"])
        dh = dscores @ p["W_vocab"].T
        if dropout is not None:
            dh *= hidden_mask
        dxw, dh0, cell_grads = self.cell.backward(dh, cache)
        store_cell_grads(self.cell_type, self.cell_param_names, self.projects_input,
                         cell_grads, g)
        embed_and_project_backward(p, g, ids, dxw, inputs, self.projects_input, embed_mask)
        np.matmul(feats.T, dh0, out=g["W_proj"])
        np.sum(dh0, axis=0, out=g["b_proj"])
        return loss, g

    def packed_batch(self, features: np.ndarray, captions: np.ndarray) -> PackedBatch:
        """The batch in packed order (:func:`pack_batch`)."""
        return pack_batch(features, captions, self._null, self.pack, self.dtype)

    def _fold(self) -> bool:
        """Whether the input projection runs over the batch's distinct tokens (see __init__)."""
        return self.projects_input and (self.fold_embedding == "auto" or bool(self.fold_embedding))

    # -- bookkeeping ------------------------------------------------------------------------

    def param_counts(self) -> dict[str, int]:
        """Parameter counts: ``total``, one per tensor, and one per group (``group/embedding``...)."""
        counts = {name: int(v.size) for name, v in self.params.items()}
        for name in self.params:
            key = f"group/{self.param_group(name)}"
            counts[key] = counts.get(key, 0) + counts[name]
        counts["total"] = int(self.params.flat.size)
        return counts


def pack_batch(features: np.ndarray, captions: np.ndarray, null: int, pack: bool,
               dtype: Any) -> PackedBatch:
    """The batch in packed order: input ids, targets, per-row loss weights (the ``<NULL>``
    mask and the 1/N averaging) and the image features, sorted like the packing."""
    captions = np.asarray(captions)
    mask = captions[:, 1:] != null
    packing = make_packing(mask, pack=pack)
    ids = captions[:, :-1][packing.rows, packing.steps].astype(np.intp)
    targets = captions[:, 1:][packing.rows, packing.steps].astype(np.intp)
    weights = mask[packing.rows, packing.steps].astype(dtype) / captions.shape[0]
    feats = np.asarray(features[packing.order], dtype=dtype)
    return PackedBatch(packing, ids, targets, weights, feats)


def row_masks(dropout: DropoutMasks | None, packing: Packing, dtype: Any
              ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Each packed row's entries of the word-vector and hidden-state dropout masks (None, None
    without dropout)."""
    if dropout is None:
        return None, None
    return (np.asarray(dropout.embed, dtype)[packing.rows, packing.steps],
            np.asarray(dropout.hidden, dtype)[packing.rows, packing.steps])


def embed_and_project(p: ParamDict, ids: np.ndarray, fold: bool, projects: bool,
                      embed_mask: np.ndarray | None) -> tuple[np.ndarray, Any]:
    """The cell's input for each packed row: the word vector ``W_embed[ids]`` (times its
    dropout mask), then ``@ Wx + b`` when the captioner ``projects`` it; with ``fold``, the
    projection runs once per distinct token and its rows are gathered. Returns the input and
    what :func:`embed_and_project_backward` needs."""
    if fold:
        tokens, rows = np.unique(ids, return_inverse=True)  # ids == tokens[rows]
        embedded = p["W_embed"][tokens]
        table = embedded @ p["Wx"]
        table += p["b"]
        return table[rows], (tokens, rows, embedded)
    x = p["W_embed"][ids]  # a gather: a fresh array
    if embed_mask is not None:
        x *= embed_mask
    if not projects:
        return x, None  # the cell's input is the word vector (x is not needed afterwards)
    xw = x @ p["Wx"]
    xw += p["b"]
    return xw, x


def embed_and_project_backward(p: ParamDict, g: GradDict, ids: np.ndarray, dxw: np.ndarray,
                               inputs: Any, projects: bool,
                               embed_mask: np.ndarray | None) -> None:
    """The gradients of ``W_embed`` (and of ``Wx, b`` when the captioner ``projects``) from
    ``dxw``, the gradient of the cell's input; ``inputs``: what :func:`embed_and_project`
    returned beside it."""
    vocab_size = p["W_embed"].shape[0]
    if not projects:
        dx = dxw if embed_mask is None else dxw * embed_mask
        g["W_embed"][...] = scatter_add_rows(ids, dx, vocab_size)
    elif isinstance(inputs, tuple):  # folded: one row per distinct token
        tokens, rows, embedded = inputs
        dtable = scatter_add_rows(rows, dxw, tokens.size)
        g["W_embed"][...] = 0
        g["W_embed"][tokens] = dtable @ p["Wx"].T
        np.matmul(embedded.T, dtable, out=g["Wx"])
        np.sum(dtable, axis=0, out=g["b"])
    else:
        x = inputs
        np.matmul(x.T, dxw, out=g["Wx"])
        np.sum(dxw, axis=0, out=g["b"])
        dx = dxw @ p["Wx"].T
        if embed_mask is not None:
            dx *= embed_mask
        g["W_embed"][...] = scatter_add_rows(ids, dx, vocab_size)


def init_params(cell: Any, cell_type: str, V: int, D: int, W: int, H: int, seed: int | None
                ) -> tuple[dict[str, np.ndarray], tuple[str, ...], bool]:
    """(parameters in ``params`` order, the cell's parameter names, whether the captioner
    computes the cell's input projection) for vocabulary V, features D, word vectors W, hidden H.
    """
    # Same draws in the same order as CS231n, so np.random.seed(231) gives its model.
    rng = np.random if seed is None else np.random.RandomState(seed)
    raw = {"W_embed": rng.randn(V, W) / 100, "W_proj": rng.randn(D, H) / np.sqrt(D),
           "b_proj": np.zeros(H)}
    cell_params = dict(cell.init_params(W, H, rng, np.float64))
    clash = sorted(set(cell_params) & set(HEAD_PARAMS + TAIL_PARAMS))
    if clash:
        raise ValueError(f"cell {cell_type!r} declares parameter(s) {clash}, which the "
                         f"captioner owns; rename them in its init_params")
    raw["W_vocab"] = rng.randn(H, V) / np.sqrt(H)
    raw["b_vocab"] = np.zeros(V)
    names = tuple(cell_params)
    projects = projects_input(cell_params)
    if projects:
        wx, b = (np.shape(cell_params[k]) for k in INPUT_PROJECTION)
        if len(wx) != 2 or wx[0] != W or b != (wx[1],):
            raise ValueError(f"cell {cell_type!r}: Wx must be (wordvec_dim={W}, K) and b "
                             f"(K,), got Wx {wx} and b {b}")
    raw.update(cell_params)
    return {name: raw[name] for name in HEAD_PARAMS + names + TAIL_PARAMS}, names, projects


def store_cell_grads(cell_type: str, cell_param_names: tuple[str, ...], projects: bool,
                     cell_grads: dict[str, np.ndarray], g: GradDict) -> None:
    """Copy the cell's gradients into ``g``, checking their names and shapes (the input
    projection's, when the captioner computes it, are not the cell's to return)."""
    expected = [n for n in cell_param_names if not (projects and n in INPUT_PROJECTION)]
    if len(cell_grads) != len(expected) or not all(n in cell_grads for n in expected):
        raise ValueError(f"cell {cell_type!r}: backward returned gradients for "
                         f"{sorted(cell_grads)}, expected {sorted(expected)}")
    for name in expected:
        grad, target = cell_grads[name], g[name]
        if np.shape(grad) != target.shape:
            raise ValueError(f"cell {cell_type!r}: gradient of {name!r} has shape "
                             f"{np.shape(grad)}, the parameter {target.shape}")
        target[...] = grad
