"""The "seed" baseline: a captioner written the way a CS231n assignment-3 solution is.

Everything a student writes from the assignment's instructions, and nothing more: float64, the
reference layers of :mod:`capx.layers` (a Python loop over timesteps calling the step functions,
forward and backward; the embedding gradient with ``np.add.at``; a full-vocabulary temporal
affine layer and temporal softmax over all N*T positions, ``<NULL>`` padding computed and then
masked) composed as CS231n's ``CaptioningRNN.loss`` by :func:`capx.reference.captioning_loss`, and
the per-parameter CS231n Adam that allocates new arrays every step. It uses none of capx's fast
code (captioner, cells, packing, ops, optim), so the benchmark compares against the plain
computation, and the tests check it computes capx's model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from capx.layers import lstm_step_forward, rnn_step_forward
from capx.reference import SEQUENCE_LAYERS, captioning_loss

Params = dict[str, np.ndarray]


# -- the model -----------------------------------------------------------------------------------

class SeedCaptioningRNN:
    """CS231n's ``CaptioningRNN`` in float64 with the parameter names capx uses."""

    def __init__(self, word_to_idx: dict[str, int], params: Params, cell_type: str = "rnn"):
        if cell_type not in SEQUENCE_LAYERS:
            raise ValueError(f'cell_type must be "rnn" or "lstm", got {cell_type!r}')
        self.cell_type = cell_type
        self._null = word_to_idx["<NULL>"]
        self._start = word_to_idx.get("<START>")
        self._end = word_to_idx.get("<END>")
        self.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}

    def loss(self, features: np.ndarray, captions: np.ndarray) -> tuple[float, Params]:
        """CS231n's ``CaptioningRNN.loss``: (loss, grads by parameter name)."""
        return captioning_loss(self.params, features, captions, self.cell_type, self._null)

    def sample(self, features: np.ndarray, max_length: int = 30) -> np.ndarray:
        """Greedy decoding, every row for every step; ``<NULL>`` after a row's ``<END>``."""
        p = self.params
        N = features.shape[0]
        captions = self._null * np.ones((N, max_length), dtype=np.int32)
        h = features.dot(p["W_proj"]) + p["b_proj"]
        c = np.zeros_like(h)
        words = self._start * np.ones(N, dtype=np.int32)
        done = np.zeros(N, dtype=bool)
        for t in range(max_length):
            x = p["W_embed"][words]
            if self.cell_type == "rnn":
                h, _ = rnn_step_forward(x, h, p["Wx"], p["Wh"], p["b"])
            else:
                h, c, _ = lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])
            scores = h.dot(p["W_vocab"]) + p["b_vocab"]
            words = np.argmax(scores, axis=1)
            captions[~done, t] = words[~done]
            done |= words == self._end
            if done.all():
                break
        return captions


def adam(w: np.ndarray, dw: np.ndarray, config: dict[str, Any] | None = None):
    """The CS231n Adam update rule: new arrays every step, bias-corrected moments."""
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    config.setdefault("t", 0)
    config["t"] += 1
    config["m"] = config["beta1"] * config["m"] + (1 - config["beta1"]) * dw
    config["v"] = config["beta2"] * config["v"] + (1 - config["beta2"]) * dw**2
    m_hat = config["m"] / (1 - config["beta1"] ** config["t"])
    v_hat = config["v"] / (1 - config["beta2"] ** config["t"])
    next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
    return next_w, config


def train_step(model: SeedCaptioningRNN, optim_configs: dict[str, dict[str, Any]],
               features: np.ndarray, captions: np.ndarray) -> float:
    """One CS231n solver step (minus minibatch sampling): loss, grads, Adam per parameter."""
    loss, grads = model.loss(features, captions)
    for name, w in model.params.items():
        model.params[name], optim_configs[name] = adam(w, grads[name], optim_configs.get(name))
    return loss
